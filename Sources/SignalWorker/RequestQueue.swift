import WorkerOperations
import Synchronization

/// A request accepted by the socket loop and waiting for the store.
struct QueuedRequest: Sendable {
    /// The routing frames to send the reply back with.
    var envelope: [[UInt8]]
    /// The request id, echoed in the reply.
    var id: String
    /// The validated message.
    var prepared: ReceiverRegistry.Prepared
    /// When the socket loop read it, for the latency metric.
    var receivedAt: ContinuousClock.Instant
}

/// The hand-over from the socket thread to the apply loop: a FIFO that yields batches.
///
/// The socket thread pushes without blocking; the apply loop awaits the next batch.
/// `close()` ends the stream once the queue is drained (graceful shutdown).
final class RequestQueue: Sendable {
    private struct State {
        var items: [QueuedRequest] = []
        var head = 0
        /// The apply loop, while it waits, and what wakes it.
        var waiter: Waiter?
        /// Batches that left the store (``batchApplied()``).
        var batchesApplied = 0
        var closed = false
        var count: Int { items.count - head }

        /// Whether the queue holds `count` requests, `batchesApplied` batches left the store, or
        /// it is closed.
        func holds(count wanted: Int, batchesApplied applied: Int) -> Bool {
            closed || count >= wanted || batchesApplied >= applied
        }

        /// The waiter, taken out, if the queue now holds what it waits for.
        mutating func takeWaiterIfDue() -> CheckedContinuation<Void, Never>? {
            guard let waiter, holds(count: waiter.count, batchesApplied: waiter.batchesApplied) else { return nil }
            self.waiter = nil
            return waiter.continuation
        }
    }

    /// The apply loop waiting in ``nextBatch(maxCount:linger:growUntilBatchesApplied:)``.
    private struct Waiter {
        let continuation: CheckedContinuation<Void, Never>
        /// The queue length that wakes it (1: any request; more: a batch growing).
        let count: Int
        /// The number of batches that left the store that wakes it.
        let batchesApplied: Int
    }

    private let state = Mutex(State())

    /// Requests waiting.
    var count: Int { state.withLock { $0.count } }

    /// Appends a request; wakes the apply loop if it waits.
    func push(_ request: QueuedRequest) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.items.append(request)
            return state.takeWaiterIfDue()
        }
        waiter?.resume()
    }

    /// A batch left the store (committed, or answered with errors): a batch growing behind it is
    /// taken now.
    func batchApplied() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.batchesApplied += 1
            return state.takeWaiterIfDue()
        }
        waiter?.resume()
    }

    /// Batches that left the store so far (``batchApplied()``).
    var batchesApplied: Int { state.withLock { $0.batchesApplied } }

    /// No more pushes will come; the apply loop drains what is left and stops.
    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            return state.takeWaiterIfDue()
        }
        waiter?.resume()
    }

    /// The next batch of at most `maxCount` requests, in arrival order; `nil` once closed and empty.
    ///
    /// Waits for the first request; then, if `linger` is positive and the batch is not full, waits
    /// that long for more (group commit under light load). Under load the batch is simply what
    /// arrived while the previous transaction ran.
    ///
    /// `growUntilBatchesApplied`: while fewer batches than this left the store
    /// (``batchApplied()``), a batch that is not full waits to grow, up to `maxCount`. For a store
    /// with one writer: a batch taken while another one is in its transaction would only wait for
    /// the writer, and the requests arriving meanwhile belong in it (a transaction's fixed cost,
    /// its fsync included, is then shared by more messages).
    func nextBatch(maxCount: Int, linger: Duration, growUntilBatchesApplied: Int = 0) async -> [QueuedRequest]? {
        await wait(forCount: 1, batchesApplied: .max)
        let (available, closed, ended) = state.withLock { ($0.count, $0.closed, $0.batchesApplied) }
        if available == 0, closed { return nil }
        if available < maxCount, !closed {
            if ended < growUntilBatchesApplied {
                await wait(forCount: maxCount, batchesApplied: growUntilBatchesApplied)
            } else if linger > .zero {
                try? await Task.sleep(for: linger)
            }
        }
        return take(maxCount)
    }

    /// Waits until the queue holds `count` requests, `batchesApplied` batches left the store, or
    /// the queue is closed.
    private func wait(forCount count: Int, batchesApplied: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.holds(count: count, batchesApplied: batchesApplied) { return true }
                state.waiter = Waiter(continuation: continuation, count: count, batchesApplied: batchesApplied)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func take(_ maxCount: Int) -> [QueuedRequest] {
        state.withLock { state in
            if state.head == 0, state.items.count <= maxCount {
                // Everything waiting fits (the usual case): hand the array over instead of copying
                // each request out of it (a retain per field, then a release as the queue empties).
                var batch: [QueuedRequest] = []
                batch.reserveCapacity(state.items.count)  // becomes the queue's: room for as many again
                swap(&batch, &state.items)
                return batch
            }
            let end = min(state.items.count, state.head + maxCount)
            let batch = Array(state.items[state.head..<end])
            state.head = end
            if state.head == state.items.count {
                state.items.removeAll(keepingCapacity: true)
                state.head = 0
            } else if state.head > 4_096 {
                state.items.removeFirst(state.head)
                state.head = 0
            }
            return batch
        }
    }
}
