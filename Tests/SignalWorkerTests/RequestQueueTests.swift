import ProfileReceiver
import SignalInbox
import SignalProtocol
import Synchronization
import Testing

@testable import SignalWorker

/// The hand-over from the socket thread to the apply loop, without sockets or a store: which
/// requests a batch takes, and when (docs/PERFORMANCE.md, "A batch grows behind the writer").
@Suite("RequestQueue: batches in arrival order, grown behind a busy writer")
struct RequestQueueTests {
    let inbox = Inbox(receivers: [ProfileReceiver()])
    let decoder = RequestDecoder(maxFrameBytes: 65_536)

    /// A validated update of user `pk`, as the socket thread queues it.
    func request(_ pk: Int, seq: Int) throws -> QueuedRequest {
        let frame = Array(
            #"{"v":1,"id":"m\#(seq)","seq":\#(seq),"signal":"post_save","sender":"auth.user","created":false,"instance":{"model":"auth.user","pk":\#(pk),"fields":{}}}"#
                .utf8)
        guard case .signal(let envelope) = try decoder.decode(frame) else { throw QueueTestError.notASignal }
        return QueuedRequest(
            envelope: [], id: envelope.id, prepared: ReceiverRegistry.Prepared(message: try inbox.prepare(envelope)),
            receivedAt: .now)
    }

    func push(_ queue: RequestQueue, _ seqs: ClosedRange<Int>) throws {
        for seq in seqs { queue.push(try request(seq % 7, seq: seq)) }
    }

    /// Whether a `nextBatch` call has returned yet.
    final class Returned: Sendable {
        private let flag = Atomic(false)
        var value: Bool { flag.load(ordering: .sequentiallyConsistent) }
        func set() { flag.store(true, ordering: .sequentiallyConsistent) }
    }

    /// Starts `nextBatch` in a task.
    func startTaking(
        _ queue: RequestQueue, maxCount: Int, growUntil: Int
    ) -> (task: Task<[QueuedRequest]?, Never>, returned: Returned) {
        let returned = Returned()
        let task = Task {
            let batch = await queue.nextBatch(maxCount: maxCount, linger: .zero, growUntilBatchesApplied: growUntil)
            returned.set()
            return batch
        }
        return (task, returned)
    }

    @Test("with no batch in the store, a batch is whatever is queued, at once, in arrival order")
    func takesWhatIsQueued() async throws {
        let queue = RequestQueue()
        try push(queue, 1...3)
        let batch = await queue.nextBatch(maxCount: 2, linger: .zero)
        #expect(batch?.map(\.id) == ["m1", "m2"])
        let rest = await queue.nextBatch(maxCount: 2, linger: .zero, growUntilBatchesApplied: 0)
        #expect(rest?.map(\.id) == ["m3"])
        #expect(queue.count == 0)
    }

    @Test("behind a batch in the store, a batch grows until that batch left the store")
    func growsUntilTheBatchAheadIsApplied() async throws {
        let queue = RequestQueue()
        try push(queue, 1...2)
        let (task, returned) = startTaking(queue, maxCount: 10, growUntil: 1)
        try await Task.sleep(for: .milliseconds(50))
        #expect(!returned.value, "took a batch while the one ahead was in the store")
        try push(queue, 3...4)
        queue.batchApplied()
        let batch = await task.value
        #expect(batch?.map(\.id) == ["m1", "m2", "m3", "m4"])
    }

    @Test("a growing batch is taken as soon as it is full, even with the batch ahead still in the store")
    func aFullBatchDoesNotWait() async throws {
        let queue = RequestQueue()
        try push(queue, 1...1)
        let (task, returned) = startTaking(queue, maxCount: 3, growUntil: 5)
        try await Task.sleep(for: .milliseconds(20))
        #expect(!returned.value)
        try push(queue, 2...4)
        let batch = await task.value
        #expect(batch?.map(\.id) == ["m1", "m2", "m3"])
        #expect(queue.count == 1)
        #expect(queue.batchesApplied == 0)
    }

    @Test("closing the queue hands over a growing batch; a closed, empty queue ends the stream")
    func closeEndsTheWait() async throws {
        let queue = RequestQueue()
        try push(queue, 1...2)
        let (task, _) = startTaking(queue, maxCount: 10, growUntil: 1)
        try await Task.sleep(for: .milliseconds(20))
        queue.close()
        let batch = await task.value
        #expect(batch?.map(\.id) == ["m1", "m2"])
        let end = await queue.nextBatch(maxCount: 10, linger: .zero, growUntilBatchesApplied: 1)
        #expect(end == nil)
    }

    @Test("a batch already applied before the wait starts does not make the next one wait")
    func appliedBeforeTheWait() async throws {
        let queue = RequestQueue()
        queue.batchApplied()
        try push(queue, 1...1)
        let batch = await queue.nextBatch(maxCount: 10, linger: .zero, growUntilBatchesApplied: 1)
        #expect(batch?.map(\.id) == ["m1"])
    }
}

enum QueueTestError: Error {
    case notASignal
}
