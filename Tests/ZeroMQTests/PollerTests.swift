import Foundation
import Testing
import ZeroMQ

@Suite("Poller")
struct PollerTests {
    @Test("nothing ready times out empty; a sent message makes the socket readable")
    func readability() throws {
        let context = try Context()
        let receiver = try makeSocket(context, .pull)
        let endpoint = uniqueInprocEndpoint()
        try receiver.bind(endpoint)
        let sender = try makeSocket(context, .push)
        try sender.connect(endpoint)

        let poller = Poller()
        let index = poller.register(receiver, for: .readable)
        #expect(poller.count == 1)

        let start = ContinuousClock.now
        let idle = try poller.poll(timeout: .milliseconds(50))
        let elapsed = ContinuousClock.now - start
        #expect(idle.isEmpty)
        #expect(elapsed >= .milliseconds(40))
        #expect(elapsed < .seconds(2))
        #expect(try receiver.events.contains(.readable) == false)

        try sender.send(bytes("ping"))
        let ready = try poller.poll(timeout: .seconds(2))
        #expect(ready == [Poller.Ready(index: index, events: .readable)])
        #expect(try receiver.events.contains(.readable))
        #expect(try receiver.receive(flags: .dontWait) == bytes("ping"))
        #expect(try poller.poll(timeout: .zero).isEmpty)
    }

    @Test("writability, several sockets and raw file descriptors")
    func writableAndFileDescriptors() throws {
        let context = try Context()
        let receiver = try makeSocket(context, .pull)
        let endpoint = uniqueInprocEndpoint()
        try receiver.bind(endpoint)
        let sender = try makeSocket(context, .push)
        try sender.connect(endpoint)

        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }

        let poller = Poller()
        let receiverIndex = poller.register(receiver)
        let senderIndex = poller.register(sender, for: .writable)
        let pipeIndex = poller.register(fileDescriptor: fds[0], for: .readable)

        #expect(try poller.poll(timeout: .milliseconds(20)) == [Poller.Ready(index: senderIndex, events: .writable)])

        var byte: UInt8 = 1
        #expect(write(fds[1], &byte, 1) == 1)
        try sender.send(bytes("x"))
        let ready = try poller.poll(timeout: .seconds(2))
        #expect(Set(ready.map(\.index)) == [receiverIndex, senderIndex, pipeIndex])

        poller.update(senderIndex, for: [])
        _ = try receiver.receive()
        #expect(read(fds[0], &byte, 1) == 1)
        #expect(try poller.poll(timeout: .milliseconds(20)).isEmpty)
        #expect(try sender.fileDescriptor >= 0)
    }

    @Test("polling a closed socket throws .socketClosed")
    func closedSocket() throws {
        let context = try Context()
        let socket = try makeSocket(context, .pull)
        let poller = Poller()
        poller.register(socket)
        socket.close()
        let error = try #require(throws: ZeroMQError.self) { try poller.poll(timeout: .zero) }
        #expect(error.code == .socketClosed)
        poller.removeAll()
        #expect(poller.count == 0)
        #expect(try poller.poll(timeout: .milliseconds(1)).isEmpty)
    }

    @Test("receiveQueued takes what is queued, at most the limit, and stops when the handler says so")
    func receiveQueued() throws {
        let context = try Context()
        let receiver = try makeSocket(context, .pull)
        let endpoint = uniqueInprocEndpoint("queued")
        try receiver.bind(endpoint)
        let sender = try makeSocket(context, .push)
        try sender.connect(endpoint)
        for index in 0..<6 { try sender.send(multipart: [bytes("m\(index)"), bytes("tail")]) }
        let poller = Poller()
        poller.register(receiver, for: .readable)
        #expect(try poller.poll(timeout: .seconds(5)).count == 1)

        var frames: [[UInt8]] = []
        var seen: [[[UInt8]]] = []
        #expect(try receiver.receiveQueued(limit: 3, into: &frames) { seen.append($0); return true } == 3)
        #expect(try receiver.receiveQueued(limit: 10, into: &frames) { seen.append($0); return seen.count < 4 } == 1)
        #expect(try receiver.receiveQueued(limit: 10, into: &frames) { seen.append($0); return true } == 2)
        #expect(seen == (0..<6).map { [bytes("m\($0)"), bytes("tail")] })
        // Nothing queued: returns at once instead of blocking.
        #expect(try receiver.receiveQueued(limit: 10, into: &frames) { _ in true } == 0)
    }
}
