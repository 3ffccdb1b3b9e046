import Foundation
import Testing
import ZeroMQ

@Suite("Typed socket options")
struct OptionTests {
    @Test("options read back what was set")
    func roundTrips() throws {
        let context = try Context()
        let socket = try Socket(context: context, type: .router)

        try socket.set(.linger, nil)
        #expect(try socket.get(.linger) == nil)
        try socket.set(.linger, .milliseconds(1500))
        #expect(try socket.get(.linger) == .milliseconds(1500))
        try socket.set(.linger, .microseconds(1))
        #expect(try socket.get(.linger) == .milliseconds(1))

        try socket.set(.sendHighWaterMark, 50_000)
        try socket.set(.receiveHighWaterMark, 0)
        #expect(try socket.get(.sendHighWaterMark) == 50_000)
        #expect(try socket.get(.receiveHighWaterMark) == 0)

        #expect(try socket.get(.receiveTimeout) == nil)
        try socket.set(.receiveTimeout, .milliseconds(75))
        try socket.set(.sendTimeout, .zero)
        #expect(try socket.get(.receiveTimeout) == .milliseconds(75))
        #expect(try socket.get(.sendTimeout) == .zero)

        #expect(try socket.get(.maxMessageSize) == nil)
        try socket.set(.maxMessageSize, 1 << 20)
        #expect(try socket.get(.maxMessageSize) == 1 << 20)
        try socket.set(.maxMessageSize, nil)
        #expect(try socket.get(.maxMessageSize) == nil)

        try socket.set(.immediate, true)
        #expect(try socket.get(.immediate))
        try socket.set(.routerHandover, true)
        try socket.set(.routerMandatory, true)
        // Write-only in libzmq 4.3.
        #expect(try #require(throws: ZeroMQError.self) { try socket.get(.routerMandatory) }.code == .invalidArgument)

        try socket.set(.heartbeatInterval, .seconds(2))
        try socket.set(.heartbeatTimeout, .seconds(6))
        try socket.set(.heartbeatTTL, .seconds(10))
        try socket.set(.handshakeInterval, .seconds(5))
        #expect(try socket.get(.heartbeatInterval) == .seconds(2))
        #expect(try socket.get(.heartbeatTimeout) == .seconds(6))
        #expect(try socket.get(.heartbeatTTL) == .seconds(10))
        #expect(try socket.get(.handshakeInterval) == .seconds(5))

        try socket.set(.reconnectInterval, .milliseconds(250))
        #expect(try socket.get(.reconnectInterval) == .milliseconds(250))
        try socket.set(.reconnectInterval, nil)
        #expect(try socket.get(.reconnectInterval) == nil)
        try socket.set(.reconnectIntervalMax, .seconds(3))
        #expect(try socket.get(.reconnectIntervalMax) == .seconds(3))
        try socket.set(.connectTimeout, .seconds(1))
        #expect(try socket.get(.connectTimeout) == .seconds(1))

        let id: [UInt8] = [0, 1, 2, 0xFF]
        try socket.set(.routingID, id)
        #expect(try socket.get(.routingID) == id)

        try socket.set(.zapDomain, "signals")
        #expect(try socket.get(.zapDomain) == "signals")
    }

    @Test("lastEndpoint resolves a wildcard tcp port")
    func lastEndpoint() throws {
        let context = try Context()
        let socket = try Socket(context: context, type: .rep)
        #expect(try socket.lastEndpoint == "")
        try socket.bind("tcp://127.0.0.1:*")
        let endpoint = try socket.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let port = try #require(Int(endpoint.split(separator: ":").last ?? ""))
        #expect(port > 0)
        try socket.unbind(endpoint)
        let again = try #require(throws: ZeroMQError.self) { try socket.unbind(endpoint) }
        #expect(again.errno == ENOENT)
        #expect(again.operation == "zmq_unbind(\(endpoint))")

        // The listener closes asynchronously; the port becomes bindable again shortly.
        let rebound = try Socket(context: context, type: .rep)
        let deadline = ContinuousClock.now + .seconds(2)
        var bound = false
        while !bound, ContinuousClock.now < deadline {
            do {
                try rebound.bind(endpoint)
                bound = true
            } catch {
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
        #expect(bound)
        #expect(try rebound.lastEndpoint == endpoint)
    }

    @Test("connect and disconnect, socket type and option names")
    func connectDisconnectAndNames() throws {
        let context = try Context()
        let socket = try Socket(context: context, type: .dealer)
        #expect(socket.type == .dealer)
        #expect(SocketType.router.description == "ROUTER")
        #expect(SocketOption.linger.name == "ZMQ_LINGER")
        #expect(SocketOption.routingID.description == "ZMQ_ROUTING_ID")
        let endpoint = uniqueInprocEndpoint()
        try socket.connect(endpoint)
        try socket.disconnect(endpoint)
        let error = try #require(throws: ZeroMQError.self) { try socket.disconnect(endpoint) }
        #expect(error.operation == "zmq_disconnect(\(endpoint))")
    }
}
