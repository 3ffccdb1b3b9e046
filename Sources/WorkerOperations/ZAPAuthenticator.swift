import Foundation
import Logging
import Synchronization
import ZeroMQ

/// The ZeroMQ authentication handler (ZAP, RFC 27) of a CURVE server socket: admits a client only
/// if its long-term public key is one of the keys allowed for the socket's ZAP domain.
///
/// libzmq asks the handler bound at `inproc://zeromq.zap.01` in the socket's context about
/// every new connection after the CURVE handshake proved the client holds the secret key of
/// the public key it presents. A refused client never gets a message through; the handler
/// logs the refusal (the first ten, then every thousandth). The handler runs on a thread of
/// its own (a libzmq socket belongs to one thread) and ends when the context terminates.
///
/// Fail closed: libzmq 4.3 (without the draft `ZMQ_ZAP_ENFORCE_DOMAIN`) admits CURVE clients
/// unchecked when no handler is bound. So when the handler stops for any other reason than the
/// context's termination, it reports the cause to `onFailure` and keeps its endpoint bound —
/// connections then wait for an answer that never comes instead of getting in — until its owner
/// has closed the sockets it guarded and calls ``release()``.
public final class ZAPAuthenticator: Sendable {
    /// The endpoint libzmq sends authentication requests to (RFC 27).
    public static let endpoint = "inproc://zeromq.zap.01"

    private let context: Context
    /// Key name (for logs) by public key, by ZAP domain.
    private let domains: [String: [[UInt8]: String]]
    private let faultAtRequest: Int?
    private let logger: Logger
    private let released = DispatchSemaphore(value: 0)

    /// `domains`: by ZAP domain (the server socket's `ZMQ_ZAP_DOMAIN`), the allowed keys by name.
    /// `faultAtRequest` is a test-only fault: the handler fails when it receives that request (1-based).
    public init(context: Context, domains: [String: [String: CurveKey]], faultAtRequest: Int? = nil, logger: Logger) {
        self.context = context
        self.domains = domains.mapValues { allowed in
            Dictionary(allowed.map { ($0.value.bytes, $0.key) }, uniquingKeysWith: { first, _ in first })
        }
        self.faultAtRequest = faultAtRequest
        self.logger = logger
    }

    /// Starts the handler thread and returns once it listens, so that no connection can be
    /// accepted before it. `onFailure` is called on the handler's thread, with the cause, if the
    /// handler stops while the context is still alive.
    public func start(onFailure: @escaping @Sendable (String) -> Void) throws(WorkerError) {
        let bound = DispatchSemaphore(value: 0)
        let failure = StartFailure()
        let thread = Thread { [self] in
            ThreadName.setCurrent("zap-handler")
            let socket: Socket
            do {
                socket = try Socket(context: context, type: .rep)
                try socket.set(.linger, .zero)
                try socket.bind(Self.endpoint)
            } catch {
                failure.message.withLock { $0 = "cannot start the CURVE authentication handler: \(error)" }
                bound.signal()
                return
            }
            bound.signal()
            if let cause = serve(socket) {
                logger.error("CURVE authentication handler stopped: \(cause)")
                onFailure(cause)
                // Still bound: libzmq keeps asking this socket, and nobody is admitted unchecked.
                released.wait()
            }
            socket.close()
        }
        thread.start()
        bound.wait()
        if let message = failure.message.withLock({ $0 }) { throw WorkerError(.socket, message) }
    }

    /// Lets a handler that failed close its socket. Call it after closing the server sockets it
    /// guarded and before terminating the context (which waits for every socket, this one too).
    public func release() {
        released.signal()
    }

    /// Answers requests until the context terminates (returns `nil`) or something fails (returns the cause).
    private func serve(_ socket: Socket) -> String? {
        var refused = 0
        var received = 0
        while true {
            let request: [[UInt8]]
            do {
                request = try socket.receiveMultipart()
            } catch {
                return error.code == .contextTerminated ? nil : "receiving a ZAP request failed: \(error)"
            }
            received += 1
            if let faultAtRequest, received >= faultAtRequest {
                return "injected test fault (SIGNAL_WORKER_TEST_ONLY_ZAP_FAULT_AT_REQUEST=\(faultAtRequest)): request \(received) not answered"
            }
            let decision = decide(request)
            if decision.status != "200" {
                refused += 1
                if refused <= 10 || refused % 1_000 == 0 {
                    logger.warning(
                        "refused a connection: \(decision.text)",
                        metadata: [
                            "peer": "\(text(request, 3))", "mechanism": "\(text(request, 5))", "domain": "\(text(request, 2))",
                            "refused_total": "\(refused)",
                        ])
                }
            }
            let requestID = request.count > 1 ? request[1] : []
            do {
                try socket.send(multipart: [
                    Array("1.0".utf8), requestID, Array(decision.status.utf8), Array(decision.text.utf8),
                    Array(decision.user.utf8), [],
                ])
            } catch {
                return error.code == .contextTerminated ? nil : "sending a ZAP reply failed: \(error)"
            }
        }
    }

    /// RFC 27 request frames: version, request id, domain, address, identity, mechanism, credentials…
    private func decide(_ request: [[UInt8]]) -> (status: String, text: String, user: String) {
        guard request.count >= 6, text(request, 0) == "1.0" else {
            return ("400", "malformed ZAP request", "")
        }
        guard let allowed = domains[text(request, 2)] else {
            return ("400", "unknown ZAP domain \(text(request, 2))", "")
        }
        guard text(request, 5) == "CURVE" else {
            return ("400", "mechanism \(text(request, 5)) refused: this socket requires CURVE", "")
        }
        guard request.count >= 7, let name = allowed[request[6]] else {
            return ("400", "unknown client public key", "")
        }
        return ("200", "OK", name)
    }

    private func text(_ frames: [[UInt8]], _ index: Int) -> String {
        index < frames.count ? String(decoding: frames[index], as: UTF8.self) : ""
    }
}

/// The handler thread's start-up failure, read by the thread that started it.
private final class StartFailure: Sendable {
    let message = Mutex<String?>(nil)
}
