import ZeroMQ

/// A client socket (DEALER by default, or REQ) connected to a worker, used from one task.
///
/// Every wait has a timeout, so a worker that does not answer fails the test instead of hanging it.
/// `Sendable` only so that an awaited receive can wait on a thread of its own: the socket is used
/// by one thread at a time (the task, or the thread it awaits), which libzmq allows.
final class TestClient: @unchecked Sendable {
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

    /// The next reply, or `nil` if none arrives within `timeout`, waiting in `zmq_poll`: only for
    /// code that runs on a thread of its own (``onThread(_:_:)``).
    func blockingReceive(timeout: Duration) throws -> ParsedReply? {
        guard try !poller.poll(timeout: timeout).isEmpty else { return nil }
        return try takeReply()
    }

    /// The next reply, or `nil` if none arrives within `timeout`, waiting in `zmq_poll` on a thread
    /// of its own: a blocking wait in a test task would hold one of the cooperative pool's threads
    /// (two on CI), and the other tests of this process, whose timing assertions run on that pool,
    /// would stall.
    func receive(timeout: Duration) async throws -> ParsedReply? {
        try await onThread("test-client-receive") { try self.blockingReceive(timeout: timeout) }
    }

    /// The reply that `poll` found readable.
    private func takeReply() throws -> ParsedReply {
        let frames = try socket.receiveMultipart(flags: .dontWait)
        guard let body = frames.last else { throw TestFailure("an empty message arrived") }
        if frames.count != 1 {
            throw TestFailure("a reply must be one frame after the envelope; got \(frames.count) frames")
        }
        return ParsedReply(body)
    }

    /// Sends `json` and waits for the reply to `id` (other replies are an error: one request at a time),
    /// blocking in `zmq_poll`: only for code on a thread of its own.
    func blockingRequest(_ message: (id: String, json: String), timeout: Duration = .seconds(10)) throws -> ParsedReply {
        try send(message.json)
        return try Self.expectReply(try blockingReceive(timeout: timeout), to: message.id, within: timeout)
    }

    /// Sends `json` and waits for the reply to `id` (other replies are an error: one request at a time),
    /// without holding a thread while it waits.
    func request(_ message: (id: String, json: String), timeout: Duration = .seconds(10)) async throws -> ParsedReply {
        try send(message.json)
        return try Self.expectReply(try await receive(timeout: timeout), to: message.id, within: timeout)
    }

    private static func expectReply(_ reply: ParsedReply?, to id: String, within timeout: Duration) throws -> ParsedReply {
        guard let reply else { throw TestFailure("no reply to \(id) within \(timeout)") }
        guard reply.id == id || reply.idIsNull else { throw TestFailure("reply to \(id) expected, got \(reply.raw)") }
        return reply
    }
}
