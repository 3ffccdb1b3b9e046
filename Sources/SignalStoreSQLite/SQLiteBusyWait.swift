import Foundation
import GRDB

/// How the worker waits for a write lock that another connection (Django) holds.
///
/// SQLite's own handler (`sqlite3_busy_timeout`) sleeps 1, 2, 5, ... ms and then 100 ms
/// between attempts. Django saving in a loop releases the lock only for the moment between
/// one commit and the next `BEGIN IMMEDIATE`, so 100 ms naps miss nearly every gap: measured
/// on the 2-core test machine, a connection using that handler against a back-to-back
/// writer hit its 5 s timeout ("database is locked") every time, while one that retried
/// every 0.5 ms got the lock in 15-17 ms at the median (worst of 60: 390 ms). So the store
/// retries every ``interval`` until ``timeout``, measured from the first failed attempt.
struct SQLiteBusyWait: Sendable {
    /// Give up (the store then answers `store_unavailable`) after this long.
    let timeout: Duration
    /// The pause between attempts.
    var interval: Duration = .microseconds(500)

    /// The GRDB busy callback. SQLite calls it on the thread that ran into the lock, with
    /// `numberOfTries` 0 for a new wait, so the wait's start is kept per thread.
    var callback: Database.BusyCallback {
        let timeout = timeout
        let pause = UInt32(max(1, interval.microsecondsValue))
        return { numberOfTries in
            let now = ContinuousClock.now
            let started: ContinuousClock.Instant
            let slot = Thread.current.threadDictionary
            if numberOfTries == 0 || slot[Self.startKey] == nil {
                slot[Self.startKey] = WaitStart(now)
                started = now
            } else {
                started = (slot[Self.startKey] as? WaitStart)?.instant ?? now
            }
            guard started.duration(to: now) < timeout else { return false }
            usleep(pause)
            return true
        }
    }

    private static let startKey = "ProfileStoreSQLite.SQLiteBusyWait.start"

    /// A boxed instant (the thread dictionary holds objects).
    private final class WaitStart: NSObject {
        let instant: ContinuousClock.Instant
        init(_ instant: ContinuousClock.Instant) { self.instant = instant }
    }
}

extension Duration {
    /// Whole microseconds (rounded down).
    fileprivate var microsecondsValue: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}
