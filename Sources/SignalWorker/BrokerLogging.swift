/// At most one log line per interval for an event that can repeat thousands of times a second
/// (a request with no worker to take it), with how many happened since the last line.
struct BrokerLogThrottle: Sendable {
    /// Shortest time between two lines.
    let interval: Duration
    private var lastLogged: ContinuousClock.Instant?
    private var unlogged = 0

    /// Creates a throttle logging at most once per `interval`.
    init(interval: Duration) {
        self.interval = interval
    }

    /// Counts one occurrence; returns how many occurred since the last line (this one included)
    /// when a line should be logged now, `nil` otherwise.
    mutating func occurrence(at now: ContinuousClock.Instant) -> Int? {
        unlogged += 1
        if let lastLogged, lastLogged.duration(to: now) < interval { return nil }
        lastLogged = now
        defer { unlogged = 0 }
        return unlogged
    }
}

/// How routing ids appear in the broker's logs.
enum RoutingIDText {
    /// Printable ASCII as is (workers name themselves `host:pid:random`), anything else as hex
    /// (libzmq's generated ids: a zero byte and four bytes).
    static func describe(_ id: [UInt8]) -> String {
        if !id.isEmpty, id.allSatisfy({ (0x21...0x7E).contains($0) }) {
            return String(decoding: id, as: UTF8.self)
        }
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = Array("0x".utf8)
        for byte in id {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
