import CZeroMQ
import Foundation
import Testing
import ZeroMQ

@Suite("Timeouts and error reporting")
struct TimeoutAndErrorTests {
    @Test("a receive timeout throws .timedOut quickly")
    func receiveTimeout() throws {
        let context = try Context()
        let socket = try makeSocket(context, .pull, timeout: .milliseconds(50))
        let endpoint = uniqueInprocEndpoint()
        try socket.bind(endpoint)

        let start = ContinuousClock.now
        let error = try #require(throws: ZeroMQError.self) { try socket.receive() }
        let elapsed = ContinuousClock.now - start
        #expect(error.code == .timedOut)
        #expect(error.errno == EAGAIN)
        #expect(error.operation == "zmq_msg_recv")
        #expect(elapsed >= .milliseconds(40))
        #expect(elapsed < .seconds(2))
        #expect(try socket.get(.receiveTimeout) == .milliseconds(50))

        // The socket still works after a timeout.
        let sender = try makeSocket(context, .push)
        try sender.connect(endpoint)
        try sender.send(bytes("late"))
        #expect(try socket.receive() == bytes("late"))
    }

    @Test("a send timeout throws .timedOut when no peer can take the message")
    func sendTimeout() throws {
        let context = try Context()
        let socket = try makeSocket(context, .push, timeout: .milliseconds(50))
        let start = ContinuousClock.now
        let error = try #require(throws: ZeroMQError.self) { try socket.send(bytes("nobody")) }
        #expect(error.code == .timedOut)
        #expect(error.operation == "zmq_send")
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test(".dontWait throws .wouldBlock instead of blocking")
    func dontWaitWouldBlock() throws {
        let context = try Context()
        let socket = try makeSocket(context, .pull)
        try socket.bind(uniqueInprocEndpoint())
        let receiveError = try #require(throws: ZeroMQError.self) { try socket.receive(flags: .dontWait) }
        #expect(receiveError.code == .wouldBlock)
        #expect(receiveError.errno == EAGAIN)
        let multipartError = try #require(throws: ZeroMQError.self) { try socket.receiveMultipart(flags: .dontWait) }
        #expect(multipartError.code == .wouldBlock)

        let lonelyPush = try makeSocket(context, .push)
        let sendError = try #require(throws: ZeroMQError.self) {
            try lonelyPush.send(bytes("x"), flags: .dontWait)
        }
        #expect(sendError.code == .wouldBlock)
    }

    @Test("binding an invalid endpoint reports errno and zmq_bind", arguments: [
        "bogus://127.0.0.1:5555",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:notaport",
    ])
    func invalidEndpoint(endpoint: String) throws {
        let context = try Context()
        let socket = try makeSocket(context, .rep)
        let error = try #require(throws: ZeroMQError.self) { try socket.bind(endpoint) }
        #expect([EINVAL, EPROTONOSUPPORT].contains(error.errno))
        #expect([.invalidArgument, .protocolNotSupported].contains(error.code))
        #expect(error.operation == "zmq_bind(\(endpoint))")
        #expect(!error.message.isEmpty)
        #expect(error.description.contains("zmq_bind"))
        #expect(error.description.contains(error.message))
        #expect(String(reflecting: error).contains("errno: \(error.errno)"))
    }

    @Test("an unknown transport is .protocolNotSupported")
    func unknownTransport() throws {
        let context = try Context()
        let socket = try makeSocket(context, .rep)
        let error = try #require(throws: ZeroMQError.self) { try socket.connect("bogus://x") }
        #expect(error.code == .protocolNotSupported)
        #expect(error.errno == EPROTONOSUPPORT)
        #expect(error.operation.hasPrefix("zmq_connect"))
    }

    @Test("binding the same endpoint twice is .addressInUse")
    func addressInUse() throws {
        let context = try Context()
        let first = try makeSocket(context, .rep)
        try first.bind("tcp://127.0.0.1:*")
        let second = try makeSocket(context, .rep)
        let error = try #require(throws: ZeroMQError.self) { try second.bind(try first.lastEndpoint) }
        #expect(error.code == .addressInUse)
        #expect(error.errno == EADDRINUSE)
    }

    @Test("REQ sending twice is .invalidState (EFSM)")
    func requestSendTwice() throws {
        let context = try Context()
        let server = try makeSocket(context, .rep)
        let endpoint = uniqueInprocEndpoint()
        try server.bind(endpoint)
        let client = try makeSocket(context, .req)
        try client.connect(endpoint)
        try client.send(bytes("one"))
        let error = try #require(throws: ZeroMQError.self) { try client.send(bytes("two")) }
        #expect(error.code == .invalidState)
        #expect(error.errno == EFSM)
        #expect(error.operation == "zmq_send")
        #expect(!error.description.contains("two"))
    }

    @Test("ROUTER_MANDATORY with an unknown routing id is .hostUnreachable")
    func routerMandatoryUnknownPeer() throws {
        let context = try Context()
        let router = try makeSocket(context, .router)
        try router.set(.routerMandatory, true)
        let endpoint = uniqueInprocEndpoint()
        try router.bind(endpoint)
        let dealer = try makeSocket(context, .dealer)
        try dealer.set(.routingID, bytes("known"))
        try dealer.connect(endpoint)
        try dealer.send(bytes("hi"))
        #expect(try router.receiveMultipart() == [bytes("known"), bytes("hi")])

        try router.send(multipart: [bytes("known"), bytes("reply")])
        #expect(try dealer.receive() == bytes("reply"))

        let error = try #require(throws: ZeroMQError.self) {
            try router.send(multipart: [bytes("stranger"), bytes("reply")], flags: .dontWait)
        }
        #expect(error.code == .hostUnreachable)
        #expect(error.errno == EHOSTUNREACH)
    }

    @Test("a peer exceeding MAXMSGSIZE is dropped and the server keeps serving others")
    func maxMessageSize() throws {
        let context = try Context()
        let server = try makeSocket(context, .router, timeout: .milliseconds(300))
        try server.set(.maxMessageSize, 1024)
        #expect(try server.get(.maxMessageSize) == 1024)
        try server.bind("tcp://127.0.0.1:*")
        let endpoint = try server.lastEndpoint

        let offender = try makeSocket(context, .dealer)
        try offender.set(.routingID, bytes("offender"))
        try offender.connect(endpoint)
        try offender.send([UInt8](repeating: 0xAB, count: 4096))
        let error = try #require(throws: ZeroMQError.self) { try server.receiveMultipart() }
        #expect(error.code == .timedOut)

        let polite = try makeSocket(context, .dealer)
        try polite.set(.routingID, bytes("polite"))
        try polite.connect(endpoint)
        try polite.send(bytes("small"))
        try server.set(.receiveTimeout, .seconds(5))
        let request = try server.receiveMultipart()
        #expect(request == [bytes("polite"), bytes("small")])
        try server.send(multipart: [request[0], bytes("served")])
        #expect(try polite.receive() == bytes("served"))
    }

    @Test("a closed socket throws .socketClosed and close is idempotent")
    func closedSocket() throws {
        let context = try Context()
        let socket = try makeSocket(context, .push)
        #expect(socket.isClosed == false)
        socket.close()
        socket.close()
        #expect(socket.isClosed)
        let error = try #require(throws: ZeroMQError.self) { try socket.send(bytes("x")) }
        #expect(error.code == .socketClosed)
        #expect(error.errno == ENOTSOCK)
        #expect(throws: ZeroMQError.self) { try socket.bind(uniqueInprocEndpoint()) }
        #expect(throws: ZeroMQError.self) { try socket.get(.linger) }
    }

    @Test("invalid option values are rejected with .invalidArgument")
    func invalidOptionValues() throws {
        let context = try Context()
        let socket = try makeSocket(context, .dealer)
        let negative = try #require(throws: ZeroMQError.self) { try socket.set(.linger, .milliseconds(-5)) }
        #expect(negative.code == .invalidArgument)
        let tooLarge = try #require(throws: ZeroMQError.self) { try socket.set(.sendHighWaterMark, Int(Int32.max) + 1) }
        #expect(tooLarge.code == .invalidArgument)
        let emptyID = try #require(throws: ZeroMQError.self) { try socket.set(.routingID, []) }
        #expect(emptyID.errno == EINVAL)
        #expect(emptyID.operation == "zmq_setsockopt(ZMQ_ROUTING_ID)")
        let noFrames = try #require(throws: ZeroMQError.self) { try socket.send(multipart: [[UInt8]]()) }
        #expect(noFrames.code == .invalidArgument)
    }
}
