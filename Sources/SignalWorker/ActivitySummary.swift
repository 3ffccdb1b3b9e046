import WorkerOperations
import SignalProtocol

/// What the worker answered since the last summary line, for the periodic `activity` log
/// line (counts per action and error code, held requests).
///
/// The apply loop adds each batch's outcomes with ``add(_:held:)`` and asks ``take(now:)``
/// after it; at most one summary per ``interval`` is taken, and only when something happened,
/// so an idle worker logs nothing and no timer runs.
struct ActivitySummary: Sendable {
    /// Shortest time between two summaries.
    let interval: Duration
    private var since: ContinuousClock.Instant
    private var actions: [ReplyAction: Int] = [:]
    private var errors: [ReplyErrorCode: Int] = [:]
    private var held = 0

    /// Creates an empty summary whose first line may come `interval` after `now`.
    init(interval: Duration, now: ContinuousClock.Instant) {
        self.interval = interval
        self.since = now
    }

    /// Counts one answered request; `held` when it was held back by a retryable failure.
    mutating func add(_ outcome: Reply.Outcome, held: Bool) {
        if let action = outcome.action {
            actions[action, default: 0] += 1
        } else if let code = outcome.errorCode {
            errors[code, default: 0] += 1
            if held { self.held += 1 }
        }
    }

    /// The counts as log metadata values when a summary is due, and starts the next period.
    mutating func take(now: ContinuousClock.Instant) -> [String: String]? {
        guard interval > .zero, since.duration(to: now) >= interval, !(actions.isEmpty && errors.isEmpty) else {
            return nil
        }
        var fields: [String: String] = ["period": since.duration(to: now).secondsText]
        for action in ReplyAction.allCases where action != .pong { fields[action.rawValue] = String(actions[action] ?? 0) }
        fields["errors"] = String(errors.values.reduce(0, +))
        for (code, count) in errors { fields["errors_\(code.rawValue)"] = String(count) }
        fields["held"] = String(held)
        self = ActivitySummary(interval: interval, now: now)
        return fields
    }
}

extension Duration {
    /// Milliseconds with two decimals, `1.98 ms`: how the worker, `signal-worker ping` and the
    /// bridge print a duration.
    public var millisecondsText: String {
        let hundredths = (Double(components.seconds) * 1e5 + Double(components.attoseconds) / 1e13).rounded()
        let whole = Int64(hundredths) / 100
        let fraction = Int64(hundredths) % 100
        return "\(whole).\(fraction < 10 ? "0" : "")\(fraction) ms"
    }

    /// Seconds with one decimal, `60.0 s`, for periods.
    var secondsText: String {
        let tenths = (Double(components.seconds) * 10 + Double(components.attoseconds) / 1e17).rounded()
        return "\(Int64(tenths) / 10).\(Int64(tenths) % 10) s"
    }
}
