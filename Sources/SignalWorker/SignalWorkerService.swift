import Logging
import ServiceLifecycle
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
            metadata: ["endpoint": "\(endpoint)", "receivers": "\(registry.keys.map(\.description).joined(separator: " "))",
                "max_batch": "\(configuration.maxBatchSize)"])
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

    /// Takes batches until the queue is closed and drained; posts each batch's replies after its commit.
    ///
    /// Up to ``WorkerConfiguration/maxConcurrentBatches`` batches are applied at once, but a
    /// batch starts only when no batch in flight shares an ordering key (user) with it, so each
    /// user's messages still apply in arrival order and a resent message meets its first copy's
    /// commit (dedupe). A new batch is taken only when there is room for it: batches grow while
    /// the others run.
    private func applyLoop(queue: RequestQueue, mailbox: ReplyMailbox, registry: ReceiverRegistry) async {
        let limit = max(1, configuration.maxConcurrentBatches ?? configuration.store.defaultConcurrentBatches)
        await withTaskGroup(of: Int.self) { group in
            var inFlight: [Int: Set<Int>] = [:]  // batch number -> its ordering keys
            var number = 0
            while true {
                while inFlight.count >= limit, let done = await group.next() { inFlight[done] = nil }
                guard let batch = await queue.nextBatch(maxCount: configuration.maxBatchSize, linger: configuration.maxBatchWait)
                else { break }
                let keys = Set(batch.map(\.prepared.orderingKey))
                while inFlight.values.contains(where: { !$0.isDisjoint(with: keys) }), let done = await group.next() {
                    inFlight[done] = nil
                }
                number += 1
                let batchNumber = number
                inFlight[batchNumber] = keys
                group.addTask {
                    await self.applyAndReply(batch, registry: registry, mailbox: mailbox)
                    self.metrics.queued(queue.count)
                    return batchNumber
                }
            }
        }
    }

    /// Applies one batch and posts its replies (after the commit: `apply` returns after it).
    private func applyAndReply(_ batch: [QueuedRequest], registry: ReceiverRegistry, mailbox: ReplyMailbox) async {
        let started = ContinuousClock.now
        let outcomes = await apply(batch, registry: registry)
        let finished = ContinuousClock.now
        metrics.recordBatch(size: batch.count, duration: started.duration(to: finished))

        var replies: [OutgoingReply] = []
        replies.reserveCapacity(batch.count)
        for (request, outcome) in zip(batch, outcomes) {
            metrics.recordOutcome(outcome)
            metrics.recordRequest(duration: request.receivedAt.duration(to: finished))
            if case .error(let error) = outcome {
                logger.warning(
                    "request failed",
                    metadata: ["message_id": "\(request.id)", "code": "\(error.code)",
                        "field": "\(error.field ?? "-")", "error": "\(error.message)"])
            }
            replies.append(OutgoingReply(envelope: request.envelope, body: Reply(id: request.id, outcome: outcome).encoded()))
        }
        mailbox.post(replies)
    }

    /// Applies a batch, grouped by receiver, keeping each receiver's messages in arrival order.
    private func apply(_ batch: [QueuedRequest], registry: ReceiverRegistry) async -> [Reply.Outcome] {
        let firstReceiver = batch[0].prepared.receiverIndex
        if batch.allSatisfy({ $0.prepared.receiverIndex == firstReceiver }) {
            return await registry.apply(batch.map(\.prepared.message), receiverIndex: firstReceiver)
        }
        var outcomes = [Reply.Outcome](repeating: .ok(.skipped), count: batch.count)
        let groups = Dictionary(grouping: batch.indices, by: { batch[$0].prepared.receiverIndex })
        for (receiverIndex, positions) in groups.sorted(by: { $0.key < $1.key }) {
            let results = await registry.apply(positions.map { batch[$0].prepared.message }, receiverIndex: receiverIndex)
            for (position, outcome) in zip(positions, results) { outcomes[position] = outcome }
        }
        return outcomes
    }
}
