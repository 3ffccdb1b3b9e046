import ProfileReceiver
import SignalInbox
import SignalProtocol
import Testing

@testable import SignalStorePostgres

/// `outbox_check` (docs/PROTOCOL.md, "Outbox check"): the worker looks in the shim's outbox for an
/// older message of the object, inside its apply transaction, instead of `save()` asking first.
@Suite("Outbox check (SQLite and PostgreSQL)")
struct OutboxCheckTests {
    /// The shim's outbox as the store reads it (python-bridge's `OutboxMessage`, the columns read),
    /// with rows of `rows` (object pk, seq), all of sender `auth.user`.
    private func makeOutbox(_ fixture: any StoreFixture, rows: [(pk: String, seq: Int64)]) async throws {
        try await fixture.execute("DROP TABLE IF EXISTS \"signal_bridge_outbox\"")
        try await fixture.execute(
            """
            CREATE TABLE "signal_bridge_outbox" ("seq" bigint NOT NULL PRIMARY KEY, "sender" varchar(100) NOT NULL, \
            "object_pk" varchar(255) NOT NULL)
            """)
        for row in rows {
            try await fixture.execute(
                "INSERT INTO \"signal_bridge_outbox\" (\"seq\", \"sender\", \"object_pk\") VALUES (\(row.seq), 'auth.user', '\(row.pk)')")
        }
    }

    private func flagged(_ message: SignalEnvelope) -> SignalEnvelope {
        var message = message
        message.checksOutbox = true
        return message
    }

    @Test("a flagged message behind an older outbox row is answered behind and changes nothing; newer rows, other objects and unflagged messages do not stop it",
        arguments: StoreKind.available)
    func behindOlderRows(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([5, 6])
            try await fixture.addProfiles([
                StoredProfile(userID: 5, profileType: "business", sex: "F"), StoredProfile(userID: 6, profileType: "business"),
            ])
            try await makeOutbox(fixture, rows: [(pk: "5", seq: 10)])
            let inbox = fixture.inbox.checkingOutbox(true)
            let noSeq = flagged(Messages.updated(5, sex: .value("M")))
            let otherObject = flagged(Messages.updated(6, sex: .value("M")))
            let olderThanRow = flagged(Messages.updated(5, seq: 7, sex: .value("X")))
            let newerThanRow = flagged(Messages.updated(5, seq: 12, sex: .value("Y")))
            let unflagged = Messages.updated(5, sex: .value("Z"))
            let outcomes = await inbox.apply([noSeq, otherObject, olderThanRow, newerThanRow, unflagged], to: fixture.store)
            #expect(outcomes.map(\.errorCode) == [.behind, nil, nil, .behind, nil], "\(outcomes)")
            #expect(outcomes[1] == .profile(.updated) && outcomes[2] == .profile(.updated) && outcomes[4] == .profile(.updated))
            if case .error(let error) = outcomes[0] {
                #expect(error.field == "outbox_check" && !error.code.holdsObject && error.code.isRetryable)
                #expect(error.message.contains("auth.user 5"), "\(error.message)")
            }
            // Only the applied messages are recorded; the one older than the row advanced the sequence.
            #expect(try await fixture.appliedIDs() == [otherObject.id, olderThanRow.id, unflagged.id])
            #expect(try await fixture.sequences() == [5: 7])
            #expect(
                try await fixture.profiles() == [
                    StoredProfile(userID: 5, profileType: "business", sex: "Z"), StoredProfile(userID: 6, profileType: "business", sex: "M"),
                ])

            // The shim sent the older row and deleted it: the same message now applies.
            try await fixture.execute("DELETE FROM \"signal_bridge_outbox\"")
            #expect(await inbox.apply([noSeq], to: fixture.store) == [.profile(.updated)])
            #expect(try await fixture.profiles().first == StoredProfile(userID: 5, profileType: "business", sex: "M"))
        }
    }

    /// On PostgreSQL a small batch reads its inbox state together with the receiver's rows and a
    /// large one reads them apart (`PostgresStatements.joinedReadLimit`); the tests above are
    /// small batches, this one is larger than the limit. No duplicate in it: a misread duplicate
    /// fails the batch's INSERT of its id, and the store's one-by-one retry (small batches) would
    /// then answer it right anyway; a misread sequence or outbox check would be applied.
    @Test("a batch larger than PostgreSQL's joined read answers stale and behind as a small one does",
        arguments: StoreKind.available)
    func largeBatchReadsTheSameInboxState(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            let size = PostgresStatements.joinedReadLimit + 72
            let users = (1...Int64(size)).map { $0 }
            try await fixture.addUsers(users)
            try await fixture.addProfiles(users.map { StoredProfile(userID: $0, profileType: "business", sex: "F") })
            try await fixture.setSequences([1: 10])
            try await makeOutbox(fixture, rows: [(pk: "2", seq: 5)])
            let stale = Messages.updated(1, seq: 9, sex: .value("X"))
            let behind = flagged(Messages.updated(2, sex: .value("X")))
            let plain = users.dropFirst(2).map { Messages.updated($0, sex: .value("M")) }
            let outcomes = await fixture.inbox.checkingOutbox(true).apply([stale, behind] + plain, to: fixture.store)
            #expect(outcomes.count == size)
            #expect(outcomes.first == .stale(lastSequence: 10), "\(outcomes.prefix(2))")
            #expect(outcomes.dropFirst().first?.errorCode == .behind, "\(outcomes.prefix(2))")
            #expect(outcomes.dropFirst(2).allSatisfy { $0 == .profile(.updated) })
            let profiles = try await fixture.profiles()
            #expect(profiles.filter { $0.sex == "X" }.isEmpty, "stale and behind change nothing")
            #expect(profiles.filter { $0.sex == "M" }.count == size - 2)
            #expect(try await fixture.sequences() == [1: 10])
        }
    }

    @Test("a create of a new object is checked too, and one message per object and seq is probed once", arguments: StoreKind.available)
    func createsAndRepeats(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.addUsers([7, 8])
            try await makeOutbox(fixture, rows: [(pk: "7", seq: 3)])
            let inbox = fixture.inbox.checkingOutbox(true)
            let create = flagged(Messages.created(7))
            let repeated = flagged(Messages.updated(7))
            let free = flagged(Messages.created(8))
            let outcomes = await inbox.apply([create, repeated, free], to: fixture.store)
            #expect(outcomes.map(\.errorCode) == [.behind, .behind, nil], "\(outcomes)")
            #expect(try await fixture.profiles().map(\.userID) == [8])
        }
    }

    @Test("an inbox whose store has no outbox refuses outbox_check as unsupported, before any write")
    func refusedWithoutOutbox() throws {
        let inbox = TestInbox.profile()
        #expect(!inbox.checksOutbox)
        var message = Messages.updated(1)
        message.checksOutbox = true
        #expect(throws: ReplyError.self) { try inbox.prepare(message) }
        do {
            _ = try inbox.prepare(message)
        } catch {
            #expect(error.code == .unsupported && error.field == "outbox_check", "\(error)")
        }
        // The same inbox takes the message without the flag.
        message.checksOutbox = false
        _ = try inbox.prepare(message)
    }

    @Test("the shim's outbox requirement finds the table and its columns", arguments: StoreKind.available)
    func outboxRequirement(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.execute("DROP TABLE IF EXISTS \"signal_bridge_outbox\"")
            let missing = try await fixture.store.checkSchema([.shimOutbox("signal_bridge_outbox")])
            #expect(missing.problems.count == 1 && "\(missing.problems)".contains("outbox"), "\(missing.problems)")
            try await makeOutbox(fixture, rows: [])
            #expect(try await fixture.store.checkSchema([.shimOutbox("signal_bridge_outbox")]).problems.isEmpty)
        }
    }
}
