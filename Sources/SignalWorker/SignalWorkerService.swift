import WorkerOperations
import Logging
import Synchronization
import ServiceLifecycle
import SignalInbox
import SignalProtocol

/// The worker as a `Service`: a socket thread reading requests and an apply loop
/// committing them in batches, with replies sent only after their commit.
///
/// Graceful shutdown (SIGTERM/SIGINT through `ServiceGroup`): stop reading, apply and
/// answer everything already read, flush replies within the socket's LINGER, return.
public final class SignalWorkerService: Service, Sendable {
    private let configuration: WorkerConfiguration
    private let makeRegistry: @Sendable () async throws -> ReceiverRegistry
    private let metrics: WorkerMetrics
    private let logger: Logger
    private let onListening: @Sendable (String) -> Void
    /// Objects whose later messages wait for a message that failed retryably.
    private let holds: Mutex<RetryHolds>
    /// Counts for the periodic `activity` log line.
    private let summary: Mutex<ActivitySummary>

    /// Creates the service; `onListening` receives the bound endpoint (with a `*` port resolved).
    public convenience init(
        configuration: WorkerConfiguration, registry: ReceiverRegistry, metrics: WorkerMetrics = WorkerMetrics(),
        logger: Logger, onListening: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.init(
            configuration: configuration, makeRegistry: { registry }, metrics: metrics, logger: logger,
            onListening: onListening)
    }

    /// Creates the service with a registry made when it starts (after the store's service is up:
    /// that is where the schema is checked).
    public init(
        configuration: WorkerConfiguration, makeRegistry: @escaping @Sendable () async throws -> ReceiverRegistry,
        metrics: WorkerMetrics = WorkerMetrics(), logger: Logger,
        onListening: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.makeRegistry = makeRegistry
        self.metrics = metrics
        self.logger = logger
        self.onListening = onListening
        self.holds = Mutex(RetryHolds(holdTime: configuration.retryHold, capacity: configuration.maxRetryHolds))
        self.summary = Mutex(ActivitySummary(interval: configuration.activitySummaryInterval, now: .now))
    }

    public func run() async throws {
        let registry = try await makeRegistry()
        let queue = RequestQueue()
        let mailbox = try ReplyMailbox()
        let socketLoop = try SocketLoop(
            configuration: configuration, registry: registry, queue: queue, mailbox: mailbox, metrics: metrics,
            logger: logger)
        let endpoint = try await socketLoop.start()
        logger.info(
            "listening",
            metadata: ["endpoint": "\(endpoint)", "receivers": "\(registry.routesDescription)",
                "max_batch": "\(configuration.maxBatchSize)", "concurrent_batches": "\(concurrentBatches)"])
        onListening(endpoint)

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await applyLoop(queue: queue, mailbox: mailbox, registry: registry)
            } onGracefulShutdown: {
                socketLoop.requestStop()
            }
        } onCancel: {
            socketLoop.requestStop()
        }
        socketLoop.applyLoopFinished()
        await socketLoop.waitForExit()
        try socketLoop.throwIfAuthenticationFailed()
        logger.info("stopped: every request read was answered")
    }

    /// Batches applied at once: `--max-concurrent-batches`, or the store's default.
    private var concurrentBatches: Int {
        max(1, configuration.maxConcurrentBatches ?? configuration.store.defaultConcurrentBatches)
    }

    /// Takes batches until the queue is closed and drained; posts each batch's replies after its commit.
    ///
    /// Up to ``WorkerConfiguration/maxConcurrentBatches`` batches are applied at once, but a
    /// batch starts only when no batch in flight shares an object (sender, pk) with it, so each
    /// object's messages still apply in arrival order and a resent message meets its first copy's
    /// commit (dedupe). A new batch is taken only when there is room for it: batches grow while
    /// the others run.
    ///
    /// Batches with a key in common never run at once, so the retry holds of a key (``RetryHolds``)
    /// are read and updated by one batch at a time, in arrival order.
    private func applyLoop(queue: RequestQueue, mailbox: ReplyMailbox, registry: ReceiverRegistry) async {
        let limit = concurrentBatches
        let growsBehindWriter = configuration.store.hasOneWriter
        await withTaskGroup(of: Int.self) { group in
            var inFlight: [Int: Set<ObjectKey>] = [:]  // batch number -> its objects
            var number = 0
            while true {
                while inFlight.count >= limit, let done = await group.next() { inFlight[done] = nil }
                // One writer (SQLite): a batch taken while another is in flight grows until that one
                // left the store, instead of waiting at the writer with the few requests there were.
                let growUntil = growsBehindWriter && !inFlight.isEmpty ? number : 0
                guard
                    let batch = await queue.nextBatch(
                        maxCount: configuration.maxBatchSize, linger: configuration.maxBatchWait,
                        growUntilBatchesApplied: growUntil)
                else { break }
                // One batch at a time (`--max-concurrent-batches 1`): nothing can be in flight here, no keys to compare.
                let keys = limit > 1 ? Self.objects(of: batch) : []
                while inFlight.values.contains(where: { !$0.isDisjoint(with: keys) }), let done = await group.next() {
                    inFlight[done] = nil
                }
                number += 1
                let batchNumber = number
                inFlight[batchNumber] = keys
                group.addTask {
                    await self.applyAndReply(batch, registry: registry, mailbox: mailbox, queue: queue)
                    self.metrics.queued(queue.count)
                    return batchNumber
                }
            }
        }
    }

    /// Applies one batch and posts its replies (after the commit: `apply` returns after it).
    ///
    /// Messages of an object held by an earlier retryable failure are answered with the
    /// retryable error without being applied; the outcomes of the others update the holds.
    private func applyAndReply(
        _ batch: [QueuedRequest], registry: ReceiverRegistry, mailbox: ReplyMailbox, queue: RequestQueue
    ) async {
        let started = ContinuousClock.now
        let heldErrors = holds.withLock { Self.admit(batch, holds: &$0, now: started) }
        let admitted: [Int]
        var outcomes: [Reply.Outcome]
        if heldErrors.allSatisfy({ $0 == nil }) {
            // Nothing held (the usual case): the whole batch goes to the store as it came.
            admitted = Array(batch.indices)
            outcomes = await apply(batch, registry: registry)
        } else {
            admitted = batch.indices.filter { heldErrors[$0] == nil }
            outcomes = heldErrors.map { error -> Reply.Outcome in error.map(Reply.Outcome.error) ?? .ok(.skipped) }
            if !admitted.isEmpty {
                let applied = await apply(admitted.map { batch[$0] }, registry: registry)
                for (position, outcome) in zip(admitted, applied) { outcomes[position] = outcome }
            }
        }
        queue.batchApplied()
        let finished = ContinuousClock.now
        metrics.recordBatch(size: admitted.count, duration: started.duration(to: finished))
        holds.withLock { holds in
            // With no object held, only a failure that holds its object has anything to record.
            let holding = holds.count > 0
            for position in admitted where holding || outcomes[position].holdsObject {
                holds.record(batch[position].prepared.holdReference, outcome: outcomes[position], now: finished)
            }
        }

        var replies: [OutgoingReply] = []
        replies.reserveCapacity(batch.count)
        let logsEachMessage = logger.logLevel <= .debug
        metrics.recordOutcomes(outcomes, held: heldErrors.map { $0 != nil })
        for position in batch.indices {
            let outcome = outcomes[position]
            metrics.recordRequest(duration: batch[position].receivedAt.duration(to: finished))
            if case .error(let error) = outcome {
                logger.warning(
                    heldErrors[position] != nil ? "request held" : "request failed",
                    metadata: ["message_id": "\(batch[position].id)", "code": "\(error.code)",
                        "field": "\(error.field ?? "-")", "error": "\(error.message)"])
            } else if logsEachMessage {
                logApplied(batch[position], outcome: outcome, finished: finished)
            }
            replies.append(
                OutgoingReply(envelope: batch[position].envelope, reply: Reply(id: batch[position].id, outcome: outcome)))
        }
        mailbox.post(replies)
        logSummaryIfDue(outcomes, heldErrors: heldErrors, queued: queue.count, now: finished)
    }

    /// The debug line of one successful request: id, object, action, time since it was read.
    private func logApplied(_ request: QueuedRequest, outcome: Reply.Outcome, finished: ContinuousClock.Instant) {
        let object = request.prepared.holdReference.object
        var metadata: Logger.Metadata = [
            "message_id": "\(request.id)", "sender": "\(object.sender)", "pk": "\(object.pk)",
            "action": "\(outcome.action?.rawValue ?? "-")",
            "latency": "\(request.receivedAt.duration(to: finished).millisecondsText)",
        ]
        if let sequence = request.prepared.holdReference.sequence { metadata["seq"] = "\(sequence)" }
        logger.debug("applied", metadata: metadata)
    }

    /// Counts a batch's outcomes and logs the `activity` line when one is due (``ActivitySummary``).
    private func logSummaryIfDue(
        _ outcomes: [Reply.Outcome], heldErrors: [ReplyError?], queued: Int, now: ContinuousClock.Instant
    ) {
        let due = summary.withLock { summary -> [String: String]? in
            for (outcome, held) in zip(outcomes, heldErrors) { summary.add(outcome, held: held != nil) }
            return summary.take(now: now)
        }
        guard var fields = due else { return }
        fields["queued"] = "\(queued)"
        logger.info("activity", metadata: fields.mapValues { .string($0) })
    }

    /// The hold error of each message of `batch`, `nil` for those that may be applied.
    ///
    /// A message that the holds let through because it is the one its object waits for lets
    /// the later messages of that object in the same batch through as well: they apply after it,
    /// in its transaction, and the receiver fails them too if it fails retryably.
    static func admit(_ batch: [QueuedRequest], holds: inout RetryHolds, now: ContinuousClock.Instant) -> [ReplyError?] {
        var errors = [ReplyError?](repeating: nil, count: batch.count)
        guard holds.count > 0 else { return errors }
        var released = Set<ObjectKey>()
        for position in batch.indices {
            let reference = batch[position].prepared.holdReference
            if released.contains(reference.object) { continue }
            if holds.isHeld(reference.object, waitingFor: reference.id) { released.insert(reference.object) }
            errors[position] = holds.admit(reference, now: now)
        }
        return errors
    }

    /// Applies a batch, whatever its receivers, in one transaction and arrival order.
    ///
    /// (The messages are read through the array's subscript: `batch.map { $0.prepared.message }` copied
    /// each whole request first, a retain and a release per field, 7 % of the pool threads' samples.)
    private func apply(_ batch: [QueuedRequest], registry: ReceiverRegistry) async -> [Reply.Outcome] {
        var messages: [InboxMessage] = []
        messages.reserveCapacity(batch.count)
        for index in batch.indices { messages.append(batch[index].prepared.message) }
        return await registry.apply(messages)
    }

    /// The objects of a batch, each once: a batch sharing none of them may run beside it.
    ///
    /// (Read through the array's subscript: `Set(batch.map(\.prepared.message.object))` copied each
    /// whole request, a retain and a release per field, 9 % of the pool threads' samples under `perf`.)
    private static func objects(of batch: [QueuedRequest]) -> Set<ObjectKey> {
        var objects = Set<ObjectKey>(minimumCapacity: batch.count)
        for index in batch.indices { objects.insert(batch[index].prepared.message.object) }
        return objects
    }
}
