import SignalInbox
import Foundation
import GRDB
import GRDBSQLite
import ProfileReceiver
@testable import SignalStoreSQLite
import SignalProtocol
import Testing

/// What is particular to SQLite: a file shared with Django's process.
@Suite("SQLite store")
struct SQLiteStoreTests {
    /// Holds the write lock from a second connection (as Django would) until `release` is
    /// signalled or `duration` passed, returning once the lock is held; the task ends when the
    /// lock is released, with an instant at which the lock was still held (taken just before
    /// the COMMIT). A failure to take the lock ends the wait too: it is thrown by the task.
    private static func holdWriteLock(
        on helper: DatabaseQueue, for duration: Duration, release: DispatchSemaphore = DispatchSemaphore(value: 0)
    ) async throws -> Task<ContinuousClock.Instant, any Error> {
        let (locked, continuation) = AsyncStream<Void>.makeStream()
        let holder = Task {
            defer { continuation.finish() }
            return try await helper.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                continuation.yield()
                _ = release.wait(timeout: .now() + duration.secondsValue)
                let stillHeld = ContinuousClock.now
                try db.execute(sql: "COMMIT")
                return stillHeld
            }
        }
        for await _ in locked { break }
        return holder
    }

    @Test("an apply waits for another connection's 200 ms write lock and succeeds")
    func waitsForLock() async throws {
        try await SQLiteFixture.with { fixture in
            try await fixture.addUsers([1])
            let holder = try await Self.holdWriteLock(on: fixture.helper, for: .milliseconds(200))
            let outcome = await applyOne(Messages.created(1, sex: .value("F")), to: fixture.store)
            let finished = ContinuousClock.now
            let stillHeld = try await holder.value
            #expect(outcome == .profile(.created), "no 'database is locked': \(outcome)")
            // Measured against the release itself, not a start time that a loaded machine delays.
            #expect(finished > stillHeld, "the apply finished while the other connection still held the lock")
            #expect(try await fixture.profiles() == [StoredProfile(userID: 1, profileType: "personal", sex: "F")])
        }
    }

    @Test("a lock held past the busy timeout makes every outcome store_unavailable, and nothing is written")
    func busyTimeoutExceeded() async throws {
        try await SQLiteFixture.with(configure: { $0.busyTimeout = .milliseconds(100) }) { fixture in
            try await fixture.addUsers([1, 2])
            // The lock is held until the apply returned (a loaded machine may delay the apply
            // by more than any fixed holding time), at most 60 s.
            let release = DispatchSemaphore(value: 0)
            let holder = try await Self.holdWriteLock(on: fixture.helper, for: .seconds(60), release: release)
            let outcomes = await TestInbox.profile().apply([Messages.created(1), Messages.created(2)], to: fixture.store)
            release.signal()
            _ = try await holder.value
            #expect(outcomes.map(\.errorCode) == [.storeUnavailable, .storeUnavailable])
            #expect(try await fixture.profiles().isEmpty)

            let secondRelease = DispatchSemaphore(value: 0)
            let second = try await Self.holdWriteLock(on: fixture.helper, for: .seconds(60), release: secondRelease)
            let result: Result<InboxPlan, StoreError>
            do throws(StoreError) {
                result = .success(
                    try await fixture.store.apply(TestInbox.emptyBatch))
            } catch {
                result = .failure(error)
            }
            secondRelease.signal()
            _ = try await second.value
            guard case .failure(let error) = result else {
                Issue.record("the apply did not fail while the lock was held")
                return
            }
            #expect(error.code == .unavailable)
            #expect(error.message.contains("lock"))
        }
    }

    @Test("a connection committing back to back (Django saving in a loop) does not starve the worker's writes")
    func noStarvationByBackToBackWriter() async throws {
        try await SQLiteFixture.with { fixture in
            let users = Array(Int64(1)...10)
            try await fixture.addUsers(users)
            try await fixture.execute("CREATE TABLE \"scratch\" (\"n\" INTEGER)")
            // Another process's connection with SQLite's own busy handler, writing one row per
            // transaction with no pause in between: the lock is free only between COMMIT and
            // the next BEGIN IMMEDIATE. (SQLite's back-off handler, which the store used
            // before, missed every such gap for the whole 5 s busy timeout.)
            let writer = try BackToBackWriter(path: fixture.path)
            let loop = Thread { writer.run("BEGIN IMMEDIATE; INSERT INTO \"scratch\" VALUES (1); COMMIT;") }
            loop.start()
            defer { writer.stop() }
            try await Task.sleep(for: .milliseconds(100))
            for user in users {
                let outcome = await applyOne(Messages.created(user), to: fixture.store)
                #expect(outcome == .profile(.created), "user \(user): \(outcome)")
            }
            #expect(writer.stop() > 0, "the other connection was writing all along")
            #expect(try await fixture.profiles().count == users.count)
        }
    }

    /// A bare SQLite connection (not GRDB) with SQLite's default busy handler, as Python's
    /// `sqlite3` module (and so Django) uses it, running one statement list in a loop.
    private final class BackToBackWriter: @unchecked Sendable {
        private var handle: OpaquePointer?
        private let lock = NSLock()
        private var stopped = false
        private var commits = 0
        private let finished = DispatchSemaphore(value: 0)

        init(path: String) throws {
            guard sqlite3_open(path, &handle) == SQLITE_OK else { throw DatabaseError(message: "cannot open \(path)") }
            sqlite3_busy_timeout(handle, 5_000)
        }

        deinit { sqlite3_close(handle) }

        /// Runs `sql` again and again (a failure rolls back) until ``stop()``.
        func run(_ sql: String) {
            defer { finished.signal() }
            while !lock.withLock({ stopped }) {
                if sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK {
                    lock.withLock { commits += 1 }
                } else {
                    sqlite3_exec(handle, "ROLLBACK", nil, nil, nil)
                }
            }
        }

        /// Ends the loop (once; later calls return at once); returns how many transactions committed.
        @discardableResult
        func stop() -> Int {
            let first = lock.withLock { () -> Bool in
                defer { stopped = true }
                return !stopped
            }
            if first { finished.wait() }
            return lock.withLock { commits }
        }
    }

    @Test("the store switches the file to WAL mode")
    func walMode() async throws {
        try await SQLiteFixture.with { fixture in
            let mode = try await fixture.helper.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(mode?.lowercased() == "wal")
        }
    }

    @Test("opening a path without a database fails as unavailable unless createIfMissing is set")
    func missingFile() throws {
        let directory = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("nothing-here.sqlite3").path
        let error = #expect(throws: StoreError.self) {
            _ = try SQLiteSignalStore(configuration: SQLiteStoreConfiguration(path: path))
        }
        #expect(error?.code == .unavailable)
        #expect(!FileManager.default.fileExists(atPath: path), "no empty database was created")
        let store = try SQLiteSignalStore(configuration: SQLiteStoreConfiguration(path: path, createIfMissing: true))
        try store.close()
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test("synchronous is FULL by default and NORMAL when configured, on the writer connection")
    func synchronousSetting() async throws {
        try await SQLiteFixture.with { fixture in
            let synchronous = try await fixture.sqliteStore.writerPragma("synchronous")
            let foreignKeys = try await fixture.sqliteStore.writerPragma("foreign_keys")
            #expect(synchronous == "2")  // FULL
            #expect(foreignKeys == "1")
        }
        try await SQLiteFixture.with(configure: { $0.synchronous = .normal }) { fixture in
            let synchronous = try await fixture.sqliteStore.writerPragma("synchronous")
            #expect(synchronous == "1")  // NORMAL
            try await fixture.addUsers([1])
            #expect(await applyOne(Messages.created(1), to: fixture.store) == .profile(.created))
            #expect(try await fixture.profiles().count == 1)
        }
    }

    @Test("a batch of only durable: false messages commits with NORMAL; one durable message makes it FULL")
    func relaxedCommits() async throws {
        try await SQLiteFixture.with { fixture in
            try await fixture.addUsers([1, 2, 3])
            func relaxed(_ message: SignalEnvelope) -> SignalEnvelope {
                var message = message
                message.durable = false
                return message
            }
            let receiver = TestInbox.profile()
            let first = await receiver.apply([relaxed(Messages.created(1)), relaxed(Messages.created(2))], to: fixture.store)
            #expect(first == [.profile(.created), .profile(.created)])
            #expect(try await fixture.sqliteStore.writerPragma("synchronous") == "1")  // NORMAL

            let mixed = await receiver.apply([relaxed(Messages.updated(1)), Messages.created(3)], to: fixture.store)
            #expect(mixed == [.profile(.updated), .profile(.created)])
            #expect(try await fixture.sqliteStore.writerPragma("synchronous") == "2")  // FULL again
            #expect(try await fixture.profiles().map(\.userID) == [1, 2, 3])
        }
    }

    @Test("text with a NUL character is stored whole, as Python's sqlite3 stores it")
    func nulCharacters() async throws {
        try await SQLiteFixture.with { fixture in
            try await fixture.addUsers([1])
            let created = Messages.created(1, profileType: .value("a\u{0}b"), sex: .value("\u{0}"))
            #expect(await applyOne(created, to: fixture.store) == .profile(.created))
            // An update reads the row back through the store and writes it again.
            let update = Messages.updated(1, birthdate: .value(Messages.date("2000-01-01")))
            #expect(await applyOne(update, to: fixture.store) == .profile(.updated))
            let hex = try await fixture.helper.read { db in
                try String.fetchAll(
                    db, sql: "SELECT hex(\"profile_type\") || ' ' || hex(\"sex\") FROM \"accounts_userprofile\"")
            }
            #expect(hex == ["610062 00"])
        }
    }

    @Test("in one batch, each text parameter is bound to its own bytes: empty is not NULL, multi-byte text whole")
    func textsOfOneBatchKeepTheirBytes() async throws {
        // The store copies a statement's texts into one buffer and binds them from there: a wrong
        // offset or length would move bytes between rows, and an empty string must stay '' (not NULL).
        let types = ["", "ä", "business", "🙂x", String(repeating: "z", count: 20), "a\u{0}"]
        let sexes: [String?] = ["F", "", nil, "é", "M", ""]
        try await SQLiteFixture.with { fixture in
            try await fixture.addUsers(Array(1...Int64(types.count)))
            let batch = types.indices.map { index in
                Messages.created(
                    Int64(index + 1), profileType: .value(types[index]), sex: sexes[index].map(FieldUpdate.value) ?? .null)
            }
            let outcomes = await TestInbox.apply(batch, inbox: TestInbox.profile(), to: fixture.store)
            #expect(outcomes == Array(repeating: .profile(.created), count: types.count), "\(outcomes)")
            // As hex: GRDB reads text up to a NUL.
            let stored = try await fixture.helper.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT hex("profile_type"), CASE WHEN "sex" IS NULL THEN NULL ELSE hex("sex") END \
                        FROM "accounts_userprofile" ORDER BY "user_id"
                        """
                ).map { row -> [String?] in [row[0] as String?, row[1] as String?] }
            }
            func hex(_ text: String) -> String { text.utf8.map { String(format: "%02X", $0) }.joined() }
            #expect(stored == types.indices.map { [hex(types[$0]), sexes[$0].map(hex)] })
        }
    }

    @Test("an SQLite library older than 3.33 (no UPDATE ... FROM) is refused at open, with the version it needs")
    func oldSQLiteRefused() async throws {
        let directory = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("db.sqlite3").path
        let configuration = SQLiteStoreConfiguration(path: path, createIfMissing: true)
        let error = #expect(throws: StoreError.self) {
            _ = try SQLiteSignalStore(configuration: configuration, assumingSQLiteVersion: 3_031_001)
        }
        #expect(error?.message.contains("3.31.1") == true, "\(String(describing: error))")
        #expect(error?.message.contains("3.33.0 or later") == true, "\(String(describing: error))")
        let store = try SQLiteSignalStore(configuration: configuration, assumingSQLiteVersion: 3_033_000)
        try store.close()
    }

    @Test("a stored birthdate that is not a date refuses only its own message")
    func corruptStoredDate() async throws {
        try await SQLiteFixture.with { fixture in
            try await fixture.addUsers([1, 2])
            try await fixture.addProfiles([
                StoredProfile(userID: 1, profileType: "personal", birthdate: "not a date"),
                StoredProfile(userID: 2, profileType: "personal", birthdate: "1990-01-02"),
            ])
            let outcomes = await TestInbox.profile().apply(
                [Messages.updated(1, sex: .value("F")), Messages.updated(2, sex: .value("M"))], to: fixture.store)
            #expect(outcomes[0].errorCode == .invalidValue)
            #expect(outcomes[1] == .profile(.updated))
            #expect(try await fixture.profiles().last == StoredProfile(userID: 2, profileType: "personal", sex: "M", birthdate: "1990-01-02"))
        }
    }

    @Test("pruning deletes expired ids in several short transactions and keeps recent ones")
    func pruneInChunks() async throws {
        try await SQLiteFixture.with { fixture in
            // Expired and recent ids interleave in key order, across page boundaries.
            let ids = (0..<25_003).map { "id-" + String(1_000_000 + $0) }
            let recent = ids.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
            let expired = ids.enumerated().filter { $0.offset % 3 != 0 }.map(\.element)
            try await fixture.addApplied(expired, ageSeconds: 3_600)
            try await fixture.addApplied(recent, ageSeconds: 1)
            #expect(try await fixture.store.pruneApplied(olderThanSeconds: 60) == expired.count)
            #expect(try await fixture.appliedIDs() == Set(recent))
        }
    }

    @Test("the column limits are unenforced on SQLite")
    func columnLimits() async throws {
        try await SQLiteFixture.with { fixture in
            let facts = try await fixture.store.checkSchema(fixture.inbox.tables).facts
            #expect(facts == SchemaFacts())
            #expect(ProfileReceiver().adapted(to: facts).configuration.limits == .unenforced)
        }
    }

    @Test("missing worker tables fail as a schema error, not as a rejection")
    func missingWorkerTables() async throws {
        try await SQLiteFixture.with { fixture in
            try await fixture.addUsers([1])
            try await fixture.execute("DROP TABLE \"signal_worker_applied\"")
            do throws(StoreError) {
                _ = try await fixture.store.apply(TestInbox.emptyBatch)
                Issue.record("apply succeeded without the dedupe table")
            } catch {
                #expect(error.code == .schema)
            }
        }
    }
}

extension Duration {
    var secondsValue: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
