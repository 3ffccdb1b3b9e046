/// At most one log line per interval for an event that can repeat thousands of times a second
/// (a request with no worker to take it), with how many happened since the last line.
public struct LogThrottle: Sendable {
    /// Shortest time between two lines.
    public let interval: Duration
    private var lastLogged: ContinuousClock.Instant?
    private var unlogged = 0

    /// Creates a throttle logging at most once per `interval`.
    public init(interval: Duration) {
        self.interval = interval
    }

    /// Counts one occurrence; returns how many occurred since the last line (this one included)
    /// when a line should be logged now, `nil` otherwise.
    public mutating func occurrence(at now: ContinuousClock.Instant) -> Int? {
        unlogged += 1
        if let lastLogged, lastLogged.duration(to: now) < interval { return nil }
        lastLogged = now
        defer { unlogged = 0 }
        return unlogged
    }
}
