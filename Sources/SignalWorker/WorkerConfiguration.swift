import WorkerOperations
import Foundation

import SignalStorePostgres
import SignalStoreSQLite
import ZeroMQ

/// Everything `signal-worker serve` can be told, with the defaults a Django project expects.
///
/// The executable fills it from arguments and `SIGNAL_WORKER_*` variables; tests build it directly.
public struct WorkerConfiguration: Sendable, Hashable {
    /// Where requests come in (a ZeroMQ endpoint the ROUTER socket binds); unused when ``connect`` is set.
    public var bind: String = "tcp://127.0.0.1:5557"
    /// A broker's backend (`signal-worker broker --backend`) to connect to instead of binding: the
    /// socket is then a DEALER that announces itself with `worker_ready` every ``heartbeatInterval``
    /// and gets the same request frames a bound ROUTER would. `nil`: bind ``bind``. CURVE in this
    /// mode is ``brokerCurve``.
    public var connect: String?
    /// How often a worker in connect mode sends `worker_ready` (the broker's `--heartbeat-interval`:
    /// it drops a worker after three missed ones).
    public var heartbeatInterval: Duration = .seconds(1)
    /// Django's database.
    public var store: StoreLocation = .sqlite(path: "db.sqlite3")
    /// Django's profile table.
    public var profileTable: String = "accounts_userprofile"
    /// Django's user table (the foreign key target).
    public var userTable: String = "auth_user"
    /// The shim's outbox table, read to answer `outbox_check` (python-bridge's `OutboxMessage`).
    public var outboxTable: String = "signal_bridge_outbox"
    /// The model label whose `post_save` the profile receiver handles (`auth.user`, or a custom user model).
    public var userModelLabel: String = "auth.user"
    /// `UserProfile._meta.get_field('profile_type').default`.
    public var defaultProfileType: String = "personal"
    /// The receivers to run, by their `--receivers` names (`profile`, `drf-token`), in Django's connection order.
    public var receivers: [String] = ["profile"]
    /// Most requests applied in one transaction.
    public var maxBatchSize: Int = 1_000
    /// Most batches applied at the same time, each in its own transaction; only batches with no
    /// object (sender, pk) in common overlap. `nil`: the store's choice, 2 on both
    /// (``StoreLocation/defaultConcurrentBatches``).
    public var maxConcurrentBatches: Int?
    /// How long a batch may wait for more requests after the first one; zero applies at once.
    public var maxBatchWait: Duration = .zero
    /// Largest request frame decoded; larger ones get `bad_request`.
    public var maxRequestBytes: Int = 64 * 1024
    /// Transport cap (`ZMQ_MAXMSGSIZE`, per frame): a peer sending a bigger frame is disconnected by
    /// libzmq. Keep it above ``maxRequestBytes`` so that a frame a little too large is answered
    /// `bad_request` rather than dropped; the default is ``maxRequestBytes`` + 64 KiB.
    public var maxMessageBytes: Int64 = 128 * 1024
    /// Requests waiting for the store before the worker stops reading the socket (backpressure).
    public var maxQueuedRequests: Int = 10_000
    /// ZeroMQ send high-water mark (replies queued per peer).
    public var highWaterMark: Int = 100_000
    /// ZeroMQ receive high-water mark: complete requests libzmq queues per peer before it stops
    /// reading that peer's connection (so one peer holds at most this many × ``maxMessageBytes``).
    public var receiveHighWaterMark: Int = 1_000
    /// How long closing the socket may wait for final replies to flush.
    public var linger: Duration = .seconds(2)
    /// SQLite durability of acknowledged commits (`PRAGMA synchronous`): `.full` survives power loss.
    public var sqliteSynchronous: SQLiteStoreConfiguration.Synchronous = .full
    /// Create Django-compatible tables when they are missing (trials without Django).
    public var createSchema: Bool = false
    /// How long a message answered with a retryable error holds back the later messages of its
    /// object (``RetryHolds``): well above the shim's relay backoff (30 s at most), so the resent
    /// message arrives first. Zero disables the hold.
    public var retryHold: Duration = .seconds(120)
    /// Most objects held at once (a bound on the holds' memory, about 200 bytes each).
    public var maxRetryHolds: Int = 100_000
    /// SQLite only: how long a write waits for another connection's lock before the batch fails
    /// with the retryable `store_unavailable`.
    public var sqliteBusyTimeout: Duration = .seconds(5)
    /// Shortest time between two `activity` log lines (counts of what was answered); zero: none.
    public var activitySummaryInterval: Duration = .seconds(60)
    /// How long applied message ids are kept for dedupe.
    public var dedupeRetention: Duration = .seconds(7 * 24 * 3600)
    /// Where to serve Prometheus metrics (`host:port`), or `nil` for no metrics endpoint.
    public var metricsBind: String?
    /// CURVE encryption and client authentication, or `nil` for plaintext (loopback only).
    public var curve: CurveServerSecurity?
    /// Bind a non-loopback ``bind`` without CURVE (`--allow-unauthenticated`); refused otherwise.
    public var allowUnauthenticated: Bool = false
    /// With ``connect``: CURVE towards the broker's backend (this worker's key pair, which the broker
    /// must list, and the broker's public key); `nil` for plaintext.
    public var brokerCurve: HealthCheck.CurveClient?

    /// Creates the default configuration.
    public init() {}
}


/// Which database the worker writes, parsed from `--store`.
public enum StoreLocation: Sendable, Hashable, CustomStringConvertible {
    /// A SQLite file (Django's `db.sqlite3`).
    case sqlite(path: String)
    /// A PostgreSQL server URL, `postgres://user[:password]@host[:port]/database`.
    case postgres(url: String)

    /// How many batch transactions pay to run at once on this kind of store.
    ///
    /// PostgreSQL: the server works on one batch while the worker prepares or commits the other.
    /// SQLite: its one writer connection still runs one transaction at a time; the second batch
    /// gathers the requests that arrive until the first one left the store (``hasOneWriter``),
    /// then is planned while the first one's replies are built and handed back, instead of each
    /// waiting for the other (docs/PERFORMANCE.md, "Running the benchmarks").
    public var defaultConcurrentBatches: Int {
        switch self {
        case .sqlite: 2
        case .postgres: 2
        }
    }

    /// Whether the store runs one write transaction at a time (SQLite): a second batch in flight
    /// only waits for the writer, so it is left to grow until the first one left the store.
    public var hasOneWriter: Bool {
        switch self {
        case .sqlite: true
        case .postgres: false
        }
    }

    /// Parses `sqlite:///abs/path`, `sqlite://relative/path`, a bare path, or `postgres://…`/`postgresql://…`.
    ///
    /// Anything else that starts like a URL (`scheme:`) is refused rather than taken for a file
    /// name: `postgres:/app:pw@db/app` is a typo, not a path. Errors show it password redacted.
    public init(parsing text: String) throws(WorkerError) {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
        } else if text.hasPrefix("sqlite://") {
            let path = String(text.dropFirst("sqlite://".count))
            guard !path.isEmpty else {
                throw WorkerError(.configuration, "store URL \(text) has no path; use sqlite:///abs/path/db.sqlite3")
            }
            self = .sqlite(path: path)
        } else if text.contains("://") || Self.startsWithScheme(text) {
            throw WorkerError(
                .configuration,
                "unknown store scheme in \(URLRedaction.redactingPassword(in: text)); use sqlite:///path/db.sqlite3 or "
                    + "postgres://user@host:port/db")
        } else {
            self = .sqlite(path: text)
        }
    }

    /// `letters:` at the start (RFC 3986 scheme characters), as URLs begin and file paths do not.
    private static func startsWithScheme(_ text: String) -> Bool {
        guard let colon = text.firstIndex(of: ":"), let first = text.first, first.isASCII, first.isLetter else {
            return false
        }
        return text[..<colon].allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }
    }

    /// The location for logs: the SQLite path or the PostgreSQL URL without its password.
    public var description: String {
        switch self {
        case .sqlite(let path): return "sqlite://\(path)"
        case .postgres(let url): return URLRedaction.redactingPassword(in: url)
        }
    }
}


