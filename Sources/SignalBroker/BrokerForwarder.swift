import WorkerOperations
import Logging
import SignalProtocol
import ZeroMQ

/// The broker's per-message work, done on the one thread that owns both sockets: requests from the
/// frontend to the worker that owns their ordering key, replies from the backend to their client,
/// control messages into the live set.
///
/// Frames (docs/PROTOCOL.md, "Broker and several workers"):
/// - frontend in `[client, (REQ's empty delimiter,) body]` → backend out `[worker, client, (delimiter,) body]`;
///   the worker's DEALER then reads `[client, (delimiter,) body]`, what a bound ROUTER reads.
/// - backend in `[worker, client, …, reply]` → frontend out `[client, …, reply]`.
/// - backend in `[worker, control]` (one frame after the worker's id) → consumed.
final class BrokerForwarder {
    private let frontend: Socket
    private let backend: Socket
    private let configuration: BrokerConfiguration
    private let logger: Logger
    private var workers = BrokerWorkerSet()
    private var unroutedLog = LogThrottle(interval: .seconds(1))
    private var frames: [[UInt8]] = []

    /// What sending a request to a worker came to.
    private enum Delivery {
        case sent
        /// ROUTER_MANDATORY: the worker's connection is gone.
        case gone
        /// The worker's pipe is at its high-water mark.
        case full
        case failed(ZeroMQError)
    }

    /// Wraps the two bound sockets.
    init(frontend: Socket, backend: Socket, configuration: BrokerConfiguration, logger: Logger) {
        self.frontend = frontend
        self.backend = backend
        self.configuration = configuration
        self.logger = logger
    }

    /// How many workers are live.
    var liveWorkers: Int { workers.count }

    // MARK: - Requests

    /// Routes up to ``BrokerConfiguration/drainBatch`` waiting requests; returns how many were read.
    @discardableResult
    func drainFrontend() -> Int {
        do {
            return try frontend.receiveQueued(limit: configuration.drainBatch, into: &frames) { message in
                route(message)
                return true
            }
        } catch {
            logger.error("receive on the frontend failed: \(error)")
            return 0
        }
    }

    private func route(_ frames: [[UInt8]]) {
        guard frames.count >= 2 else { return }  // a ROUTER always delivers the client's id and a body
        let envelopeCount = RoutingEnvelope.count(in: frames)  // as the worker will read it
        let wellFormed = frames.count == envelopeCount + 1
        // One worker: nothing to choose, no need to parse.
        var request: BrokerRequestKey?
        func key() -> BrokerRequestKey {
            if let request { return request }
            let parsed = wellFormed ? BrokerRequestKey(frame: frames[envelopeCount]) : BrokerRequestKey(id: nil, orderingKey: nil)
            request = parsed
            return parsed
        }
        var attempts = 0
        while attempts < 2, let worker = choose(key: workers.count > 1 ? key().orderingKey : nil) {
            attempts += 1
            switch deliver(frames, to: worker) {
            case .sent:
                return
            case .gone:
                // Gone before its heartbeats stopped counting: forget it and route once more.
                if workers.remove(worker) { logLeft(worker, reason: "unreachable") }
            case .full:
                answerUnrouted(
                    frames.prefix(envelopeCount), id: key().id,
                    "the worker for this request is overloaded (its queue at the broker is full); retry later")
                return
            case .failed(let error):
                logger.error("forwarding a request failed: \(error)")
                answerUnrouted(frames.prefix(envelopeCount), id: key().id, "the broker could not forward the request; retry later")
                return
            }
        }
        answerUnrouted(
            frames.prefix(envelopeCount), id: key().id,
            workers.isEmpty ? "no worker is connected to the broker" : "the worker for this request is gone; retry later")
    }

    /// The rendezvous owner of `key`, or the next worker in turn for a request without one.
    private func choose(key: UInt64?) -> [UInt8]? {
        if let key { return workers.owner(of: key) }
        return workers.roundRobin()
    }

    /// Sends `[worker] + frames` without blocking; only the first frame can fail (then nothing was queued).
    private func deliver(_ frames: [[UInt8]], to worker: [UInt8]) -> Delivery {
        do {
            try backend.send(worker, more: true, flags: .dontWait)
        } catch {
            if error.code == .hostUnreachable { return .gone }
            if error.code == .wouldBlock { return .full }
            return .failed(error)
        }
        do {
            let last = frames.count - 1
            for index in 0...last {
                try backend.send(frames[index], more: index < last, flags: .dontWait)
            }
        } catch {
            return .failed(error)
        }
        return .sent
    }

    /// Answers the client itself with the retryable `store_unavailable` (the shim resends later).
    private func answerUnrouted(_ envelope: ArraySlice<[UInt8]>, id: String?, _ message: String) {
        if let count = unroutedLog.occurrence(at: .now) {
            logger.warning(
                "request answered store_unavailable by the broker: \(message)",
                metadata: ["message_id": "\(id ?? "-")", "count_since_last_line": "\(count)", "live_workers": "\(workers.count)"])
        }
        let body = Reply.error(id, ReplyError(.storeUnavailable, message)).encoded()
        sendToClient(envelope, body: body)
    }

    // MARK: - Replies and control messages

    /// Forwards up to ``BrokerConfiguration/drainBatch`` waiting replies and control messages;
    /// returns how many were read.
    @discardableResult
    func drainBackend() -> Int {
        let now = ContinuousClock.now
        do {
            return try backend.receiveQueued(limit: configuration.drainBatch, into: &frames) { message in
                guard message.count >= 2 else { return true }
                let worker = message[0]
                if message.count == 2 {
                    control(message[1], from: worker, at: now)
                } else {
                    workers.heard(worker, at: now)
                    sendToClient(message[1..<(message.count - 1)], body: message[message.count - 1])
                }
                return true
            }
        } catch {
            logger.error("receive on the backend failed: \(error)")
            return 0
        }
    }

    private func control(_ frame: [UInt8], from worker: [UInt8], at now: ContinuousClock.Instant) {
        switch BrokerControlMessage(frame: frame) {
        case .workerReady:
            if workers.ready(worker, at: now) {
                logger.info(
                    "worker joined",
                    metadata: ["worker": "\(RoutingIDText.describe(worker))", "live_workers": "\(workers.count)"])
            }
        case .workerLeaving:
            if workers.remove(worker) { logLeft(worker, reason: "leaving") }
        case nil:
            logger.debug(
                "ignored a one-frame message on the backend that is not a control message",
                metadata: ["worker": "\(RoutingIDText.describe(worker))", "bytes": "\(frame.count)"])
        }
    }

    /// Sends `envelope + [body]` to a client; a client that is gone or not reading loses it (it resends).
    private func sendToClient(_ envelope: ArraySlice<[UInt8]>, body: [UInt8]) {
        do {
            try frontend.send(multipart: envelope, last: body, flags: .dontWait)
        } catch {
            logger.debug(
                "reply dropped",
                metadata: ["reason": "\(error.code == .hostUnreachable ? "client disconnected" : "\(error)")"])
        }
    }

    // MARK: - Membership

    /// Drops the workers silent for longer than the expiry.
    func expireWorkers(now: ContinuousClock.Instant) {
        let expired = workers.expire(now: now, after: configuration.workerExpiry)
        for (index, worker) in expired.enumerated() {
            logLeft(
                worker, reason: "expired: no heartbeat for \(configuration.workerExpiry)",
                liveWorkers: workers.count + expired.count - index - 1)
        }
    }

    private func logLeft(_ worker: [UInt8], reason: String, liveWorkers: Int? = nil) {
        let metadata: Logger.Metadata = [
            "worker": "\(RoutingIDText.describe(worker))", "reason": "\(reason)",
            "live_workers": "\(liveWorkers ?? workers.count)",
        ]
        if reason == "leaving" {
            logger.info("worker left", metadata: metadata)
        } else {
            logger.warning("worker left", metadata: metadata)
        }
    }
}
