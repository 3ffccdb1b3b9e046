import SignalInbox
import SignalProtocol

/// The profile receiver's SQL, per dialect: the only SQL of the port.
///
/// Reads fetch, per user of the batch, whether the user exists and its profile; writes insert
/// the new profiles and rewrite the changed ones (all three columns, as Django's `save()`).
/// Dates travel as Django stores them, `YYYY-MM-DD` text (PostgreSQL reads any `DateStyle`'s
/// ISO input and `to_char` writes it back without consulting `DateStyle`).
struct ProfileSQL {
    let dialect: SQLDialect
    let profile: String
    let user: String

    init(_ configuration: ProfileReceiverConfiguration, dialect: SQLDialect) {
        self.dialect = dialect
        profile = SQLIdentifier.quoted(configuration.profileTable)
        user = SQLIdentifier.quoted(configuration.userTable)
    }

    /// What the profile table must look like (Django's `OneToOneField(User)` model).
    static func tables(_ configuration: ProfileReceiverConfiguration) -> [TableRequirement] {
        let profile = configuration.profileTable
        return [
            .userTable(configuration.userTable),
            TableRequirement(
                table: profile, missing: "the profile table does not exist; run `python manage.py migrate`",
                columns: [
                    .init("id", .integer, notNull: nil),
                    .init("user_id", .integer, notNull: true),
                    .init("profile_type", .text, notNull: true),
                    .init("sex", .text, notNull: false),
                    .init("birthdate", .date, notNull: false),
                ],
                primaryKey: .generated("id"),
                foreignKeys: [
                    .init(
                        column: "user_id", table: configuration.userTable,
                        reason: "the model's OneToOneField creates one")
                ],
                unique: [.init(column: "user_id", reason: "one profile per user; the model's OneToOneField makes it so")]),
        ]
    }

    // MARK: - Reads

    /// Per user: user id, does the user exist, has a profile, profile_type, sex, birthdate.
    func readUsers(_ users: [Int64]) -> BatchStatement {
        let sql: String
        switch dialect {
        case .sqlite:
            sql = """
                WITH "signal_worker_batch"("user_id") AS (VALUES \(BatchStatement.rowsMarker)) \
                SELECT b."user_id", EXISTS (SELECT 1 FROM \(user) WHERE "id" = b."user_id"), p."user_id" IS NOT NULL, \
                p."profile_type", p."sex", p."birthdate" \
                FROM "signal_worker_batch" AS b LEFT JOIN \(profile) AS p ON p."user_id" = b."user_id"
                """
        case .postgres:
            // LATERAL ... LIMIT 1 probes each index once per key, whatever the tables' sizes.
            sql = """
                SELECT u.id, au.found IS NOT NULL, p."user_id" IS NOT NULL, p."profile_type"::text, p."sex"::text, \
                to_char(p."birthdate", 'YYYY-MM-DD') \
                FROM unnest($1::int8[]) AS u(id) \
                LEFT JOIN LATERAL (SELECT true AS found FROM \(user) WHERE "id" = u.id LIMIT 1) AS au ON true \
                LEFT JOIN LATERAL (SELECT "user_id", "profile_type", "sex", "birthdate" FROM \(profile) \
                WHERE "user_id" = u.id LIMIT 1) AS p ON true
                """
        }
        return BatchStatement("read users and profiles", sql: sql, columns: [.integer], values: users.map(SQLValue.integer))
    }

    /// The state from the rows of ``readUsers(_:)``.
    static func state(from rows: [SQLRow]) throws(StoreError) -> ProfileState {
        var state = ProfileState(capacity: rows.count)
        for row in rows {
            guard let userID = row[0].integer else { continue }
            let exists = row[1].isTrue
            guard row[2].isTrue else {
                if exists { state.read(userID, exists: true, profile: nil) }
                continue
            }
            guard let profileType = row[3].text else {
                throw StoreError(.rejected, "the stored profile_type of user \(userID) is not text", operation: "read profile")
            }
            if !row[4].isNull, row[4].text == nil {
                throw StoreError(.rejected, "the stored sex of user \(userID) is not text", operation: "read profile")
            }
            var birthdate: DjangoDate?
            if !row[5].isNull {
                guard let text = row[5].text, let date = try? DjangoDate.parse(text) else {
                    throw StoreError(
                        .rejected, "the stored birthdate of user \(userID) is not a YYYY-MM-DD date",
                        operation: "read profile")
                }
                birthdate = date
            }
            state.read(
                userID, exists: exists,
                profile: ProfileRow(userID: userID, profileType: profileType, sex: row[4].text, birthdate: birthdate))
        }
        return state
    }

    // MARK: - Writes

    private static let columns: [SQLColumnType] = [.text, .text, .text, .integer]

    private static func append(_ row: ProfileRow, to values: inout [SQLValue]) {
        values.append(.text(row.profileType))
        values.append(.text(row.sex))
        values.append(.text(row.birthdate?.description))
        values.append(.integer(row.userID))
    }

    func insertProfiles(_ rows: [ProfileRow]) -> BatchStatement {
        let sql: String
        switch dialect {
        case .sqlite:
            sql = """
                INSERT INTO \(profile) ("profile_type", "sex", "birthdate", "user_id") VALUES \(BatchStatement.rowsMarker)
                """
        case .postgres:
            sql = """
                INSERT INTO \(profile) ("profile_type", "sex", "birthdate", "user_id") \
                SELECT x.t, x.s, x.b::date, x.u FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS x(t, s, b, u)
                """
        }
        return BatchStatement("insert profiles", sql: sql, columns: Self.columns, rows: rows, values: Self.append)
    }

    /// Rewrites existing profiles; each must change exactly one row (it was read under the lock).
    func updateProfiles(_ rows: [ProfileRow]) -> BatchStatement {
        let sql: String
        switch dialect {
        case .sqlite:
            // `UPDATE ... FROM` needs SQLite 3.33 (2020); Debian 11 ships 3.34.
            sql = """
                WITH "signal_worker_new"("profile_type", "sex", "birthdate", "user_id") AS \
                (VALUES \(BatchStatement.rowsMarker)) \
                UPDATE \(profile) SET "profile_type" = n."profile_type", "sex" = n."sex", "birthdate" = n."birthdate" \
                FROM "signal_worker_new" AS n WHERE \(profile)."user_id" = n."user_id"
                """
        case .postgres:
            sql = """
                UPDATE \(profile) AS p SET "profile_type" = x.t, "sex" = x.s, "birthdate" = x.b::date \
                FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS x(t, s, b, u) \
                WHERE p."user_id" = x.u RETURNING 1
                """
        }
        return BatchStatement(
            "update profiles", sql: sql, columns: Self.columns, rows: rows, expectation: .oneChangePerRow,
            values: Self.append)
    }

    // MARK: - DDL

    /// Django 5.2's DDL of the profile table (accounts 0001) and the user table, if missing.
    var djangoCompatibleDDL: [String] {
        var statements = [DjangoUserTable.ddl(dialect, table: user)]
        switch dialect {
        case .sqlite:
            statements.append(
                """
                CREATE TABLE IF NOT EXISTS \(profile) ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, \
                "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" date NULL, \
                "user_id" integer NOT NULL UNIQUE REFERENCES \(user) ("id") DEFERRABLE INITIALLY DEFERRED)
                """)
        case .postgres:
            statements.append(
                """
                CREATE TABLE IF NOT EXISTS \(profile) ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \
                "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" date NULL, \
                "user_id" integer NOT NULL UNIQUE REFERENCES \(user) ("id") DEFERRABLE INITIALLY DEFERRED)
                """)
        }
        return statements
    }
}
