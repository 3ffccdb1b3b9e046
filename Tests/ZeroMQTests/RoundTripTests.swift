import Foundation
import Testing
import ZeroMQ

@Suite("Round trips over inproc, ipc and tcp")
struct RoundTripTests {
    @Test("REQ/REP request and reply", arguments: Transport.allCases)
    func requestReply(transport: Transport) throws {
        let context = try Context()
        let scratch = try ScratchDirectory()
        let server = try makeSocket(context, .rep)
        let endpoint = try bindEphemeral(server, transport, scratch: scratch)
        let client = try makeSocket(context, .req)
        try client.connect(endpoint)

        try client.send(bytes("hello"))
        #expect(try server.receive() == bytes("hello"))
        #expect(try server.receiveMore == false)
        try server.send(bytes("world"))
        #expect(try client.receive() == bytes("world"))
    }

    @Test("DEALER/ROUTER carries the routing id both ways", arguments: Transport.allCases)
    func dealerRouter(transport: Transport) throws {
        let context = try Context()
        let scratch = try ScratchDirectory()
        let server = try makeSocket(context, .router)
        let endpoint = try bindEphemeral(server, transport, scratch: scratch)
        let client = try makeSocket(context, .dealer)
        try client.set(.routingID, bytes("client-1"))
        try client.connect(endpoint)

        try client.send(multipart: [bytes("request"), bytes("body")])
        let request = try server.receiveMultipart()
        #expect(request == [bytes("client-1"), bytes("request"), bytes("body")])

        try server.send(multipart: [request[0], bytes("reply")])
        #expect(try client.receiveMultipart() == [bytes("reply")])
    }

    @Test("a reply sent as its envelope then its body arrives as one message, with or without an envelope")
    func envelopeThenBody() throws {
        let context = try Context()
        let server = try makeSocket(context, .router)
        try server.bind("inproc://envelope-then-body")
        let client = try makeSocket(context, .dealer)
        try client.set(.routingID, bytes("client-1"))
        try client.connect("inproc://envelope-then-body")

        try client.send(multipart: [[], bytes("request")])
        let request = try server.receiveMultipart()
        #expect(request == [bytes("client-1"), [], bytes("request")])
        try server.send(multipart: request.prefix(2), last: bytes("reply"))
        #expect(try client.receiveMultipart() == [[], bytes("reply")])

        // No head: `last` alone is the whole message.
        let pair = try makeSocket(context, .pair)
        try pair.bind("inproc://envelope-then-body-pair")
        let peer = try makeSocket(context, .pair)
        try peer.connect("inproc://envelope-then-body-pair")
        try pair.send(multipart: [[UInt8]](), last: bytes("only"))
        #expect(try peer.receiveMultipart() == [bytes("only")])
    }

    @Test("multipart with empty frames, every byte value and 1 MiB frames", arguments: Transport.allCases)
    func multipartBinaryAndLarge(transport: Transport) throws {
        let context = try Context()
        let scratch = try ScratchDirectory()
        let receiver = try makeSocket(context, .pull)
        let endpoint = try bindEphemeral(receiver, transport, scratch: scratch)
        let sender = try makeSocket(context, .push)
        try sender.connect(endpoint)

        let allBytes = (0...255).map { UInt8($0) }
        let mebibyte = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let frames: [[UInt8]] = [[], allBytes, [], mebibyte, mebibyte.reversed(), []]
        try sender.send(multipart: frames)
        let received = try receiver.receiveMultipart()
        #expect(received.count == frames.count)
        #expect(received == frames)

        // The same message through the frame-by-frame API.
        for (index, frame) in frames.enumerated() {
            try sender.send(frame, more: index < frames.count - 1)
        }
        var frameCount = 0
        var more = true
        while more {
            let frame = try receiver.receive()
            #expect(frame == frames[frameCount])
            more = try receiver.receiveMore
            frameCount += 1
        }
        #expect(frameCount == frames.count)
    }

    @Test("Data, slices and strings are sent as their bytes")
    func contiguousBytesOverloads() throws {
        let context = try Context()
        let receiver = try makeSocket(context, .pull)
        let endpoint = uniqueInprocEndpoint()
        try receiver.bind(endpoint)
        let sender = try makeSocket(context, .push)
        try sender.connect(endpoint)

        try sender.send(Data([1, 2, 3]))
        try sender.send([9, 8, 7, 6][1...])
        try sender.send("héllo")
        try sender.send(multipart: [Data([4]), Data(), Data([5, 6])])
        #expect(try receiver.receive() == [1, 2, 3])
        #expect(try receiver.receive() == [8, 7, 6])
        #expect(try receiver.receive() == Array("héllo".utf8))
        #expect(try receiver.receiveMultipart() == [[4], [], [5, 6]])
    }

    @Test("receive(into:) and receiveMultipart(into:) reuse the caller's storage")
    func receiveIntoReusesStorage() throws {
        let context = try Context()
        let receiver = try makeSocket(context, .pull)
        let endpoint = uniqueInprocEndpoint()
        try receiver.bind(endpoint)
        let sender = try makeSocket(context, .push)
        try sender.connect(endpoint)

        var buffer = [UInt8](repeating: 0xFF, count: 64)
        try sender.send(bytes("abc"), more: true)
        try sender.send(bytes("de"))
        #expect(try receiver.receive(into: &buffer) == true)
        #expect(buffer == bytes("abc"))
        #expect(buffer.capacity >= 64)
        #expect(try receiver.receive(into: &buffer) == false)
        #expect(buffer == bytes("de"))

        var frames: [[UInt8]] = [[1, 1, 1], [2], [3], [4]]
        try sender.send(multipart: [bytes("x"), [], bytes("yz")])
        try receiver.receiveMultipart(into: &frames)
        #expect(frames == [bytes("x"), [], bytes("yz")])
        try sender.send(multipart: [bytes("1"), bytes("2"), bytes("3"), bytes("4"), bytes("5")])
        try receiver.receiveMultipart(into: &frames)
        #expect(frames == ["1", "2", "3", "4", "5"].map(bytes))
    }

    @Test("frames returned by receive() stay independent whether the caller keeps or drops them")
    func receivedFramesAreIndependent() throws {
        let context = try Context()
        let receiver = try makeSocket(context, .pull)
        let endpoint = uniqueInprocEndpoint()
        try receiver.bind(endpoint)
        let sender = try makeSocket(context, .push)
        try sender.connect(endpoint)

        let payloads: [[UInt8]] = [
            [UInt8](repeating: 1, count: 32), [UInt8](repeating: 2, count: 32), [UInt8](repeating: 3, count: 5),
            [UInt8](repeating: 4, count: 4096), [UInt8](repeating: 5, count: 32), [],
        ]
        for payload in payloads {
            try sender.send(payload)
        }
        var kept: [[UInt8]] = []
        var first = try receiver.receive()
        kept.append(first)
        first[0] = 99  // mutating the caller's copy must not leak into the socket or later frames
        for _ in 1..<payloads.count {
            kept.append(try receiver.receive())
        }
        #expect(kept == payloads)
        #expect(first[0] == 99)

        // Dropping each frame before the next receive (the recycled path) gives the same bytes.
        for payload in payloads {
            try sender.send(payload)
        }
        for payload in payloads {
            #expect(try receiver.receive() == payload)
        }
    }

    @Test("SUB receives only subscribed prefixes")
    func publishSubscribe() throws {
        let context = try Context()
        let publisher = try makeSocket(context, .pub)
        let endpoint = uniqueInprocEndpoint()
        try publisher.bind(endpoint)
        let subscriber = try makeSocket(context, .sub)
        try subscriber.subscribe("a.")
        try subscriber.connect(endpoint)

        // Subscriptions travel asynchronously: publish until the first one arrives.
        let poller = Poller()
        poller.register(subscriber)
        let deadline = ContinuousClock.now + .seconds(3)
        var joined = false
        while !joined, ContinuousClock.now < deadline {
            try publisher.send("a.probe")
            joined = try !poller.poll(timeout: .milliseconds(10)).isEmpty
        }
        #expect(joined)
        while (try? subscriber.receive(flags: .dontWait)) != nil {}

        try publisher.send("b.filtered")
        try publisher.send("a.wanted")
        #expect(try subscriber.receive() == bytes("a.wanted"))
        #expect(throws: ZeroMQError.self) { try subscriber.receive(flags: .dontWait) }
    }
}
