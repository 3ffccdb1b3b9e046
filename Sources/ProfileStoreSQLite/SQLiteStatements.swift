import GRDB
import ProfileReceiver

/// The SQL of the store, built from the configured table names, and the hot path that
/// runs it with cached prepared statements.
///
/// A batch is read and written with multi-row statements (`IN (?, ...)`, `VALUES (...), ...`)
/// of at most ``chunkSizes``[0] rows, so that a batch of 1,000 messages costs a few dozen
/// statement executions instead of five per message. Chunks use a handful of fixed sizes so
/// that the connection's statement cache stays small. Every statement stays under SQLite's
/// oldest default limit of 999 bound parameters.
struct SQLiteStatements: Sendable {
    let profile: String
    let user: String
    let applied: String
    let sequence: String
    let legacySequence: String
    let schemaVersion: String
    /// The `sender` of the profile receiver's rows in the sequence table.
    let senderLabel: String
    /// `UPDATE ... FROM` exists from SQLite 3.33; older libraries update row by row.
    let supportsUpdateFrom: Bool
    /// The last id and the size of the next page of the dedupe table (keyset pagination).
    let prunePageEnd: String
    /// Deletes the expired ids of one page.
    let prunePage: String
    let workerTablesDDL: String
    let djangoCompatibleDDL: String

    /// Dedupe ids examined per pruning transaction.
    static let prunePageSize = 10_000

    /// Rows per statement, largest first; a batch is cut greedily into these sizes.
    static let chunkSizes = [128, 32, 8, 1]

    init(_ configuration: SQLiteStoreConfiguration, sqliteVersion: Int) {
        profile = quoted(configuration.profileTable)
        user = quoted(configuration.userTable)
        applied = quoted(configuration.appliedTable)
        sequence = quoted(configuration.sequenceTable)
        legacySequence = configuration.legacySequenceTable
        schemaVersion = quoted(configuration.schemaVersionTable)
        senderLabel = configuration.senderLabel
        supportsUpdateFrom = sqliteVersion >= 3_033_000
        prunePageEnd = """
            SELECT max("message_id"), count(*) FROM \
            (SELECT "message_id" FROM \(applied) WHERE "message_id" > ? ORDER BY "message_id" LIMIT ?)
            """
        prunePage = """
            DELETE FROM \(applied) WHERE "message_id" > ? AND "message_id" <= ? AND "applied_at" < ?
            """
        // `applied_at` is Unix time in seconds (REAL). No index on it: it would cost every
        // apply one more B-tree insertion (~15% of the batched rate, measured), while pruning
        // (rare) can walk the primary key in short transactions instead.
        workerTablesDDL = """
            CREATE TABLE IF NOT EXISTS \(applied) (
                "message_id" text NOT NULL PRIMARY KEY,
                "applied_at" real NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS \(sequence) (
                "sender" text NOT NULL,
                "object_pk" text NOT NULL,
                "last_seq" bigint NOT NULL,
                PRIMARY KEY ("sender", "object_pk")
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS \(schemaVersion) ("version" integer NOT NULL);
            """
        // Django 5.2's DDL (sqlmigrate auth 0001-0012, accounts 0001), with IF NOT EXISTS.
        djangoCompatibleDDL = """
            CREATE TABLE IF NOT EXISTS \(user) ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, \
            "password" varchar(128) NOT NULL, "last_login" datetime NULL, "is_superuser" bool NOT NULL, \
            "username" varchar(150) NOT NULL UNIQUE, "last_name" varchar(150) NOT NULL, \
            "email" varchar(254) NOT NULL, "is_staff" bool NOT NULL, "is_active" bool NOT NULL, \
            "date_joined" datetime NOT NULL, "first_name" varchar(150) NOT NULL);
            CREATE TABLE IF NOT EXISTS \(profile) ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, \
            "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" date NULL, \
            "user_id" integer NOT NULL UNIQUE REFERENCES \(user) ("id") DEFERRABLE INITIALLY DEFERRED);
            """
    }

    // MARK: - SQL per chunk size

    private static func rows(_ count: Int, _ row: String) -> String {
        Array(repeating: row, count: count).joined(separator: ", ")
    }

    private func selectAppliedSQL(_ count: Int) -> String {
        "SELECT \"message_id\" FROM \(applied) WHERE \"message_id\" IN (\(Self.rows(count, "?")))"
    }

    /// Per user: does it exist, its profile, its last sequence. The users are bound first, then
    /// the sender label (parameter `count + 1`).
    private func selectUserStateSQL(_ count: Int) -> String {
        """
        WITH "signal_worker_batch"("user_id") AS (VALUES \(Self.rows(count, "(?)"))) \
        SELECT b."user_id", EXISTS (SELECT 1 FROM \(user) WHERE "id" = b."user_id"), p."user_id" IS NOT NULL, \
        p."profile_type", p."sex", p."birthdate", s."last_seq" \
        FROM "signal_worker_batch" AS b LEFT JOIN \(profile) AS p ON p."user_id" = b."user_id" \
        LEFT JOIN \(sequence) AS s ON s."sender" = ? AND s."object_pk" = CAST(b."user_id" AS TEXT)
        """
    }

    private func insertProfilesSQL(_ count: Int) -> String {
        """
        INSERT INTO \(profile) ("profile_type", "sex", "birthdate", "user_id") VALUES \(Self.rows(count, "(?, ?, ?, ?)"))
        """
    }

    private func updateProfilesSQL(_ count: Int) -> String {
        if supportsUpdateFrom {
            return """
                WITH "signal_worker_new"("profile_type", "sex", "birthdate", "user_id") AS \
                (VALUES \(Self.rows(count, "(?, ?, ?, ?)"))) \
                UPDATE \(profile) SET "profile_type" = n."profile_type", "sex" = n."sex", "birthdate" = n."birthdate" \
                FROM "signal_worker_new" AS n WHERE \(profile)."user_id" = n."user_id"
                """
        }
        return """
            UPDATE \(profile) SET "profile_type" = ?, "sex" = ?, "birthdate" = ? WHERE "user_id" = ?
            """
    }

    private func insertAppliedSQL(_ count: Int) -> String {
        "INSERT INTO \(applied) (\"message_id\", \"applied_at\") VALUES \(Self.rows(count, "(?, ?)"))"
    }

    private func upsertSequencesSQL(_ count: Int) -> String {
        """
        INSERT INTO \(sequence) ("sender", "object_pk", "last_seq") VALUES \(Self.rows(count, "(?, ?, ?)")) \
        ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = excluded."last_seq"
        """
    }

    // MARK: - The worker's own tables

    /// Creates the worker tables and upgrades them from an earlier layout, inside the open
    /// transaction (``WorkerTablesReport`` lists the versions).
    func prepareWorkerTables(in db: Database) throws -> WorkerTablesReport {
        try db.execute(sql: workerTablesDDL)
        let found = try Int.fetchOne(db, sql: "SELECT max(\"version\") FROM \(schemaVersion)")
        if let found, found > WorkerTablesReport.currentVersion { throw WorkerTablesReport.newerVersionError(found) }
        var report = WorkerTablesReport()
        let legacyExists =
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)",
                arguments: [legacySequence]) ?? false
        if legacyExists {
            // `WHERE true`: SQLite's parser needs it between INSERT ... SELECT and ON CONFLICT.
            try db.execute(
                sql: """
                    INSERT INTO \(sequence) ("sender", "object_pk", "last_seq") \
                    SELECT ?, CAST("user_id" AS TEXT), "last_seq" FROM \(quoted(legacySequence)) WHERE true \
                    ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = max("last_seq", excluded."last_seq")
                    """, arguments: [senderLabel])
            report.movedSequences = db.changesCount
            try db.execute(sql: "DROP TABLE \(quoted(legacySequence))")
            report.upgradedFrom = found ?? 1
        }
        if found != WorkerTablesReport.currentVersion {
            try db.execute(sql: "DELETE FROM \(schemaVersion)")
            try db.execute(
                sql: "INSERT INTO \(schemaVersion) (\"version\") VALUES (?)", arguments: [WorkerTablesReport.currentVersion])
        }
        return report
    }

    /// Runs `body` once per chunk of `items`, with a cached statement for the chunk's size.
    private static func forEachChunk<Item>(
        of items: [Item], in db: Database, sql: (Int) -> String, maximum: Int = chunkSizes[0],
        _ body: (RawStatement, ArraySlice<Item>) throws -> Void
    ) throws {
        var start = 0
        while start < items.count {
            let remaining = items.count - start
            let size = chunkSizes.first { $0 <= min(remaining, maximum) } ?? 1
            let statement = RawStatement(try db.cachedStatement(sql: sql(size)), in: db)
            try body(statement, items[start..<(start + size)])
            start += size
        }
    }

    // MARK: - Reading and writing a batch

    /// Reads what the plan needs about the batch, inside the open transaction.
    func readSnapshot(for messages: [ProfileMessage], in db: Database) throws -> StoreSnapshot {
        var snapshot = StoreSnapshot()
        var ids: [String] = []
        var users: [Int64] = []
        var seenIDs = Set<String>(minimumCapacity: messages.count)
        var seenUsers = Set<Int64>(minimumCapacity: messages.count)
        for message in messages {
            if seenIDs.insert(message.id).inserted { ids.append(message.id) }
            if seenUsers.insert(message.userID).inserted { users.append(message.userID) }
        }

        try Self.forEachChunk(of: ids, in: db, sql: selectAppliedSQL) { statement, chunk in
            for (offset, id) in chunk.enumerated() { statement.bind(id, at: Int32(offset + 1)) }
            defer { statement.reset() }
            while try statement.step() {
                if let id = statement.text(0) { snapshot.appliedMessageIDs.insert(id) }
            }
        }

        try Self.forEachChunk(of: users, in: db, sql: selectUserStateSQL) { statement, chunk in
            for (offset, user) in chunk.enumerated() { statement.bind(user, at: Int32(offset + 1)) }
            statement.bind(senderLabel, at: Int32(chunk.count + 1))
            defer { statement.reset() }
            while try statement.step() {
                let userID = statement.int64(0)
                if statement.int64(1) != 0 { snapshot.existingUsers.insert(userID) }
                if statement.int64(2) != 0, snapshot.profiles[userID] == nil {
                    snapshot.profiles[userID] = try Self.profile(statement, userID: userID)
                }
                if !statement.isNull(6) { snapshot.lastSequences[userID] = statement.int64(6) }
            }
        }
        return snapshot
    }

    /// Decodes a stored profile (columns 3...5 of the user state row).
    private static func profile(_ row: RawStatement, userID: Int64) throws -> ProfileRow {
        guard let profileType = row.text(3) else {
            throw StoreError(.rejected, "the stored profile_type of user \(userID) is not text", operation: "read profile")
        }
        let sex = row.text(4)
        if sex == nil, !row.isNull(4) {
            throw StoreError(.rejected, "the stored sex of user \(userID) is not text", operation: "read profile")
        }
        var birthdate: DjangoDate?
        if !row.isNull(5) {
            guard let text = row.text(5), let date = try? DjangoDate.parse(text) else {
                throw StoreError(
                    .rejected, "the stored birthdate of user \(userID) is not a YYYY-MM-DD date", operation: "read profile")
            }
            birthdate = date
        }
        return ProfileRow(userID: userID, profileType: profileType, sex: sex, birthdate: birthdate)
    }

    /// Binds a profile row's values in `profile_type, sex, birthdate, user_id` order from `index`.
    private static func bind(_ row: ProfileRow, to statement: RawStatement, at index: Int32) {
        statement.bind(row.profileType, at: index)
        statement.bind(row.sex, at: index + 1)
        statement.bind(row.birthdate, at: index + 2)
        statement.bind(row.userID, at: index + 3)
    }

    /// Writes a plan inside the open transaction.
    func write(_ plan: BatchPlan, in db: Database, now: Double) throws {
        try Self.forEachChunk(of: plan.inserts, in: db, sql: insertProfilesSQL) { statement, chunk in
            for (offset, row) in chunk.enumerated() { Self.bind(row, to: statement, at: Int32(offset * 4 + 1)) }
            try statement.execute()
        }

        try Self.forEachChunk(
            of: plan.updates, in: db, sql: updateProfilesSQL, maximum: supportsUpdateFrom ? Self.chunkSizes[0] : 1
        ) { statement, chunk in
            for (offset, row) in chunk.enumerated() { Self.bind(row, to: statement, at: Int32(offset * 4 + 1)) }
            try statement.execute()
            guard db.changesCount == chunk.count else {
                // Cannot happen under BEGIN IMMEDIATE (nobody else writes between our read and
                // this update); refuse rather than acknowledge a write that did not happen.
                throw StoreError(
                    .rejected, "\(chunk.count - db.changesCount) profile(s) changed during the transaction",
                    operation: "update profiles")
            }
        }

        try Self.forEachChunk(of: plan.applied, in: db, sql: insertAppliedSQL) { statement, chunk in
            for (offset, id) in chunk.enumerated() {
                statement.bind(id, at: Int32(offset * 2 + 1))
                statement.bind(now, at: Int32(offset * 2 + 2))
            }
            try statement.execute()
        }

        try Self.forEachChunk(of: plan.sequences, in: db, sql: upsertSequencesSQL) { statement, chunk in
            for (offset, record) in chunk.enumerated() {
                statement.bind(senderLabel, at: Int32(offset * 3 + 1))
                statement.bind(String(record.userID), at: Int32(offset * 3 + 2))
                statement.bind(record.sequence, at: Int32(offset * 3 + 3))
            }
            try statement.execute()
        }
    }
}
