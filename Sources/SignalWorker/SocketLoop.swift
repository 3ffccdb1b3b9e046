import WorkerOperations
import Foundation
import Logging
import SignalInbox
import SignalProtocol
import Synchronization
import ZeroMQ

/// The thread that owns the socket — a bound ROUTER, or a DEALER connected to a broker
/// (`--connect`, which also sends the broker's `worker_ready` heartbeats): it reads requests,
/// decodes and validates them, answers what needs no store (pings, bad requests) and sends the
/// replies the apply loop posts.
///
/// libzmq sockets are not thread-safe, so the socket is created, used and closed on this
/// one thread; everything else reaches it through ``RequestQueue`` and ``ReplyMailbox``.
final class SocketLoop: Sendable {
    private enum Phase: Sendable {
        case starting, serving, stopRequested, draining
    }

    private struct State: Sendable {
        var phase: Phase = .starting
        var applyFinished = false
        /// Why the CURVE authentication handler stopped, once it did: the socket closes at once.
        var authenticationFailure: String?
    }

    let configuration: WorkerConfiguration
    let registry: ReceiverRegistry
    let queue: RequestQueue
    let mailbox: ReplyMailbox
    let metrics: WorkerMetrics
    let logger: Logger
    /// What a pong lists (docs/PROTOCOL.md, "Health check"): `outbox_check` when the inbox answers it.
    let pongFeatures: [String]
    private let thread: SocketThread
    private let state = Mutex(State())

    init(
        configuration: WorkerConfiguration, registry: ReceiverRegistry, queue: RequestQueue, mailbox: ReplyMailbox,
        metrics: WorkerMetrics, logger: Logger
    ) throws(WorkerError) {
        self.configuration = configuration
        self.registry = registry
        self.queue = queue
        self.mailbox = mailbox
        self.metrics = metrics
        self.logger = logger
        pongFeatures = registry.inbox.checksOutbox ? ["outbox_check"] : []
        thread = try SocketThread(name: "worker-socket", linger: configuration.linger)
    }

    /// Starts the thread; returns the endpoint actually bound (a `*` port resolved) once it listens.
    func start() async throws(WorkerError) -> String {
        try await thread.start { [self] started in threadMain(started: started) }
    }

    /// Stop reading requests; what was read is still applied and answered.
    func requestStop() {
        let changed = state.withLock { state -> Bool in
            guard state.phase == .serving || state.phase == .starting else { return false }
            state.phase = .stopRequested
            return true
        }
        if changed { mailbox.wake() }
    }

    /// The apply loop has answered everything: send the last replies and close.
    func applyLoopFinished() {
        state.withLock { $0.applyFinished = true }
        mailbox.wake()
    }

    /// Waits until the thread closed the socket.
    func waitForExit() async {
        await thread.waitForExit()
    }

    /// Throws if the socket was closed because the CURVE authentication handler stopped: the
    /// worker must then exit with an error rather than serve (or look as if it stopped normally).
    func throwIfAuthenticationFailed() throws(WorkerError) {
        guard let cause = state.withLock({ $0.authenticationFailure }) else { return }
        throw WorkerError(
            .socket,
            "stopped serving: the CURVE authentication handler failed (\(cause)); without it libzmq would admit "
                + "any CURVE client unchecked")
    }

    /// Called by the authentication handler's thread when it stops: close the socket now.
    private func authenticationFailed(_ cause: String) {
        state.withLock { state in
            if state.authenticationFailure == nil { state.authenticationFailure = cause }
        }
        mailbox.wake()
    }

    // MARK: - The thread

    private func threadMain(started: (Result<String, WorkerError>) -> Void) {
        let socket: Socket
        let endpoint: String
        var authenticator: ZAPAuthenticator?
        do throws(WorkerError) {
            if let broker = configuration.connect {
                (socket, endpoint) = try connectDealer(to: broker)
            } else {
                (socket, endpoint, authenticator) = try bindRouter()
            }
        } catch {
            authenticator?.release()
            thread.context.terminate()
            started(.failure(error))
            thread.finished()
            return
        }
        state.withLock { if $0.phase == .starting { $0.phase = .serving } }
        started(.success(endpoint))

        let replies = ReplySender(socket: socket, metrics: metrics, logger: logger)
        if serve(socket, replies: replies) == .completed { replies.sendAll(mailbox.takeAll()) }
        socket.close()  // LINGER bounds how long queued replies may take to flush
        // Only now may a failed authentication handler unbind: the socket it guarded is closed.
        authenticator?.release()
        thread.context.terminate()
        thread.finished()
    }

    /// The bound ROUTER clients connect to (the default mode), and its CURVE authentication
    /// handler if it has one.
    private func bindRouter() throws(WorkerError) -> (Socket, String, ZAPAuthenticator?) {
        try configuration.checkBindIsAuthenticated()
        var authenticator: ZAPAuthenticator?
        if let curve = configuration.curve {
            // The handler must listen before the first client can finish a handshake.
            let handler = ZAPAuthenticator(
                context: thread.context, domains: [Self.zapDomain: curve.allowedClients],
                faultAtRequest: curve.testOnlyHandlerFaultAtRequest, logger: logger)
            try handler.start { [self] cause in authenticationFailed(cause) }
            authenticator = handler
        }
        do {
            let socket = try Socket(context: thread.context, type: .router)
            try socket.set(.routerMandatory, true)
            try setLimits(on: socket)
            if let curve = configuration.curve {
                try socket.set(.curveServer, true)
                try socket.set(.curveSecretKey, curve.serverKeys.secretKey)
                try socket.set(.zapDomain, Self.zapDomain)
            }
            try socket.bind(configuration.bind)
            return (socket, try socket.lastEndpoint, authenticator)
        } catch {
            authenticator?.release()
            throw WorkerError(.socket, "cannot listen on \(configuration.bind): \(error)")
        }
    }

    /// The ZAP domain of the worker's ROUTER.
    private static let zapDomain = "signal-worker"

    /// A DEALER connected to a broker's backend (`--connect`): it reads `[client, (delimiter,) body]`,
    /// the frames a bound ROUTER reads, so everything after the socket is the same in both modes.
    ///
    /// Its routing id is fixed for the process (`host:pid:random`), so a reconnect keeps the same
    /// identity at the broker, and with it the same users.
    private func connectDealer(to broker: String) throws(WorkerError) -> (Socket, String) {
        guard configuration.curve == nil else {
            throw WorkerError(
                .configuration,
                "--curve-allowed-clients is for a worker that binds; behind a broker the broker admits the clients "
                    + "(give the worker --curve-secret-key-file and --curve-server-key-file instead)")
        }
        do {
            let socket = try Socket(context: thread.context, type: .dealer)
            try socket.set(.routingID, Self.processRoutingID())
            try setLimits(on: socket)
            if let curve = configuration.brokerCurve {
                // A broker whose backend has CURVE admits only the workers whose keys it lists.
                try socket.set(.curveServerKey, curve.serverKey)
                try socket.set(.curvePublicKey, curve.clientKeys.publicKey)
                try socket.set(.curveSecretKey, curve.clientKeys.secretKey)
            }
            // ZMTP heartbeats: a broker that vanished without closing the connection is noticed,
            // and libzmq reconnects in the background.
            try socket.set(.heartbeatInterval, configuration.heartbeatInterval)
            try socket.set(.heartbeatTimeout, configuration.heartbeatInterval * 3)
            try socket.connect(broker)
            logger.info(
                "connecting to the broker",
                metadata: [
                    "backend": "\(broker)", "heartbeat_interval": "\(configuration.heartbeatInterval)",
                    "curve": "\(configuration.brokerCurve == nil ? "off" : "on")",
                ])
            return (socket, broker)
        } catch {
            throw WorkerError(.socket, "cannot connect to the broker at \(broker): \(error)")
        }
    }

    private func setLimits(on socket: Socket) throws(ZeroMQError) {
        try socket.set(.maxMessageSize, configuration.maxMessageBytes)
        try socket.set(.receiveHighWaterMark, configuration.receiveHighWaterMark)
        try socket.set(.sendHighWaterMark, configuration.highWaterMark)
        try socket.set(.linger, configuration.linger)
    }

    /// `host:pid:8 hex digits`: printable for the broker's logs, unique per process.
    private static func processRoutingID() -> [UInt8] {
        let host = ProcessInfo.processInfo.hostName.prefix(200)
        let random = String(UInt32.random(in: .min ... .max), radix: 16)
        return Array("\(host):\(ProcessInfo.processInfo.processIdentifier):\(random)".utf8)
    }

    /// Sends a control message to the broker (connect mode); a broker that is not there misses it,
    /// and the next heartbeat tries again.
    private func sendControl(_ message: BrokerControlMessage, on socket: Socket) {
        do {
            try socket.send(message.frame, flags: .dontWait)
        } catch {
            logger.debug("\(message.rawValue) not sent: \(error)")
        }
    }

    /// How ``serve(_:)`` ended.
    private enum ServeEnd {
        /// Stop requested, everything read answered: send the last replies.
        case completed
        /// The authentication handler stopped: close the socket at once.
        case authenticationFailed
    }

    private func serve(_ socket: Socket, replies: ReplySender) -> ServeEnd {
        // Only the paths of `attrs` the receivers read are built (docs/RECEIVERS.md, "Attributes").
        let decoder = RequestDecoder(maxFrameBytes: configuration.maxRequestBytes, attributes: registry.inbox.attributeLayout)
        let poller = Poller()
        let socketIndex = poller.register(socket, for: .readable)
        let wakeIndex = poller.register(fileDescriptor: mailbox.wakeDescriptor, for: .readable)
        var frames: [[UInt8]] = []
        var reading = true
        var queueClosed = false
        var heartbeat = configuration.connect.map { _ in
            BrokerHeartbeat(interval: configuration.heartbeatInterval, start: .now)
        }

        while true {
            let (phase, applyFinished, authenticationFailure) = state.withLock {
                ($0.phase, $0.applyFinished, $0.authenticationFailure)
            }
            if let authenticationFailure {
                logger.error(
                    "closing the socket: the CURVE authentication handler stopped (\(authenticationFailure)); no client may connect unchecked, so the worker stops serving"
                )
                if !queueClosed { queue.close() }
                return .authenticationFailed
            }
            if phase != .serving, !queueClosed {
                // Stop reading first, then tell the apply loop nothing more will come.
                queueClosed = true
                queue.close()
                logger.info("shutdown: stopped reading requests; finishing \(queue.count) queued")
                if heartbeat != nil {
                    // The broker routes nothing more here; the replies still go out.
                    sendControl(.workerLeaving, on: socket)
                    heartbeat = nil
                }
            }
            if queueClosed, applyFinished { return .completed }
            let now = ContinuousClock.now
            if heartbeat?.isDue(at: now) == true { sendControl(.workerReady, on: socket) }

            let wantRead = !queueClosed && queue.count < configuration.maxQueuedRequests
            if wantRead != reading {
                poller.update(socketIndex, for: wantRead ? .readable : [])
                reading = wantRead
            }
            let ready: [Poller.Ready]
            do {
                ready = try poller.poll(timeout: min(.milliseconds(250), heartbeat?.timeUntilDue(from: now) ?? .milliseconds(250)))
            } catch {
                logger.error("poll failed, stopping: \(error)")
                requestStop()
                continue
            }
            for item in ready {
                if item.index == wakeIndex {
                    replies.sendAll(mailbox.takeAll())
                } else if item.index == socketIndex, reading {
                    readAvailable(from: socket, decoder: decoder, frames: &frames, replies: replies)
                }
            }
        }
    }

    /// Reads what is waiting (bounded, so replies are not starved), and dispatches each request.
    private func readAvailable(
        from socket: Socket, decoder: RequestDecoder, frames: inout [[UInt8]], replies: ReplySender
    ) {
        defer { metrics.queued(queue.count) }
        guard queue.count < configuration.maxQueuedRequests else { return }
        do {
            try socket.receiveQueued(limit: 1_024, into: &frames) { message in
                dispatch(message, decoder: decoder, replies: replies)
                return queue.count < configuration.maxQueuedRequests
            }
        } catch {
            logger.error("receive failed: \(error)")
        }
    }

    private func dispatch(_ frames: [[UInt8]], decoder: RequestDecoder, replies: ReplySender) {
        let receivedAt = ContinuousClock.now
        let envelopeCount = RoutingEnvelope.count(in: frames)
        let envelope = Array(frames.prefix(envelopeCount))
        let body = frames.dropFirst(envelopeCount)
        guard body.count == 1, let frame = body.first else {
            reject(
                envelope, id: nil,
                ReplyError(.badRequest, "a request is exactly one frame after the routing frames; got \(body.count)"),
                replies: replies)
            return
        }
        let request: Request
        do {
            request = try decoder.decode(frame)
        } catch {
            reject(envelope, id: error.requestID, error.error, replies: replies)
            return
        }
        switch request {
        case .ping(let id):
            metrics.recordOutcome(.ok(.pong))
            replies.send(OutgoingReply(envelope: envelope, reply: Reply(id: id, outcome: .ok(.pong), features: pongFeatures)))
        case .signal(let signal):
            do {
                let prepared = try registry.prepare(signal)
                queue.push(QueuedRequest(envelope: envelope, id: signal.id, prepared: prepared, receivedAt: receivedAt))
            } catch {
                reject(envelope, id: signal.id, error, replies: replies)
            }
        }
    }

    private func reject(_ envelope: [[UInt8]], id: String?, _ error: ReplyError, replies: ReplySender) {
        logger.warning(
            "request rejected",
            metadata: ["message_id": "\(id ?? "-")", "code": "\(error.code)", "field": "\(error.field ?? "-")",
                "error": "\(error.message)"])
        metrics.recordOutcome(.error(error))
        replies.send(OutgoingReply(envelope: envelope, reply: Reply.error(id, error)))
    }
}

/// Sends replies on the socket thread's socket, each encoded into the one buffer it reuses
/// (no allocation per reply; libzmq copies the bytes into its own message).
private final class ReplySender {
    private let socket: Socket
    private let metrics: WorkerMetrics
    private let logger: Logger
    private var bytes: [UInt8] = []

    init(socket: Socket, metrics: WorkerMetrics, logger: Logger) {
        self.socket = socket
        self.metrics = metrics
        self.logger = logger
        bytes.reserveCapacity(256)
    }

    /// Largest buffer kept between replies: an error reply that quotes a long value is encoded
    /// in a buffer of its own size, then that buffer is let go.
    private static let keptCapacity = 4_096

    /// Sends each reply, in order.
    ///
    /// (Read through the array's subscript: a `for reply in replies` loop copied each reply first,
    /// a retain and a release of its frames and id, 3 % of the socket thread's samples.)
    func sendAll(_ replies: [OutgoingReply]) {
        for index in replies.indices { send(replies[index]) }
    }

    func send(_ reply: OutgoingReply) {
        reply.reply.encode(into: &bytes)
        defer { if bytes.capacity > Self.keptCapacity { bytes = [] } }
        do {
            try socket.send(multipart: reply.envelope, last: bytes, flags: .dontWait)
        } catch {
            // The client went away (EHOSTUNREACH) or stopped reading (HWM): it will time out and
            // resend; dedupe makes the resend harmless.
            metrics.replyDropped()
            logger.warning("reply dropped: \(error.code == .hostUnreachable ? "client disconnected" : "\(error)")")
        }
    }
}
