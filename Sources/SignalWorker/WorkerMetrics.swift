import WorkerOperations
import Metrics
import SignalProtocol
import Synchronization

/// The worker's metrics, created once through whatever `MetricsSystem` factory is bootstrapped
/// (Prometheus in the executable, a test factory in tests).
///
/// Names: `signal_worker_requests_total{status,action|code}`, `signal_worker_request_duration_seconds`
/// (receive → reply ready), `signal_worker_batch_apply_duration_seconds`, `signal_worker_batch_size`,
/// `signal_worker_store_errors_total`, `signal_worker_in_flight_requests`,
/// `signal_worker_replies_dropped_total`, `signal_worker_requests_held_total`,
/// `signal_worker_receiver_actions_total{receiver,action}` (each receiver's action for the messages
/// that reached the receivers; `signal_worker_requests_total` counts the first receiver's).
public struct WorkerMetrics: Sendable {
    private let okCounters: [ReplyAction: Counter]
    private let errorCounters: [ReplyErrorCode: Counter]
    private let otherErrors: Counter
    private let requestDuration: Timer
    private let batchDuration: Timer
    private let batchSize: Recorder
    private let storeErrors: Counter
    private let inFlight: Gauge
    private let droppedReplies: Counter
    private let heldRequests: Counter
    private let receiverActions: ReceiverActionCounters

    /// Creates the metric handles (use one instance per worker).
    public init(factory: (any MetricsFactory)? = nil) {
        let factory = factory ?? MetricsSystem.factory
        let requests = "signal_worker_requests_total"
        okCounters = Dictionary(
            uniqueKeysWithValues: ReplyAction.allCases.map {
                ($0, Counter(label: requests, dimensions: [("status", "ok"), ("action", $0.rawValue)], factory: factory))
            })
        let codes: [ReplyErrorCode] = [.badRequest, .unsupported, .conflict, .invalidValue, .storeUnavailable]
        errorCounters = Dictionary(
            uniqueKeysWithValues: codes.map {
                ($0, Counter(label: requests, dimensions: [("status", "error"), ("code", $0.rawValue)], factory: factory))
            })
        otherErrors = Counter(label: requests, dimensions: [("status", "error"), ("code", "other")], factory: factory)
        requestDuration = Timer(label: "signal_worker_request_duration_seconds", factory: factory)
        batchDuration = Timer(label: "signal_worker_batch_apply_duration_seconds", factory: factory)
        batchSize = Recorder(label: "signal_worker_batch_size", aggregate: true, factory: factory)
        storeErrors = Counter(label: "signal_worker_store_errors_total", factory: factory)
        inFlight = Gauge(label: "signal_worker_in_flight_requests", factory: factory)
        droppedReplies = Counter(label: "signal_worker_replies_dropped_total", factory: factory)
        heldRequests = Counter(label: "signal_worker_requests_held_total", factory: factory)
        receiverActions = ReceiverActionCounters(factory: factory)
    }

    /// Counts one reply by status and action or code; `held` replies (not applied because an
    /// earlier message of their object failed retryably) count in `signal_worker_requests_held_total`,
    /// not as store errors.
    func recordOutcome(_ outcome: Reply.Outcome, held: Bool = false) {
        recordOutcome(outcome, held: held, count: 1)
    }

    /// Counts `count` replies of one outcome (successes with one increment each counter).
    private func recordOutcome(_ outcome: Reply.Outcome, held: Bool, count: Int64) {
        switch outcome {
        case .ok(let action): okCounters[action]?.increment(by: count)
        case .applied(let receivers):
            okCounters[receivers.first?.action ?? .skipped]?.increment(by: count)
            for entry in receivers { receiverActions.increment(entry, by: count) }
        case .stale: okCounters[.stale]?.increment(by: count)
        case .error(let error):
            (errorCounters[error.code] ?? otherErrors).increment(by: count)
            if held {
                heldRequests.increment(by: count)
            } else if error.code == .storeUnavailable {
                storeErrors.increment(by: count)
            }
        }
    }

    /// Counts a batch's replies as ``recordOutcome(_:held:)`` does, each run of equal successes
    /// with one increment: a batch is mostly one action (`created`, …), and counting each reply
    /// alone cost the apply loop a lock and a lookup per message.
    func recordOutcomes(_ outcomes: [Reply.Outcome], held: [Bool]) {
        var run: (outcome: Reply.Outcome, count: Int64)?
        for (outcome, isHeld) in zip(outcomes, held) {
            switch outcome {
            case .ok, .applied:
                if let current = run, current.outcome == outcome {
                    run?.count += 1
                    continue
                }
                if let current = run { recordOutcome(current.outcome, held: false, count: current.count) }
                run = (outcome, 1)
            case .stale, .error:
                recordOutcome(outcome, held: isHeld)
            }
        }
        if let run { recordOutcome(run.outcome, held: false, count: run.count) }
    }

    /// Records one applied batch.
    func recordBatch(size: Int, duration: Duration) {
        batchSize.record(size)
        batchDuration.recordNanoseconds(duration.nanoseconds)
    }

    /// Records the time from reading a request to its reply being ready.
    func recordRequest(duration: Duration) {
        requestDuration.recordNanoseconds(duration.nanoseconds)
    }

    /// Sets the number of requests read and not yet answered.
    func queued(_ count: Int) { inFlight.record(count) }

    /// Counts a reply that could not be delivered.
    func replyDropped() { droppedReplies.increment() }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : product + attoseconds / 1_000_000_000
    }
}

/// `signal_worker_receiver_actions_total{receiver,action}`, one counter per pair seen, made on first use.
private final class ReceiverActionCounters: Sendable {
    private let factory: any MetricsFactory
    private let counters = Mutex<[ReceiverAction: Counter]>([:])

    init(factory: any MetricsFactory) { self.factory = factory }

    func increment(_ entry: ReceiverAction, by count: Int64 = 1) {
        counters.withLock { counters in
            if let counter = counters[entry] { return counter }
            let counter = Counter(
                label: "signal_worker_receiver_actions_total",
                dimensions: [("receiver", entry.receiver), ("action", entry.action.rawValue)], factory: factory)
            counters[entry] = counter
            return counter
        }.increment(by: count)
    }
}
