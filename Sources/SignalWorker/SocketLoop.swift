import Foundation
import Logging
import SignalProtocol
import Synchronization
import ZeroMQ

/// The thread that owns the ROUTER socket: it reads requests, decodes and validates them,
/// answers what needs no store (pings, bad requests) and sends the replies the apply loop posts.
///
/// libzmq sockets are not thread-safe, so the socket is created, used and closed on this
/// one thread; everything else reaches it through ``RequestQueue`` and ``ReplyMailbox``.
final class SocketLoop: Sendable {
    private enum Phase: Sendable {
        case starting, serving, stopRequested, draining, finished
    }

    private struct State: Sendable {
        var phase: Phase = .starting
        var applyFinished = false
        var exitWaiter: CheckedContinuation<Void, Never>?
    }

    let configuration: WorkerConfiguration
    let registry: ReceiverRegistry
    let queue: RequestQueue
    let mailbox: ReplyMailbox
    let metrics: WorkerMetrics
    let logger: Logger
    private let context: Context
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
        do {
            context = try Context(ioThreads: 1, defaultLinger: configuration.linger)
        } catch {
            throw WorkerError(.socket, "cannot create a ZeroMQ context: \(error)")
        }
    }

    /// Starts the thread; returns the endpoint actually bound (a `*` port resolved) once it listens.
    func start() async throws(WorkerError) -> String {
        let result: Result<String, WorkerError> = await withCheckedContinuation { started in
            let thread = Thread { [self] in self.threadMain(started: started) }
            thread.name = "signal-worker-socket"
            thread.start()
        }
        return try result.get()
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
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = state.withLock { state -> Bool in
                if state.phase == .finished { return true }
                state.exitWaiter = continuation
                return false
            }
            if finished { continuation.resume() }
        }
    }

    // MARK: - The thread

    private func threadMain(started: CheckedContinuation<Result<String, WorkerError>, Never>) {
        let socket: Socket
        let endpoint: String
        do {
            socket = try Socket(context: context, type: .router)
            try socket.set(.routerMandatory, true)
            try socket.set(.maxMessageSize, configuration.maxMessageBytes)
            try socket.set(.receiveHighWaterMark, configuration.highWaterMark)
            try socket.set(.sendHighWaterMark, configuration.highWaterMark)
            try socket.set(.linger, configuration.linger)
            if let curve = configuration.curve {
                // The handler must listen before the first client can finish a handshake.
                try ZAPAuthenticator(context: context, allowedClients: curve.allowedClients, logger: logger).start()
                try socket.set(.curveServer, true)
                try socket.set(.curveSecretKey, curve.serverKeys.secretKey)
                try socket.set(.zapDomain, "signal-worker")
            }
            try socket.bind(configuration.bind)
            endpoint = try socket.lastEndpoint
        } catch {
            finish()
            started.resume(returning: .failure(WorkerError(.socket, "cannot listen on \(configuration.bind): \(error)")))
            return
        }
        state.withLock { if $0.phase == .starting { $0.phase = .serving } }
        started.resume(returning: .success(endpoint))

        serve(socket)

        for reply in mailbox.takeAll() { send(reply, on: socket) }
        socket.close()  // LINGER bounds how long queued replies may take to flush
        context.terminate()
        finish()
    }

    private func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.phase = .finished
            defer { state.exitWaiter = nil }
            return state.exitWaiter
        }
        waiter?.resume()
    }

    private func serve(_ socket: Socket) {
        let decoder = RequestDecoder(maxFrameBytes: configuration.maxRequestBytes)
        let poller = Poller()
        let socketIndex = poller.register(socket, for: .readable)
        let wakeIndex = poller.register(fileDescriptor: mailbox.wakeDescriptor, for: .readable)
        var frames: [[UInt8]] = []
        var reading = true
        var queueClosed = false

        while true {
            let (phase, applyFinished) = state.withLock { ($0.phase, $0.applyFinished) }
            if phase != .serving, !queueClosed {
                // Stop reading first, then tell the apply loop nothing more will come.
                queueClosed = true
                queue.close()
                logger.info("shutdown: stopped reading requests; finishing \(queue.count) queued")
            }
            if queueClosed, applyFinished { return }

            let wantRead = !queueClosed && queue.count < configuration.maxQueuedRequests
            if wantRead != reading {
                poller.update(socketIndex, for: wantRead ? .readable : [])
                reading = wantRead
            }
            let ready: [Poller.Ready]
            do {
                ready = try poller.poll(timeout: .milliseconds(250))
            } catch {
                logger.error("poll failed, stopping: \(error)")
                requestStop()
                continue
            }
            for item in ready {
                if item.index == wakeIndex {
                    for reply in mailbox.takeAll() { send(reply, on: socket) }
                } else if item.index == socketIndex, reading {
                    readAvailable(from: socket, decoder: decoder, frames: &frames)
                }
            }
        }
    }

    /// Reads what is waiting (bounded, so replies are not starved), and dispatches each request.
    private func readAvailable(from socket: Socket, decoder: RequestDecoder, frames: inout [[UInt8]]) {
        var read = 0
        defer { metrics.queued(queue.count) }
        while read < 1_024, queue.count < configuration.maxQueuedRequests {
            do {
                try socket.receiveMultipart(into: &frames, flags: .dontWait)
            } catch where error.code == .wouldBlock {
                return
            } catch {
                logger.error("receive failed: \(error)")
                return
            }
            read += 1
            dispatch(frames, decoder: decoder, socket: socket)
        }
    }

    private func dispatch(_ frames: [[UInt8]], decoder: RequestDecoder, socket: Socket) {
        let receivedAt = ContinuousClock.now
        // ROUTER prepends the routing id; a REQ client adds an empty delimiter before the body.
        let envelopeCount = frames.count >= 3 && frames[1].isEmpty ? 2 : 1
        let envelope = Array(frames.prefix(envelopeCount))
        let body = frames.dropFirst(envelopeCount)
        guard body.count == 1, let frame = body.first else {
            reject(
                envelope, id: nil,
                ReplyError(.badRequest, "a request is exactly one frame after the routing frames; got \(body.count)"),
                socket: socket)
            return
        }
        let request: Request
        do {
            request = try decoder.decode(frame)
        } catch {
            reject(envelope, id: error.requestID, error.error, socket: socket)
            return
        }
        switch request {
        case .ping(let id):
            metrics.recordOutcome(.ok(.pong))
            send(OutgoingReply(envelope: envelope, body: Reply.ok(id, .pong).encoded()), on: socket)
        case .signal(let signal):
            do {
                let prepared = try registry.prepare(signal)
                queue.push(QueuedRequest(envelope: envelope, id: signal.id, prepared: prepared, receivedAt: receivedAt))
            } catch {
                reject(envelope, id: signal.id, error, socket: socket)
            }
        }
    }

    private func reject(_ envelope: [[UInt8]], id: String?, _ error: ReplyError, socket: Socket) {
        logger.warning(
            "request rejected",
            metadata: ["message_id": "\(id ?? "-")", "code": "\(error.code)", "field": "\(error.field ?? "-")",
                "error": "\(error.message)"])
        metrics.recordOutcome(.error(error))
        send(OutgoingReply(envelope: envelope, body: Reply.error(id, error).encoded()), on: socket)
    }

    private func send(_ reply: OutgoingReply, on socket: Socket) {
        do {
            try socket.send(multipart: reply.envelope + [reply.body], flags: .dontWait)
        } catch {
            // The client went away (EHOSTUNREACH) or stopped reading (HWM): it will time out and
            // resend; dedupe makes the resend harmless.
            metrics.replyDropped()
            logger.warning("reply dropped: \(error.code == .hostUnreachable ? "client disconnected" : "\(error)")")
        }
    }
}
