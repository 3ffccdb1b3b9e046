/// When a worker in connect mode sends its next `worker_ready` to the broker: at once on start,
/// then every interval. Pure schedule, no I/O (the socket thread sends).
public struct BrokerHeartbeat: Sendable {
    /// Time between two `worker_ready` messages.
    public let interval: Duration
    private var next: ContinuousClock.Instant

    /// A schedule whose first heartbeat is due at `start`.
    public init(interval: Duration, start: ContinuousClock.Instant) {
        self.interval = interval
        self.next = start
    }

    /// Whether a heartbeat is due at `now`; if so, the next one is scheduled one interval later.
    public mutating func isDue(at now: ContinuousClock.Instant) -> Bool {
        guard now >= next else { return false }
        next = now + interval
        return true
    }

    /// How long until the next heartbeat is due (zero when it is).
    public func timeUntilDue(from now: ContinuousClock.Instant) -> Duration {
        max(.zero, now.duration(to: next))
    }
}
