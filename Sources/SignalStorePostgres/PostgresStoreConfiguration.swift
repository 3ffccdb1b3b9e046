import Foundation

/// Settings of a ``PostgresSignalStore``: where the server is, which tables, how long to wait.
///
/// ```swift
/// var configuration = try PostgresStoreConfiguration(url: "postgres://app:secret@db.internal:5432/app")
/// configuration.acquireTimeout = .seconds(2)
/// ```
public struct PostgresStoreConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// Whether and how the connection is encrypted, as libpq's `sslmode`.
    public enum TLSMode: String, Sendable, Hashable, CaseIterable {
        /// Plain TCP (`sslmode=disable`).
        case disable
        /// TLS when the server offers it, plain otherwise; certificates not verified (`sslmode=prefer`, libpq's default).
        case prefer
        /// TLS required, certificate not verified (`sslmode=require`).
        case require
        /// TLS required, certificate chain verified, host name not (`sslmode=verify-ca`).
        case verifyCA = "verify-ca"
        /// TLS required, certificate chain and host name verified (`sslmode=verify-full`).
        case verifyFull = "verify-full"
    }

    /// Server host name or IP address.
    public var host: String
    /// Server TCP port.
    public var port: Int
    /// Role to log in as.
    public var username: String
    /// Password, if the server asks for one. Never printed.
    public var password: String?
    /// Database name (Django's `DATABASES["default"]["NAME"]`).
    public var database: String
    /// Encryption of the connection.
    public var tls: TLSMode
    /// `search_path` for the store's connections (the schema holding Django's tables and the
    /// worker's); `nil` keeps the server's default (`"$user", public`). Sent as a startup
    /// parameter, which PgBouncer refuses unless it is in PgBouncer's `ignore_startup_parameters`
    /// (and then ignores): behind PgBouncer, set it for the database role instead.
    public var searchPath: String?
    /// The worker's dedupe table (message ids already applied).
    public var appliedTable: String
    /// The worker's table of last applied outbox sequence per object (sender, pk).
    public var sequenceTable: String
    /// The earlier releases' table of last sequence per user, moved into ``sequenceTable`` and
    /// dropped by ``PostgresSignalStore/prepareWorkerTables()``.
    public var legacySequenceTable: String = "signal_worker_user_sequence"
    /// The worker's one-row table holding the version of its own tables.
    public var schemaVersionTable: String = "signal_worker_schema"
    /// The `sender` (the user model label) of the rows moved from ``legacySequenceTable``, which
    /// kept the last sequence of each user.
    public var legacySequenceSender: String = "auth.user"
    /// The shim's outbox table (python-bridge's `OutboxMessage`), read by `outbox_check`.
    public var outboxTable: String = "signal_bridge_outbox"
    /// Longest wait for a TCP connection to the server.
    public var connectTimeout: Duration
    /// Longest wait for a pooled connection before an operation fails with `.unavailable`.
    ///
    /// While the server is unreachable, postgres-nio's pool keeps retrying in the background
    /// (with backoff) and would queue requests for up to a minute; this bound makes the
    /// worker answer `store_unavailable` quickly instead.
    public var acquireTimeout: Duration
    /// Longest time one operation (one batch transaction) may take once it holds a
    /// connection; when exceeded the operation fails with `.unavailable` and the connection is
    /// closed, which rolls the transaction back (a query left pending on a dead connection
    /// cannot hold the batch longer). `nil`: no limit.
    public var operationTimeout: Duration?
    /// Longest wait for the connection pool to end once the store is asked to stop
    /// (cancellation or graceful shutdown); then ``PostgresSignalStore/run()`` returns anyway.
    public var stopTimeout: Duration
    /// Largest number of connections the store opens.
    public var maximumConnections: Int
    /// First key of the two-key advisory locks the store takes on user ids
    /// (`pg_advisory_xact_lock(namespace, user)`); change it only if another application
    /// uses the same value.
    public var advisoryLockNamespace: Int32
    /// `application_name` shown in `pg_stat_activity`.
    public var applicationName: String

    /// Creates a configuration; the defaults suit the reference Django project.
    public init(
        host: String, port: Int = 5432, username: String, password: String? = nil, database: String,
        tls: TLSMode = .prefer, searchPath: String? = nil, appliedTable: String = "signal_worker_applied",
        sequenceTable: String = "signal_worker_object_sequence", connectTimeout: Duration = .seconds(5),
        acquireTimeout: Duration = .seconds(5), operationTimeout: Duration? = .seconds(60),
        stopTimeout: Duration = .seconds(5), maximumConnections: Int = 4, advisoryLockNamespace: Int32 = 0x5357_0001,
        applicationName: String = "signal-worker"
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.searchPath = searchPath
        self.appliedTable = appliedTable
        self.sequenceTable = sequenceTable
        self.connectTimeout = connectTimeout
        self.acquireTimeout = acquireTimeout
        self.operationTimeout = operationTimeout
        self.stopTimeout = stopTimeout
        self.maximumConnections = maximumConnections
        self.advisoryLockNamespace = advisoryLockNamespace
        self.applicationName = applicationName
    }

    /// Parses `postgres://user[:password]@host[:port]/database[?parameters]`
    /// (`postgresql://` too), as libpq and Django's `dj-database-url` write it.
    ///
    /// User, password and database may be percent-encoded; an IPv6 host is written in
    /// brackets. Query parameters: `sslmode` (`disable`, `allow`, `prefer` (default),
    /// `require`, `verify-ca`, `verify-full`), `connect_timeout`
    /// (seconds), `application_name`. Everything else is an error, so that a typo
    /// does not go unnoticed.
    public init(url: String) throws(URLError) {
        let redacted = URLRedaction.redactingPassword(in: url)
        func fail(_ problem: String) -> URLError { URLError(url: redacted, problem: problem) }

        guard let schemeEnd = url.range(of: "://") else {
            throw fail("expected postgres://user[:password]@host[:port]/database")
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw fail("the scheme must be postgres:// or postgresql://, not \(scheme)://")
        }
        var rest = url[schemeEnd.upperBound...]
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw fail("the database name is missing (…/database)") }
        let authority = rest[..<slash]
        let path = rest[rest.index(after: slash)...]

        guard let at = authority.lastIndex(of: "@") else { throw fail("the user name is missing (user@host)") }
        let userInfo = authority[..<at]
        let hostPort = authority[authority.index(after: at)...]
        let rawUser: Substring
        var password: String?
        if let colon = userInfo.firstIndex(of: ":") {
            rawUser = userInfo[..<colon]
            guard let decoded = String(userInfo[userInfo.index(after: colon)...]).removingPercentEncoding else {
                throw fail("the password has an invalid percent-encoding")
            }
            password = decoded
        } else {
            rawUser = userInfo
        }
        guard let username = String(rawUser).removingPercentEncoding, !username.isEmpty else {
            throw fail("the user name is missing or badly percent-encoded")
        }

        var host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw fail("an IPv6 host must end with ]") }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = hostPort
        }
        guard !host.isEmpty else { throw fail("the host is missing (Unix sockets are not supported)") }
        var port = 5432
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw fail("the port must be a number from 1 to 65535")
            }
            port = value
        }
        guard !path.isEmpty, !path.contains("/"), let database = String(path).removingPercentEncoding,
            !database.isEmpty
        else {
            throw fail("the path must be one database name (…/database)")
        }

        self.init(host: String(host), port: port, username: username, password: password, database: database)

        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? "") : ""
            switch key {
            case "sslmode":
                if value == "allow" {
                    tls = .prefer
                } else if let mode = TLSMode(rawValue: value) {
                    tls = mode
                } else {
                    throw fail("sslmode must be disable, allow, prefer, require, verify-ca or verify-full")
                }
            case "connect_timeout":
                guard let seconds = Int(value), seconds > 0 else {
                    throw fail("connect_timeout must be a positive number of seconds")
                }
                connectTimeout = .seconds(seconds)
            case "application_name":
                applicationName = value
            default:
                throw fail("unsupported URL parameter \"\(key)\" (supported: sslmode, connect_timeout, application_name)")
            }
        }
    }

    /// Why a URL could not be parsed; the URL is shown with its password replaced by `***`.
    public struct URLError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The URL, password redacted.
        public var url: String
        /// What is wrong with it.
        public var problem: String

        public var description: String { "invalid PostgreSQL URL \(url): \(problem)" }
    }

    /// The settings without the password.
    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }
}
