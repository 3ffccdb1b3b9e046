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
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
        var count: Int { items.count - head }
    }

    private let state = Mutex(State())

    /// Requests waiting.
    var count: Int { state.withLock { $0.count } }

    /// Appends a request; wakes the apply loop if it waits.
    func push(_ request: QueuedRequest) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.items.append(request)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// No more pushes will come; the apply loop drains what is left and stops.
    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The next batch of at most `maxCount` requests, in arrival order; `nil` once closed and empty.
    ///
    /// Waits for the first request; then, if `linger` is positive and the batch is not full, waits
    /// that long for more (group commit under light load). Under load the batch is simply what
    /// arrived while the previous transaction ran.
    func nextBatch(maxCount: Int, linger: Duration) async -> [QueuedRequest]? {
        while true {
            let (available, closed) = state.withLock { ($0.count, $0.closed) }
            if available == 0 {
                if closed { return nil }
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.count > 0 || state.closed { return true }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
                continue
            }
            if linger > .zero, available < maxCount, !closed { try? await Task.sleep(for: linger) }
            return take(maxCount)
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
