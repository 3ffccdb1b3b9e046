import Synchronization

/// The first of several racing outcomes (work finishing, a timeout, a stop request); later
/// ones are ignored. Waiting for it is not ended by cancellation: the racers decide.
final class FirstOutcome<Value: Sendable>: Sendable {
    private enum State {
        case pending([CheckedContinuation<Value, Never>])
        case settled(Value)
    }

    private let state = Mutex<State>(.pending([]))

    /// Records `value` unless an outcome was recorded already, and wakes every waiter;
    /// `true` when this call settled it.
    @discardableResult
    func settle(_ value: Value) -> Bool {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, Never>]? in
            guard case .pending(let waiters) = state else { return nil }
            state = .settled(value)
            return waiters
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        return true
    }

    /// The outcome, once there is one.
    var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let settled = state.withLock { state -> Value? in
                    switch state {
                    case .settled(let value):
                        return value
                    case .pending(let waiters):
                        state = .pending(waiters + [continuation])
                        return nil
                    }
                }
                if let settled { continuation.resume(returning: settled) }
            }
        }
    }
}
