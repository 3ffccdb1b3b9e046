import CZeroMQ
import Foundation
import Testing
import ZeroMQ

@Suite("Library facts, Z85 and CURVE")
struct LibraryAndCurveTests {
    @Test("version is libzmq 4.x and matches zmq_version")
    func version() {
        let version = ZeroMQ.version
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        #expect(version.major == 4)
        #expect(version == ZeroMQ.Version(major: Int(major), minor: Int(minor), patch: Int(patch)))
        #expect(version.description == "\(major).\(minor).\(patch)")
        #expect(version >= ZeroMQ.Version(major: 4, minor: 0, patch: 0))
    }

    @Test("has(.curve) and has(\"curve\") match zmq_has")
    func capabilities() {
        #expect(ZeroMQ.has(.curve) == (zmq_has("curve") == 1))
        #expect(ZeroMQ.has("curve") == ZeroMQ.has(.curve))
        #expect(ZeroMQ.has(.ipc) == (zmq_has("ipc") == 1))
        #expect(ZeroMQ.has("no-such-capability") == false)
    }

    @Test("Z85 round trips and rejects bad lengths")
    func z85() throws {
        // The test vector from the Z85 specification (RFC 32).
        let bytes: [UInt8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]
        #expect(try ZeroMQ.z85Encode(bytes) == "HelloWorld")
        #expect(try ZeroMQ.z85Decode("HelloWorld") == bytes)
        #expect(try ZeroMQ.z85Encode([]) == "")
        #expect(try #require(throws: ZeroMQError.self) { try ZeroMQ.z85Encode([1, 2, 3]) }.code == .invalidArgument)
        #expect(try #require(throws: ZeroMQError.self) { try ZeroMQ.z85Decode("abcd") }.code == .invalidArgument)
    }

    @Test("CurveKey accepts 32 bytes or 40 Z85 characters and never prints itself",
          .enabled(if: ZeroMQ.has(.curve), "libzmq was built without CURVE"))
    func curveKeys() throws {
        let pair = try ZeroMQ.curveKeyPair()
        #expect(pair.publicKey.bytes.count == 32)
        #expect(pair.secretKey.z85.count == 40)
        #expect(try CurveKey(z85: pair.secretKey.z85) == pair.secretKey)
        #expect(try CurveKey(bytes: pair.publicKey.bytes) == pair.publicKey)
        #expect(try CurveKeyPair(secretKey: pair.secretKey).publicKey == pair.publicKey)
        #expect(!"\(pair.secretKey)".contains(pair.secretKey.z85))
        #expect(!String(reflecting: pair).contains(pair.secretKey.z85))
        #expect(throws: ZeroMQError.self) { try CurveKey(bytes: [1, 2, 3]) }
        #expect(throws: ZeroMQError.self) { try CurveKey(z85: "short") }

        let context = try Context()
        let socket = try Socket(context: context, type: .dealer)
        try socket.set(.curveServerKey, pair.publicKey)
        #expect(try socket.get(.curveServerKey) == pair.publicKey)
    }

    @Test("CURVE round trip succeeds with the right server key and fails with a wrong one",
          .enabled(if: ZeroMQ.has(.curve), "libzmq was built without CURVE"))
    func curveRoundTrip() throws {
        let context = try Context()
        let serverKeys = try CurveKeyPair.generate()
        let clientKeys = try CurveKeyPair.generate()

        let server = try makeSocket(context, .router, timeout: .milliseconds(300))
        try server.set(.curveServer, true)
        try server.set(.curveSecretKey, serverKeys.secretKey)
        #expect(try server.get(.curveServer))
        try server.bind("tcp://127.0.0.1:*")
        let endpoint = try server.lastEndpoint

        let client = try makeSocket(context, .dealer)
        try client.set(.curveServerKey, try CurveKey(z85: serverKeys.publicKey.z85))
        try client.set(.curvePublicKey, clientKeys.publicKey)
        try client.set(.curveSecretKey, clientKeys.secretKey)
        try client.set(.routingID, bytes("trusted"))
        try client.connect(endpoint)
        try client.send(bytes("secret hello"))
        try server.set(.receiveTimeout, .seconds(5))
        let request = try server.receiveMultipart()
        #expect(request == [bytes("trusted"), bytes("secret hello")])
        try server.send(multipart: [request[0], bytes("secret reply")])
        #expect(try client.receive() == bytes("secret reply"))

        let impostor = try makeSocket(context, .dealer)
        try impostor.set(.curveServerKey, try CurveKeyPair.generate().publicKey)
        try impostor.set(.curvePublicKey, clientKeys.publicKey)
        try impostor.set(.curveSecretKey, clientKeys.secretKey)
        try impostor.connect(endpoint)
        try impostor.send(bytes("should not arrive"))
        try server.set(.receiveTimeout, .milliseconds(300))
        let error = try #require(throws: ZeroMQError.self) { try server.receiveMultipart() }
        #expect(error.code == .timedOut)
    }

    @Test("a ZAP handler built on the wrapper admits a known CURVE key and refuses an unknown one",
          .enabled(if: ZeroMQ.has(.curve), "libzmq was built without CURVE"))
    func zapRefusesUnknownKey() throws {
        let context = try Context()
        let serverKeys = try CurveKeyPair.generate()
        let trustedKeys = try CurveKeyPair.generate()
        let strangerKeys = try CurveKeyPair.generate()
        let allowedKey = trustedKeys.publicKey.bytes

        // RFC 27 handler at inproc://zeromq.zap.01, in the same context, bound before the server.
        let handlerReady = DispatchSemaphore(value: 0)
        let handlerDone = DispatchSemaphore(value: 0)
        let stop = Locked(false)
        let decisions = Locked<[String]>([])
        Thread {
            defer { handlerDone.signal() }
            guard let handler = try? makeSocket(context, .rep, timeout: .milliseconds(20)),
                (try? handler.bind("inproc://zeromq.zap.01")) != nil
            else {
                handlerReady.signal()
                return
            }
            handlerReady.signal()
            while !stop.value {
                guard let request = try? handler.receiveMultipart() else { continue }
                let mechanism = request.count > 5 ? String(decoding: request[5], as: UTF8.self) : ""
                let admitted = request.count >= 7 && mechanism == "CURVE" && request[6] == allowedKey
                decisions.value.append(admitted ? "200" : "400")
                try? handler.send(multipart: [
                    bytes("1.0"), request.count > 1 ? request[1] : [],
                    bytes(admitted ? "200" : "400"), bytes(admitted ? "OK" : "unknown key"),
                    bytes(admitted ? "trusted" : ""), [],
                ])
            }
        }.start()
        #expect(handlerReady.wait(timeout: .now() + 2) == .success)

        let server = try makeSocket(context, .router, timeout: .seconds(5))
        try server.set(.curveServer, true)
        try server.set(.curveSecretKey, serverKeys.secretKey)
        try server.set(.zapDomain, "signals")
        try server.bind("tcp://127.0.0.1:*")
        let endpoint = try server.lastEndpoint

        func client(_ keys: CurveKeyPair, id: String) throws -> Socket {
            let socket = try makeSocket(context, .dealer)
            try socket.set(.curveServerKey, serverKeys.publicKey)
            try socket.set(.curvePublicKey, keys.publicKey)
            try socket.set(.curveSecretKey, keys.secretKey)
            try socket.set(.routingID, bytes(id))
            try socket.connect(endpoint)
            return socket
        }

        let stranger = try client(strangerKeys, id: "stranger")
        try stranger.send(bytes("let me in"))
        let trusted = try client(trustedKeys, id: "trusted")
        try trusted.send(bytes("hello"))

        // Only the trusted client's message arrives; the stranger's never does.
        #expect(try server.receiveMultipart() == [bytes("trusted"), bytes("hello")])
        try server.set(.receiveTimeout, .milliseconds(300))
        let error = try #require(throws: ZeroMQError.self) { try server.receiveMultipart() }
        #expect(error.code == .timedOut)
        #expect(decisions.value.contains("400"))
        #expect(decisions.value.contains("200"))

        stop.value = true
        #expect(handlerDone.wait(timeout: .now() + 2) == .success)
    }
}
