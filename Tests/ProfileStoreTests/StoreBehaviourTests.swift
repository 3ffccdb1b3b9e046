import ProfileReceiver
import SignalInbox
import SignalProtocol
import Testing

/// What both stores must do alike, through the inbox and the profile receiver.
@Suite("Store behaviour (SQLite and PostgreSQL)")
struct StoreBehaviourTests {
    let receiver = TestInbox.profile()

    @Test("created inserts a profile with the field default and NULLs", arguments: StoreKind.available)
    func createdWithDefaults(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1])
            #expect(await applyOne(Messages.created(1), to: fixture.store) == .profile(.created))
            #expect(try await fixture.profiles() == [StoredProfile(userID: 1, profileType: "personal")])
        }
    }

    @Test("created with data stores every field", arguments: StoreKind.available)
    func createdWithData(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1])
            let message = Messages.created(
                1, profileType: .value("business"), sex: .value("F"), birthdate: .value(Messages.date("1990-01-02")))
            #expect(await applyOne(message, to: fixture.store) == .profile(.created))
            #expect(
                try await fixture.profiles() == [
                    StoredProfile(userID: 1, profileType: "business", sex: "F", birthdate: "1990-01-02")
                ])
        }
    }

    @Test("updated keeps absent keys and overwrites null ones", arguments: StoreKind.available)
    func updatedPartially(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1])
            try await fixture.addProfiles([
                StoredProfile(userID: 1, profileType: "business", sex: "F", birthdate: "1990-01-02")
            ])
            #expect(await applyOne(Messages.updated(1, sex: .null), to: fixture.store) == .profile(.updated))
            #expect(
                try await fixture.profiles() == [
                    StoredProfile(userID: 1, profileType: "business", sex: nil, birthdate: "1990-01-02")
                ])
            let second = Messages.updated(1, profileType: .value("personal"), birthdate: .value(Messages.date("2001-02-03")))
            #expect(await applyOne(second, to: fixture.store) == .profile(.updated))
            #expect(
                try await fixture.profiles() == [
                    StoredProfile(userID: 1, profileType: "personal", sex: nil, birthdate: "2001-02-03")
                ])
        }
    }

    @Test("an update for a user without a profile is skipped and writes no row", arguments: StoreKind.available)
    func skipped(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1])
            let message = Messages.updated(1, seq: 4, sex: .value("M"))
            #expect(await applyOne(message, to: fixture.store) == .profile(.skipped))
            #expect(try await fixture.profiles().isEmpty)
            #expect(try await fixture.appliedIDs() == [message.id])
            #expect(try await fixture.sequences().isEmpty, "a skipped message does not advance the sequence")
        }
    }

    @Test("a message applied before is a duplicate and changes nothing", arguments: StoreKind.available)
    func duplicate(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1])
            let created = Messages.created(1, sex: .value("F"))
            #expect(await applyOne(created, to: fixture.store) == .profile(.created))
            let again = Messages.created(1, id: created.id, sex: .value("M"))  // same id, different content: still a duplicate
            #expect(await applyOne(again, to: fixture.store) == .ok(.duplicate))
            #expect(try await fixture.profiles() == [StoredProfile(userID: 1, profileType: "personal", sex: "F")])
            #expect(try await fixture.appliedIDs() == [created.id])
        }
    }

    @Test(
        "a resent batch: the messages applied before are duplicates, the new ones among them apply and are recorded",
        arguments: StoreKind.available)
    func resentBatchMixesDuplicatesAndNewMessages(kind: StoreKind) async throws {
        // The shim's resend after a timeout: some of the batch made it the first time, some did not.
        // Both kinds in one transaction take the store's path where it must read which ids are known
        // and record the others (a batch of duplicates alone records nothing; one without any
        // records all of them). A store that lost the table name on that path (an earlier attempt
        // at recording ids before planning did) fails every such batch with a schema error.
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1, 2, 3, 4])
            let first = [Messages.created(1, seq: 1, sex: .value("F")), Messages.created(2, seq: 2)]
            #expect(await receiver.apply(first, to: fixture.store) == [.profile(.created), .profile(.created)])
            let resent = [
                first[0],
                Messages.created(3, seq: 3, sex: .value("M")),
                first[1],
                Messages.updated(1, seq: 4, profileType: .value("business")),
                Messages.created(4, seq: 5),
            ]
            #expect(
                await receiver.apply(resent, to: fixture.store) == [
                    .ok(.duplicate), .profile(.created), .ok(.duplicate), .profile(.updated), .profile(.created),
                ])
            #expect(
                try await fixture.profiles() == [
                    StoredProfile(userID: 1, profileType: "business", sex: "F"),
                    StoredProfile(userID: 2, profileType: "personal"),
                    StoredProfile(userID: 3, profileType: "personal", sex: "M"),
                    StoredProfile(userID: 4, profileType: "personal"),
                ])
            #expect(try await fixture.appliedIDs() == Set(resent.map(\.id)))
            #expect(try await fixture.sequences() == [1: 4, 2: 2, 3: 3, 4: 5])
        }
    }

    @Test("an older sequence is stale, changes nothing, and is recorded as applied", arguments: StoreKind.available)
    func stale(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1])
            try await fixture.addProfiles([StoredProfile(userID: 1, profileType: "business", sex: "F")])
            try await fixture.setSequences([1: 10])
            let old = Messages.updated(1, seq: 9, sex: .value("M"))
            #expect(await applyOne(old, to: fixture.store) == .stale(lastSequence: 10))
            let newer = Messages.updated(1, seq: 11, sex: .value("O"))
            #expect(await applyOne(newer, to: fixture.store) == .profile(.updated))
            #expect(try await fixture.profiles() == [StoredProfile(userID: 1, profileType: "business", sex: "O")])
            #expect(try await fixture.sequences() == [1: 11])
            #expect(try await fixture.appliedIDs() == [old.id, newer.id])
        }
    }

    @Test("created twice, or for a missing user, is a conflict that writes nothing", arguments: StoreKind.available)
    func conflicts(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1])
            #expect(await applyOne(Messages.created(1, sex: .value("F")), to: fixture.store) == .profile(.created))
            let twice = Messages.created(1, sex: .value("M"))
            #expect(await applyOne(twice, to: fixture.store).errorCode == .conflict)
            let missingUser = Messages.created(2)
            #expect(await applyOne(missingUser, to: fixture.store).errorCode == .conflict)
            #expect(try await fixture.profiles() == [StoredProfile(userID: 1, profileType: "personal", sex: "F")])
            #expect(!(try await fixture.appliedIDs()).contains(twice.id), "a conflict is not recorded: it may be retried")
        }
    }

    @Test("messages of one batch apply in order: a later sequence in the batch wins", arguments: StoreKind.available)
    func orderWithinBatch(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1, 2])
            let batch = [
                Messages.created(1, seq: 1, sex: .value("F")),
                Messages.updated(1, seq: 3, profileType: .value("business")),
                Messages.updated(1, seq: 2, profileType: .value("older")),
                Messages.created(2, seq: 4),
                Messages.updated(2, seq: 5, birthdate: .value(Messages.date("1999-12-31"))),
            ]
            let outcomes = await receiver.apply(batch, to: fixture.store)
            #expect(outcomes == [.profile(.created), .profile(.updated), .stale(lastSequence: 3), .profile(.created), .profile(.updated)])
            #expect(
                try await fixture.profiles() == [
                    StoredProfile(userID: 1, profileType: "business", sex: "F"),
                    StoredProfile(userID: 2, profileType: "personal", birthdate: "1999-12-31"),
                ])
            #expect(try await fixture.sequences() == [1: 3, 2: 5])
        }
    }

    @Test("a batch of 1,000 with one conflicting message applies the 999 others", arguments: StoreKind.available)
    func batchWithOneConflict(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers(Array(1...1000))
            try await fixture.addProfiles([StoredProfile(userID: 500, profileType: "business")])
            let batch = (1...1000).map { Messages.created(Int64($0), seq: Int64($0), sex: .value("F")) }
            let outcomes = await receiver.apply(batch, to: fixture.store)
            #expect(outcomes.count == 1000)
            #expect(outcomes[499].errorCode == .conflict)
            #expect(outcomes.enumerated().allSatisfy { $0.offset == 499 || $0.element == .profile(.created) })
            let profiles = try await fixture.profiles()
            #expect(profiles.count == 1000)
            #expect(profiles.first { $0.userID == 500 } == StoredProfile(userID: 500, profileType: "business"))
            #expect(try await fixture.appliedIDs().count == 999)
        }
    }

    @Test(
        "a batch of 1,000 where the database refuses one message applies the others, one by one",
        arguments: StoreKind.available)
    func batchWithOneDatabaseRejection(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers(Array(1...1000))
            try await fixture.refuseSex("X")
            let batch = (1...1000).map { Messages.created(Int64($0), sex: .value($0 == 321 ? "X" : "F")) }
            let outcomes = await receiver.apply(batch, to: fixture.store)
            #expect(outcomes.count == 1000)
            #expect(outcomes[320].errorCode == .invalidValue)
            #expect(outcomes.enumerated().allSatisfy { $0.offset == 320 || $0.element == .profile(.created) })
            let profiles = try await fixture.profiles()
            #expect(profiles.count == 999)
            #expect(!profiles.contains { $0.userID == 321 })
            #expect(!(try await fixture.appliedIDs()).contains(batch[320].id))
        }
    }

    @Test("a refused batch rolls back completely: no profile, no dedupe id, no sequence", arguments: StoreKind.available)
    func refusedBatchRollsBack(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1, 2, 3])
            try await fixture.addProfiles([StoredProfile(userID: 3, profileType: "business", sex: "M")])
            // A plan the database must refuse: user 3 already has a profile, so its insert
            // violates the unique user_id (after the other rows were written).
            let insert = Self.insertProfiles(
                [(1, "personal"), (2, "personal"), (3, "personal")], dialect: fixture.store.dialect)
            let objects = (1...3).map { ObjectKey(sender: "auth.user", pk: String($0)) }
            let bad = InboxPlan(
                outcomes: Array(repeating: .profile(.created), count: 3), writes: [insert], applied: ["m1", "m2", "m3"],
                sequences: [SequenceRecord(object: objects[0], sequence: 7), SequenceRecord(object: objects[1], sequence: 8)])
            let batch = StoreBatch(
                messageIDs: ["m1", "m2", "m3"], objects: objects, mayCommitWithoutSync: false, reads: [],
                plan: { _, _ in bad })
            let error = await #expect(throws: StoreError.self) { _ = try await fixture.store.apply(batch) }
            #expect(error?.code == .rejected)
            #expect(try await fixture.profiles() == [StoredProfile(userID: 3, profileType: "business", sex: "M")])
            #expect(try await fixture.appliedIDs().isEmpty)
            #expect(try await fixture.sequences().isEmpty)
        }
    }

    @Test("an update expected to change one row per item is refused, and rolled back, when a row is not there", arguments: StoreKind.available)
    func oneChangePerRowIsChecked(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1, 2])
            try await fixture.addProfiles([StoredProfile(userID: 1, profileType: "business")])
            let sql =
                fixture.store.dialect == .sqlite
                ? """
                WITH "n"("user_id", "t") AS (VALUES \(BatchStatement.rowsMarker)) UPDATE "accounts_userprofile" \
                SET "profile_type" = n."t" FROM "n" WHERE "accounts_userprofile"."user_id" = n."user_id"
                """
                : """
                UPDATE "accounts_userprofile" AS p SET "profile_type" = x.t FROM unnest($1::int8[], $2::text[]) AS x(u, t) \
                WHERE p."user_id" = x.u RETURNING 1
                """
            let update = BatchStatement(
                "update profiles", sql: sql, columns: [.integer, .text],
                rows: [[.integer(1), .text("changed")], [.integer(2), .text("changed")]], expectation: .oneChangePerRow)
            let plan = InboxPlan(outcomes: [.profile(.updated)], writes: [update], applied: ["m1"])
            let batch = StoreBatch(
                messageIDs: ["m1"], objects: [ObjectKey(sender: "auth.user", pk: "1")], mayCommitWithoutSync: false,
                reads: [], plan: { _, _ in plan })
            let error = await #expect(throws: StoreError.self) { _ = try await fixture.store.apply(batch) }
            #expect(error?.code == .rejected)
            #expect(error?.message.contains("1 row(s) changed during the transaction") == true, "\(String(describing: error))")
            #expect(try await fixture.profiles() == [StoredProfile(userID: 1, profileType: "business")])
            #expect(try await fixture.appliedIDs().isEmpty)
        }
    }

    /// Profile rows written by hand, as a receiver would write them.
    static func insertProfiles(_ rows: [(Int64, String)], sex: String? = nil, dialect: SQLDialect) -> BatchStatement {
        let sql =
            dialect == .sqlite
            ? "INSERT INTO \"accounts_userprofile\" (\"user_id\", \"profile_type\", \"sex\") VALUES \(BatchStatement.rowsMarker)"
            : """
            INSERT INTO "accounts_userprofile" ("user_id", "profile_type", "sex") \
            SELECT x.u, x.t, x.s FROM unnest($1::int8[], $2::text[], $3::text[]) AS x(u, t, s)
            """
        return BatchStatement(
            "insert profiles", sql: sql, columns: [.integer, .text, .text],
            rows: rows.map { [.integer($0.0), .text($0.1), .text(sex)] })
    }

    @Test("a refused write reports no row data in the error message", arguments: StoreKind.available)
    func refusalMessageHasNoData(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([1])
            try await fixture.refuseSex("Q")
            let secret = "secret-profile-type-42"
            let plan = InboxPlan(
                outcomes: [.profile(.created)], writes: [Self.insertProfiles([(1, secret)], sex: "Q", dialect: fixture.store.dialect)])
            let batch = StoreBatch(
                messageIDs: ["m1"], objects: [ObjectKey(sender: "auth.user", pk: "1")], mayCommitWithoutSync: false,
                reads: [], plan: { _, _ in plan })
            do throws(StoreError) {
                _ = try await fixture.store.apply(batch)
                Issue.record("the database accepted a refused row")
            } catch {
                #expect(error.code == .rejected)
                #expect(!error.description.contains(secret))
                #expect(!String(reflecting: error).contains(secret))
            }
        }
    }

    @Test("batching equals one by one on a random mix of 400 messages over 25 users", arguments: StoreKind.available)
    func batchEqualsOneByOne(kind: StoreKind) async throws {
        var generator = SplitMix64(seed: 0x5EED)
        var messages: [SignalEnvelope] = []
        var sequence: Int64 = 0
        for _ in 0..<400 {
            let user = Int64.random(in: 1...25, using: &generator)
            sequence += 1
            // Some messages arrive late (older seq), some repeat an earlier id.
            let seq = Int.random(in: 0..<10, using: &generator) == 0 ? max(1, sequence - 5) : sequence
            let sex: FieldUpdate<String> = [.absent, .null, .value("F"), .value("M")].randomElement(using: &generator)!
            let type: FieldUpdate<String> = [.absent, .value("business"), .value("personal")].randomElement(using: &generator)!
            var message =
                Int.random(in: 0..<4, using: &generator) == 0
                ? Messages.created(user, seq: seq, profileType: type, sex: sex)
                : Messages.updated(user, seq: seq, profileType: type, sex: sex)
            if !messages.isEmpty, Int.random(in: 0..<15, using: &generator) == 0 {
                message.id = messages.randomElement(using: &generator)!.id
            }
            messages.append(message)
        }
        var batchedRows: [StoredProfile] = []
        var batchedOutcomes: [Reply.Outcome] = []
        try await withFixture(kind) { fixture in
            try await fixture.addUsers(Array(1...24))  // user 25 does not exist
            batchedOutcomes = await receiver.apply(messages, to: fixture.store)
            batchedRows = try await fixture.profiles()
        }
        try await withFixture(kind) { fixture in
            try await fixture.addUsers(Array(1...24))
            var outcomes: [Reply.Outcome] = []
            for message in messages { outcomes.append(await applyOne(message, to: fixture.store)) }
            #expect(outcomes == batchedOutcomes)
            #expect(try await fixture.profiles() == batchedRows)
        }
        #expect(!batchedRows.isEmpty)
    }

    @Test("batches of any size (multi-row statements cut into chunks) create and update every row", arguments: StoreKind.available, [1, 2, 31, 33, 129, 257])
    func batchSizes(kind: StoreKind, size: Int) async throws {
        try await withFixture(kind) { fixture in
            let users = Array(Int64(1)...Int64(size))
            try await fixture.addUsers(users)
            let created = await receiver.apply(users.map { Messages.created($0, seq: $0, sex: .value("F")) }, to: fixture.store)
            #expect(created == Array(repeating: .profile(.created), count: size))
            let updated = await receiver.apply(
                users.map { Messages.updated($0, seq: $0 + 1000, profileType: .value("t\($0)")) }, to: fixture.store)
            #expect(updated == Array(repeating: .profile(.updated), count: size))
            #expect(
                try await fixture.profiles()
                    == users.map { StoredProfile(userID: $0, profileType: "t\($0)", sex: "F") })
            #expect(try await fixture.sequences() == Dictionary(uniqueKeysWithValues: users.map { ($0, $0 + 1000) }))
            #expect(try await fixture.appliedIDs().count == 2 * size)
        }
    }

    @Test("dates at the edges of the calendar survive a round trip", arguments: StoreKind.available)
    func dateRoundTrip(kind: StoreKind) async throws {
        let dates = ["0001-01-01", "0099-03-04", "1969-12-31", "1970-01-01", "2000-02-29", "2100-03-01", "9999-12-31"]
        try await withFixture(kind) { fixture in
            try await fixture.addUsers((1...Int64(dates.count)).map { $0 })
            let batch = dates.enumerated().map { index, text in
                Messages.created(Int64(index + 1), birthdate: .value(Messages.date(text)))
            }
            #expect(await receiver.apply(batch, to: fixture.store) == Array(repeating: .profile(.created), count: dates.count))
            #expect(try await fixture.profiles().map(\.birthdate) == dates)
            // And back through the store's own read path: an update that keeps the date.
            let updates = (1...Int64(dates.count)).map { Messages.updated($0, sex: .value("O")) }
            #expect(await receiver.apply(updates, to: fixture.store) == Array(repeating: .profile(.updated), count: dates.count))
            #expect(try await fixture.profiles().map(\.birthdate) == dates)
        }
    }

    @Test("pruneApplied deletes only ids older than the window", arguments: StoreKind.available)
    func prune(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addApplied(["old-1", "old-2", "old-3"], ageSeconds: 8 * 86_400)
            try await fixture.addApplied(["recent-1"], ageSeconds: 60)
            let deleted = try await fixture.store.pruneApplied(olderThanSeconds: 7 * 86_400)
            #expect(deleted == 3)
            #expect(try await fixture.appliedIDs() == ["recent-1"])
            #expect(try await fixture.store.pruneApplied(olderThanSeconds: 7 * 86_400) == 0)
        }
    }

    @Test("prepareWorkerTables is idempotent and keeps existing rows", arguments: StoreKind.available)
    func prepareTwice(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addApplied(["kept"])
            try await fixture.setSequences([7: 70])
            #expect(try await fixture.store.prepareWorkerTables() == WorkerTablesReport(version: 2))
            #expect(try await fixture.store.prepareWorkerTables() == WorkerTablesReport(version: 2))
            #expect(try await fixture.appliedIDs() == ["kept"])
            #expect(try await fixture.sequences() == [7: 70])
        }
    }

    @Test(
        "tables of the previous release (schema version 1, order per user) are upgraded once to order per object",
        arguments: StoreKind.available)
    func upgradeFromPerUserSequences(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            // The previous release's layout, exactly as its prepareWorkerTables created it: no schema
            // table, sequences per user.
            try await fixture.execute("DROP TABLE \"signal_worker_schema\"")
            try await fixture.execute("DELETE FROM \"signal_worker_object_sequence\"")
            try await fixture.execute(
                kind == .sqlite
                    ? "CREATE TABLE \"signal_worker_user_sequence\" (\"user_id\" integer NOT NULL PRIMARY KEY, \"last_seq\" bigint NOT NULL)"
                    : "CREATE TABLE \"signal_worker_user_sequence\" (\"user_id\" bigint NOT NULL PRIMARY KEY, \"last_seq\" bigint NOT NULL) WITH (fillfactor = 70)")
            try await fixture.execute(
                "INSERT INTO \"signal_worker_user_sequence\" (\"user_id\", \"last_seq\") VALUES (1, 10), (2, 20), (3000000000, 5)")
            try await fixture.addUsers([1, 2])
            try await fixture.addProfiles([StoredProfile(userID: 1, profileType: "personal", sex: "F")])

            let report = try await fixture.store.prepareWorkerTables()
            #expect(report == WorkerTablesReport(version: 2, upgradedFrom: 1, movedSequences: 3))
            #expect(try await fixture.sequences() == [1: 10, 2: 20, 3_000_000_000: 5])
            #expect(try await fixture.store.prepareWorkerTables() == WorkerTablesReport(version: 2), "upgraded once")
            let legacyDropped = await #expect(throws: (any Error).self) {
                try await fixture.execute("SELECT 1 FROM \"signal_worker_user_sequence\"")
            }
            #expect(legacyDropped != nil, "the old table is dropped")

            // Order still holds across the upgrade: an older message is stale, a newer one applies.
            #expect(await applyOne(Messages.updated(1, seq: 9, sex: .value("M")), to: fixture.store) == .stale(lastSequence: 10))
            #expect(await applyOne(Messages.updated(1, seq: 11, sex: .value("O")), to: fixture.store) == .profile(.updated))
            #expect(try await fixture.sequences()[1] == 11)
        }
    }

    @Test("worker tables written by a newer release are refused, not downgraded", arguments: StoreKind.available)
    func newerSchemaRefused(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.execute("UPDATE \"signal_worker_schema\" SET \"version\" = 99")
            let error = await #expect(throws: StoreError.self) { try await fixture.store.prepareWorkerTables() }
            #expect(error?.code == .schema)
            #expect(error?.message.contains("version 99") == true, "\(String(describing: error))")
        }
    }
}

/// A small deterministic random generator (SplitMix64), for reproducible random tests.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
