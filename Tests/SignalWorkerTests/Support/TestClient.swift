import ZeroMQ

/// A client socket (DEALER by default, or REQ) connected to a worker, used from one task.
///
/// Every wait has a timeout, so a worker that does not answer fails the test instead of hanging it.
final class TestClient {
    /// The socket.
    let socket: Socket
    private let poller = Poller()

    /// Connects a new socket of `type` to `endpoint` (its own context, LINGER 0); a CURVE client
    /// with `curve` (its key pair and the worker's public key).
    init(_ endpoint: String, type: SocketType = .dealer, curve: (client: CurveKeyPair, server: CurveKey)? = nil) throws {
        let context = try Context(ioThreads: 1, defaultLinger: .zero)
        socket = try Socket(context: context, type: type)
        try socket.set(.receiveHighWaterMark, 0)
        try socket.set(.sendHighWaterMark, 0)
        if let curve {
            try socket.set(.curveServerKey, curve.server)
            try socket.set(.curvePublicKey, curve.client.publicKey)
            try socket.set(.curveSecretKey, curve.client.secretKey)
        }
        try socket.connect(endpoint)
        poller.register(socket, for: .readable)
    }

    deinit {
        close()
    }

    /// Closes the socket and its context.
    func close() {
        guard !socket.isClosed else { return }
        let context = socket.context
        socket.close()
        context.terminate()
    }

    /// Sends one request frame (a REQ socket adds its empty delimiter itself).
    func send(_ json: String) throws {
        try socket.send(Array(json.utf8))
    }

    /// Sends raw bytes as one frame.
    func send(bytes: [UInt8]) throws {
        try socket.send(bytes)
    }

    /// The next reply, or `nil` if none arrives within `timeout`.
    func receive(timeout: Duration) throws -> ParsedReply? {
        guard try !poller.poll(timeout: timeout).isEmpty else { return nil }
        let frames = try socket.receiveMultipart(flags: .dontWait)
        guard let body = frames.last else { throw TestFailure("an empty message arrived") }
        if frames.count != 1 {
            throw TestFailure("a reply must be one frame after the envelope; got \(frames.count) frames")
        }
        return ParsedReply(body)
    }

    /// Sends `json` and waits for the reply to `id` (other replies are an error: one request at a time).
    func request(_ message: (id: String, json: String), timeout: Duration = .seconds(10)) throws -> ParsedReply {
        try send(message.json)
        guard let reply = try receive(timeout: timeout) else {
            throw TestFailure("no reply to \(message.id) within \(timeout)")
        }
        guard reply.id == message.id || reply.idIsNull else {
            throw TestFailure("reply to \(message.id) expected, got \(reply.raw)")
        }
        return reply
    }
}
