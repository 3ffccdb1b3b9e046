import WorkerOperations

/// Everything `signal-worker broker` can be told; the executable fills it from arguments and
/// `SIGNAL_WORKER_BROKER_*` variables, tests build it directly.
public struct BrokerConfiguration: Sendable, Hashable {
    /// Where clients (the Django shim: DEALER or REQ) connect: a ROUTER binds it, exactly as a worker's would.
    public var frontend: String = "tcp://127.0.0.1:5557"
    /// Where workers (`signal-worker serve --connect`) connect: a second ROUTER binds it.
    public var backend: String = "tcp://127.0.0.1:5558"
    /// How often workers are expected to send `worker_ready`; a worker silent for
    /// ``heartbeatLiveness`` intervals is dropped from the live set.
    public var heartbeatInterval: Duration = .seconds(1)
    /// Missed heartbeats after which a worker is considered gone.
    public var heartbeatLiveness: Int = 3
    /// ZeroMQ send high-water mark of both sockets (messages per peer).
    public var highWaterMark: Int = 100_000
    /// ZeroMQ receive high-water mark of both sockets: complete messages queued per peer before
    /// libzmq stops reading that peer's connection.
    public var receiveHighWaterMark: Int = 1_000
    /// Transport cap (`ZMQ_MAXMSGSIZE`, per frame) on both sockets: a peer sending a bigger frame is
    /// disconnected. The default matches a worker's default (`--max-request-bytes` 64 KiB + 64 KiB).
    public var maxMessageBytes: Int64 = 128 * 1024
    /// Bind a non-loopback frontend or backend without CURVE (`--allow-unauthenticated`); refused otherwise.
    public var allowUnauthenticated: Bool = false
    /// CURVE on the frontend: the broker's key pair and the client public keys admitted (the
    /// Django shim's); `nil` for plaintext.
    public var frontendCurve: CurveServerSecurity?
    /// CURVE on the backend: the broker's key pair and the worker public keys admitted
    /// (`serve --connect --curve-secret-key-file`); `nil` for plaintext, when anyone who can
    /// connect could pose as a worker and take requests.
    public var backendCurve: CurveServerSecurity?
    /// How long closing the sockets may take to flush messages already queued.
    public var linger: Duration = .milliseconds(200)
    /// Most messages read from one socket before the other gets its turn.
    public var drainBatch: Int = 1_024

    /// How long a worker may stay silent before it leaves the live set.
    public var workerExpiry: Duration { heartbeatInterval * heartbeatLiveness }

    /// Creates the default configuration.
    public init() {}
}
