import Foundation
import Logging
import Synchronization
import ZeroMQ

/// The ZeroMQ authentication handler (ZAP, RFC 27) of a CURVE worker: admits a client only if
/// its long-term public key is one of the allowed keys.
///
/// libzmq asks the handler bound at `inproc://zeromq.zap.01` in the socket's context about
/// every new connection after the CURVE handshake proved the client holds the secret key of
/// the public key it presents. A refused client never gets a message through; the worker
/// logs the refusal (the first ten, then every thousandth). The handler runs on a thread of
/// its own (a libzmq socket belongs to one thread) and ends when the context terminates.
final class ZAPAuthenticator: Sendable {
    /// The endpoint libzmq sends authentication requests to (RFC 27).
    static let endpoint = "inproc://zeromq.zap.01"

    private let context: Context
    private let allowedClients: [[UInt8]: String]
    private let logger: Logger

    /// `allowedClients`: key name (for logs) by public key.
    init(context: Context, allowedClients: [String: CurveKey], logger: Logger) {
        self.context = context
        self.allowedClients = Dictionary(
            allowedClients.map { ($0.value.bytes, $0.key) }, uniquingKeysWith: { first, _ in first })
        self.logger = logger
    }

    /// Starts the handler thread and returns once it listens, so that no connection can be
    /// accepted before it: libzmq admits CURVE clients unchecked when no handler is bound.
    func start() throws(WorkerError) {
        let bound = DispatchSemaphore(value: 0)
        let failure = StartFailure()
        let thread = Thread { [self] in
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
            serve(socket)
            socket.close()
        }
        thread.name = "signal-worker-zap"
        thread.start()
        bound.wait()
        if let message = failure.message.withLock({ $0 }) { throw WorkerError(.socket, message) }
    }

    private func serve(_ socket: Socket) {
        var refused = 0
        while true {
            let request: [[UInt8]]
            do {
                request = try socket.receiveMultipart()
            } catch {
                if error.code != .contextTerminated { logger.error("CURVE authentication handler stopped: \(error)") }
                return
            }
            let decision = decide(request)
            if decision.status != "200" {
                refused += 1
                if refused <= 10 || refused % 1_000 == 0 {
                    logger.warning(
                        "refused a connection: \(decision.text)",
                        metadata: ["peer": "\(text(request, 3))", "mechanism": "\(text(request, 5))", "refused_total": "\(refused)"])
                }
            }
            let requestID = request.count > 1 ? request[1] : []
            do {
                try socket.send(multipart: [
                    Array("1.0".utf8), requestID, Array(decision.status.utf8), Array(decision.text.utf8),
                    Array(decision.user.utf8), [],
                ])
            } catch {
                if error.code != .contextTerminated { logger.error("CURVE authentication handler stopped: \(error)") }
                return
            }
        }
    }

    /// RFC 27 request frames: version, request id, domain, address, identity, mechanism, credentials…
    private func decide(_ request: [[UInt8]]) -> (status: String, text: String, user: String) {
        guard request.count >= 6, text(request, 0) == "1.0" else {
            return ("400", "malformed ZAP request", "")
        }
        guard text(request, 5) == "CURVE" else {
            return ("400", "mechanism \(text(request, 5)) refused: this worker requires CURVE", "")
        }
        guard request.count >= 7, let name = allowedClients[request[6]] else {
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
