import Foundation
import SignalInbox

/// The token receiver's SQL, per dialect.
struct TokenSQL {
    let dialect: SQLDialect
    let token: String
    let user: String

    init(_ configuration: DRFTokenReceiver.Configuration, dialect: SQLDialect) {
        self.dialect = dialect
        token = SQLIdentifier.quoted(configuration.tokenTable)
        user = SQLIdentifier.quoted(configuration.userTable)
    }

    /// Per created user: user id, does the user exist, does it have a token.
    func readUsers(_ users: [Int64]) -> BatchStatement {
        let sql: String
        switch dialect {
        case .sqlite:
            sql = """
                WITH "signal_worker_batch"("user_id") AS (VALUES \(BatchStatement.rowsMarker)) \
                SELECT b."user_id", EXISTS (SELECT 1 FROM \(user) WHERE "id" = b."user_id"), \
                EXISTS (SELECT 1 FROM \(token) WHERE "user_id" = b."user_id") FROM "signal_worker_batch" AS b
                """
        case .postgres:
            sql = """
                SELECT u.id, EXISTS (SELECT 1 FROM \(user) WHERE "id" = u.id), \
                EXISTS (SELECT 1 FROM \(token) WHERE "user_id" = u.id) FROM unnest($1::int8[]) AS u(id)
                """
        }
        return BatchStatement("read users and tokens", sql: sql, columns: [.integer], values: users.map(SQLValue.integer))
    }

    /// Inserts new tokens, `created` set to now as Django stores a `DateTimeField(auto_now_add=True)`
    /// with `USE_TZ = True`: UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]` text on SQLite, `timestamptz` on
    /// PostgreSQL (the transaction's `now()`).
    func insertTokens(_ tokens: [DRFTokenReceiver.NewToken]) -> BatchStatement {
        switch dialect {
        case .sqlite:
            let created = SQLValue.text(Self.djangoUTCTimestamp(Date()))
            return BatchStatement(
                "insert tokens",
                sql: "INSERT INTO \(token) (\"key\", \"created\", \"user_id\") VALUES \(BatchStatement.rowsMarker)",
                columns: [.text, .text, .integer], rows: tokens
            ) { token, values in
                values.append(.text(token.key))
                values.append(created)
                values.append(.integer(token.userID))
            }
        case .postgres:
            return BatchStatement(
                "insert tokens",
                sql: """
                    INSERT INTO \(token) ("key", "created", "user_id") \
                    SELECT x.k, now(), x.u FROM unnest($1::text[], $2::int8[]) AS x(k, u)
                    """,
                columns: [.text, .integer], rows: tokens
            ) { token, values in
                values.append(.text(token.key))
                values.append(.integer(token.userID))
            }
        }
    }

    /// `str(datetime)` of a naive UTC datetime, as Django's SQLite backend stores it: microseconds
    /// only when not zero.
    static func djangoUTCTimestamp(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let microseconds = Int(((interval - Double(seconds)) * 1_000_000).rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text =
            "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2)) "
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
        if microseconds > 0 { text += "." + pad(Int32(microseconds), 6) }
        return text
    }

    /// DRF's DDL of `authtoken_token` (authtoken 0001-0004) and the user table, if missing.
    var djangoCompatibleDDL: [String] {
        let created = dialect == .sqlite ? "datetime" : "timestamp with time zone"
        return [
            DjangoUserTable.ddl(dialect, table: user),
            """
            CREATE TABLE IF NOT EXISTS \(token) ("key" varchar(40) NOT NULL PRIMARY KEY, "created" \(created) NOT NULL, \
            "user_id" integer NOT NULL UNIQUE REFERENCES \(user) ("id") DEFERRABLE INITIALLY DEFERRED)
            """,
        ]
    }
}
