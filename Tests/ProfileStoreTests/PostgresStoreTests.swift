import SignalInbox
import Foundation
import Logging
import PostgresNIO
import ProfileReceiver
import SignalProtocol
import Testing

@testable import SignalStorePostgres

/// Runs `body` with `store.run()` running, and stops it afterwards.
func withRunning<Result: Sendable>(_ store: PostgresSignalStore, _ body: () async throws -> Result) async throws -> Result {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await store.run() }
        defer { group.cancelAll() }
        return try await body()
    }
}

/// What is particular to PostgreSQL: limits it enforces, outages, several workers.
@Suite("PostgreSQL store", .enabled(if: TestEnvironment.postgresEnabled))
struct PostgresStoreTests {
    @Test("the column limits come from the schema: varchar(20), varchar(1), no NUL")
    func columnLimits() async throws {
        try await withFixture(.postgres) { fixture in
            let facts = try await fixture.store.checkSchema(fixture.inbox.tables).facts
            #expect(facts.maximumLength("accounts_userprofile", "profile_type") == 20)
            #expect(facts.maximumLength("accounts_userprofile", "sex") == 1)
            #expect(facts.rejectsNUL)
            let receiver = ProfileReceiver().adapted(to: facts)
            #expect(receiver.configuration.limits == ColumnLimits(profileTypeMaxLength: 20, sexMaxLength: 1, rejectsNUL: true))
        }
    }

    @Test("values the database refuses (too long, NUL) are invalid_value even when the receiver does not check")
    func databaseRefusals() async throws {
        try await withFixture(.postgres) { fixture in
            try await fixture.addUsers([1, 2, 3])
            let unchecked = TestInbox.profile()  // limits .unenforced: only PostgreSQL checks
            let outcomes = await unchecked.apply(
                [
                    Messages.created(1, sex: .value("Female")),
                    Messages.created(2, profileType: .value("nul\u{0}inside")),
                    Messages.created(3, sex: .value("F")),
                ], to: fixture.store)
            #expect(outcomes.map(\.errorCode) == [.invalidValue, .invalidValue, nil])
            #expect(try await fixture.profiles() == [StoredProfile(userID: 3, profileType: "personal", sex: "F")])
        }
    }

    @Test("a statement that failed to prepare (its table missing for a moment) does not stick to the connection")
    func failedPreparationIsForgotten() async throws {
        try await FixtureLimiter.postgres.withSlot {
            // One connection, so the second apply would get the same one back from the pool.
            try await PostgresFixture.with(configure: { $0.maximumConnections = 1 }) { fixture in
                try await fixture.addUsers([1, 2])
                try await fixture.execute("ALTER TABLE \"accounts_userprofile\" RENAME TO \"accounts_userprofile_away\"")
                let whileAway = await applyOne(Messages.created(1), to: fixture.store)
                #expect(whileAway.errorCode != nil, "\(whileAway)")
                try await fixture.execute("ALTER TABLE \"accounts_userprofile_away\" RENAME TO \"accounts_userprofile\"")
                #expect(await applyOne(Messages.created(1), to: fixture.store) == .profile(.created))
                #expect(await applyOne(Messages.created(2), to: fixture.store) == .profile(.created))
                #expect(try await fixture.profiles().map(\.userID) == [1, 2])
            }
        }
    }

    /// A test's progress lines ("<name> [elapsed]: text"), so that a hang in CI names its step.
    struct Steps {
        let name: String
        let began = ContinuousClock.now
        func callAsFunction(_ text: String) { print("\(name) [\(began.duration(to: .now))]: \(text)") }
    }

    /// Runs `body` with a fixture whose store reaches PostgreSQL through a fresh `TCPProxy`:
    /// acquire timeout 3 s (short enough that "down" is quick, long enough for the first
    /// connection through the proxy on a loaded machine; 1 s was not, once), operation timeout 3 s.
    static func withProxiedFixture(
        _ steps: Steps, _ body: (TCPProxy, PostgresFixture) async throws -> Void
    ) async throws {
        let proxy = TCPProxy(targetPort: try PostgresFixture.baseConfiguration().port)
        try proxy.start()
        steps("proxy listening on \(proxy.port)")
        defer { try? proxy.stop() }
        try await FixtureLimiter.postgres.withSlot {
            try await PostgresFixture.with(configure: { configuration in
                configuration.host = "127.0.0.1"
                configuration.port = proxy.port
                configuration.tls = .disable
                configuration.acquireTimeout = .seconds(3)
                configuration.connectTimeout = .seconds(2)
                configuration.operationTimeout = .seconds(3)
            }) { fixture in
                steps("fixture ready")
                try await body(proxy, fixture)
            }
            steps("fixture closed")
            try proxy.stop()
            steps("proxy stopped at the end")
        }
    }

    /// Applies `message` every 200 ms until the answer is not `store_unavailable` or `limit` passed.
    static func applyUntilAvailable(_ message: SignalEnvelope, to store: any SignalStore, within limit: Duration)
        async throws -> Reply.Outcome
    {
        var outcome = Reply.Outcome.error(ReplyError(.storeUnavailable, "not tried"))
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            outcome = await applyOne(message, to: store)
            if outcome.errorCode != .storeUnavailable { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        return outcome
    }

    /// The scenario of the proxy tests: a profile written through the proxy; `breakProxy`; the
    /// next batch (two messages) is `store_unavailable` within 10 s; `mend`; the batch's create
    /// then applies within 30 s, and both profiles are there.
    static func breakAndRecover(
        _ name: String, break breakProxy: (TCPProxy) throws -> Void, mend: (TCPProxy) throws -> Void
    ) async throws {
        let steps = Steps(name: name)
        try await withProxiedFixture(steps) { proxy, fixture in
            try await fixture.addUsers([1, 2])
            #expect(await applyOne(Messages.created(1), to: fixture.store) == .profile(.created))

            try breakProxy(proxy)
            steps("proxy broken")
            let start = ContinuousClock.now
            let down = await TestInbox.profile().apply([Messages.created(2), Messages.updated(1)], to: fixture.store)
            let elapsed = start.duration(to: .now)
            #expect(down.map(\.errorCode) == [.storeUnavailable, .storeUnavailable], "\(down)")
            #expect(elapsed < .seconds(10), "took \(elapsed)")  // no hang; CI shares 2 cores with parallel tests
            steps("outcomes while broken in \(elapsed): \(down)")

            try mend(proxy)
            steps("proxy mended")
            let outcome = try await applyUntilAvailable(Messages.created(2), to: fixture.store, within: .seconds(30))
            #expect(outcome == .profile(.created), "no working connection within 30 s of mending the proxy")
            steps("after mending: \(outcome)")
            #expect(try await fixture.profiles().map(\.userID) == [1, 2])
        }
    }

    // The time limits cancel a hang and name it, instead of the step's bound. They count the
    // wait for a fixture slot too (20-30 s on 2 cores while the store suite runs); the tests
    // themselves take a few seconds.
    @Test(
        "the server going away gives store_unavailable quickly, and the store works again when it is back",
        .timeLimit(.minutes(4)))
    func outageAndRecovery() async throws {
        try await Self.breakAndRecover("outage test", break: { try $0.stop() }, mend: { try $0.start() })
    }

    @Test(
        "a connection that goes silent mid-transaction fails its batch within the operation timeout",
        .timeLimit(.minutes(4)))
    func silentConnection() async throws {
        try await Self.breakAndRecover("silent test", break: { $0.freeze() }, mend: { $0.thaw() })
    }

    @Test("the lock statement sets the batch's planner settings, and synchronous_commit off when asked, for its transaction only")
    func lockStatementSettings() async throws {
        try await withFixture(.postgres) { fixture in
            guard let fixture = fixture as? PostgresFixture else { throw PostgresFixture.NotConfigured() }
            let statements = PostgresStatements(fixture.postgresStore.configuration)
            let names = ["synchronous_commit", "enable_hashjoin", "enable_mergejoin", "plan_cache_mode", "jit"]
            for relaxed in [true, false] {
                let (before, inside, after, plans) = try await fixture.admin.withConnection { connection in
                    // The test server may run with it off: start from on, as a durable server does.
                    _ = try await connection.query("SET synchronous_commit = on", logger: testLogger).collect()
                    let before = try await Self.settings(names, on: connection)
                    _ = try await connection.query("BEGIN", logger: testLogger).collect()
                    var binds = PostgresBindings(capacity: 3)
                    binds.append(statements.namespace)
                    binds.append([Int32(1), 2])
                    binds.append(relaxed)
                    _ = try await statements.lockObjects.run(binds, on: connection, logger: testLogger) {
                        try $0.decode((Int64, String?, String).self)
                    }
                    let inside = try await Self.settings(names, on: connection)
                    // The batch's read, planned under these settings: the generic plan, never a custom one.
                    var read = PostgresBindings(capacity: 3)
                    read.append(["0193a5e0-7c00-7000-8000-000000000001"])
                    read.append(["auth.user", "auth.user"])
                    read.append(["1", "2"])
                    for _ in 0..<2 {
                        _ = try await statements.readInbox.run(read, on: connection, logger: testLogger) { _ in () }
                    }
                    var name = PostgresBindings(capacity: 1)
                    name.append(statements.readInbox.name)
                    var plans: (generic: Int64, custom: Int64) = (0, 0)
                    let rows = try await connection.query(
                        PostgresQuery(
                            unsafeSQL: "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1::text",
                            binds: name),
                        logger: testLogger)
                    for try await counts in rows.decode((Int64, Int64).self) { plans = counts }
                    _ = try await connection.query("COMMIT", logger: testLogger).collect()
                    let after = try await Self.settings(names, on: connection)
                    _ = try await connection.query("RESET synchronous_commit", logger: testLogger).collect()
                    return (before, inside, after, plans)
                }
                #expect(
                    inside == [relaxed ? "off" : "on", "off", "off", "force_generic_plan", "off"], "relaxed: \(relaxed)")
                #expect(after == before, "the settings must not outlive the transaction")
                #expect(before.prefix(4) == ["on", "on", "on", "auto"], "the server's defaults: \(before)")
                #expect(plans.custom == 0 && plans.generic >= 2, "read statement plans: \(plans)")
            }
        }
    }

    /// `current_setting` of each name, in order.
    static func settings(_ names: [String], on connection: PostgresConnection) async throws -> [String] {
        var values: [String] = []
        for name in names {
            var binds = PostgresBindings(capacity: 1)
            binds.append(name)
            let rows = try await connection.query(
                PostgresQuery(unsafeSQL: "SELECT current_setting($1::text)", binds: binds), logger: testLogger)
            for try await value in rows.decode(String.self) { values.append(value) }
        }
        return values
    }

    @Test("four workers on one database keep each user's messages in sequence order")
    func severalWorkers() async throws {
        try await withFixture(.postgres) { fixture in
            let users = Array(Int64(1)...20)
            try await fixture.addUsers(users)
            try await fixture.addProfiles(users.map { StoredProfile(userID: $0, profileType: "t0") })
            try await fixture.setSequences(Dictionary(uniqueKeysWithValues: users.map { ($0, 0) }))
            guard let first = fixture.store as? PostgresSignalStore else { throw PostgresFixture.NotConfigured() }
            let others = (0..<3).map { _ in PostgresSignalStore(configuration: first.configuration, logger: testLogger) }
            let stores = [first] + others
            // Message k (seq k) is for user k % 20; messages 20j...20j+19 form one batch, given to
            // worker j % 4: every batch touches every user, so the four workers contend for the
            // same users all the time, and each worker's batches are in sequence order.
            let messages = (Int64(1)...2000).map { seq in
                Messages.updated(users[Int(seq) % users.count], seq: seq, profileType: .value("t\(seq)"))
            }
            let outcomes = await withTaskGroup(of: Void.self) { runners in
                for store in others { runners.addTask { try? await store.run() } }
                defer { runners.cancelAll() }
                return await withTaskGroup(of: [Reply.Outcome].self) { group in
                    for (worker, store) in stores.enumerated() {
                        let mine = messages.filter { Int($0.sequence! - 1) / 20 % stores.count == worker }
                        group.addTask {
                            var outcomes: [Reply.Outcome] = []
                            for start in stride(from: 0, to: mine.count, by: 20) {
                                let batch = Array(mine[start..<min(start + 20, mine.count)])
                                outcomes += await TestInbox.profile().apply(batch, to: store)
                            }
                            return outcomes
                        }
                    }
                    return await group.reduce(into: []) { $0 += $1 }
                }
            }
            #expect(outcomes.count == messages.count)
            #expect(outcomes.allSatisfy { $0 == .profile(.updated) || $0.action == .stale }, "\(outcomes.filter { $0.errorCode != nil })")
            let newest = Dictionary(messages.map { ($0.userID, $0.sequence!) }, uniquingKeysWith: max)
            let profiles = try await fixture.profiles()
            #expect(profiles.count == users.count)
            for profile in profiles {
                #expect(profile.profileType == "t\(newest[profile.userID]!)", "user \(profile.userID)")
            }
            #expect(try await fixture.sequences() == newest)
        }
    }

    @Test("1,000 creates then 1,000 updates, two batches, leave 1,000 updated rows and 2,000 dedupe ids")
    func largeBatches() async throws {
        try await withFixture(.postgres) { fixture in
            let users = Array(Int64(1)...1000)
            try await fixture.addUsers(users)
            let receiver = TestInbox.profile()
            let created = await receiver.apply(users.map { Messages.created($0, seq: $0) }, to: fixture.store)
            #expect(created.allSatisfy { $0 == .profile(.created) })
            let updated = await receiver.apply(
                users.map { Messages.updated($0, seq: $0 + 1000, sex: .value("M")) }, to: fixture.store)
            #expect(updated.allSatisfy { $0 == .profile(.updated) })
            let profiles = try await fixture.profiles()
            #expect(profiles.count == 1000)
            #expect(profiles.allSatisfy { $0.sex == "M" })
            #expect(try await fixture.appliedIDs().count == 2000)
        }
    }
}

/// PostgreSQL failures that need no server.
@Suite("PostgreSQL store without a server")
struct PostgresUnreachableTests {
    /// A store for the server on `port` of this host, if any.
    static func store(port: Int, acquireTimeout: Duration, connectTimeout: Duration) -> PostgresSignalStore {
        var configuration = PostgresStoreConfiguration(
            host: "127.0.0.1", port: port, username: "postgres", database: "nothing", tls: .disable)
        configuration.acquireTimeout = acquireTimeout
        configuration.connectTimeout = connectTimeout
        return PostgresSignalStore(configuration: configuration, logger: testLogger)
    }

    static func deadStore(acquireTimeout: Duration = .milliseconds(500)) throws -> PostgresSignalStore {
        store(port: try unusedTCPPort(), acquireTimeout: acquireTimeout, connectTimeout: .milliseconds(500))
    }

    @Test("an unreachable server makes every outcome store_unavailable within the acquire timeout")
    func unreachable() async throws {
        let store = try Self.deadStore()
        try await withRunning(store) {
            let start = ContinuousClock.now
            let outcomes = await TestInbox.profile().apply(
                [Messages.created(1), Messages.updated(2), Messages.created(3)], to: store)
            let elapsed = start.duration(to: .now)
            #expect(outcomes.map(\.errorCode) == [.storeUnavailable, .storeUnavailable, .storeUnavailable])
            // Bounded well below the 60 s operation timeout; generous because CI shares 2 cores with parallel tests.
            #expect(elapsed < .seconds(10), "took \(elapsed)")

            let error = await #expect(throws: StoreError.self) { try await store.checkSchema(TestInbox.profile().tables) }
            #expect(error?.code == .unavailable)
            let prepare = await #expect(throws: StoreError.self) { try await store.prepareWorkerTables() }
            #expect(prepare?.code == .unavailable)
        }
    }

    @Test(
        "a server that never answers, or closes at once: store_unavailable within the acquire timeout, and run() ends",
        .timeLimit(.minutes(1)), arguments: [StubTCPServer.Behaviour.silent, .acceptAndClose])
    func halfThereServer(behaviour: StubTCPServer.Behaviour) async throws {
        let server = try StubTCPServer(behaviour)
        defer { server.stop() }
        let store = Self.store(port: server.port, acquireTimeout: .milliseconds(500), connectTimeout: .milliseconds(500))
        let running = Task { try? await store.run() }
        let start = ContinuousClock.now
        let outcomes = await TestInbox.profile().apply([Messages.created(1), Messages.updated(2)], to: store)
        #expect(outcomes.map(\.errorCode) == [.storeUnavailable, .storeUnavailable])
        #expect(start.duration(to: .now) < .seconds(10), "took \(start.duration(to: .now))")

        running.cancel()
        let stopping = ContinuousClock.now
        #expect(await ends(running, within: .seconds(20)), "run() did not end within 20 s of its cancellation")
        print("half-there server (\(behaviour)): run() ended \(stopping.duration(to: .now)) after its cancellation")
    }

    @Test("without run() the store answers unavailable instead of hanging")
    func notRunning() async throws {
        let store = try Self.deadStore(acquireTimeout: .milliseconds(300))
        let start = ContinuousClock.now
        let error = await #expect(throws: StoreError.self) {
            _ = try await store.apply(TestInbox.emptyBatch)
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("run()") == true)
        #expect(start.duration(to: .now) < .seconds(10), "must not wait for a pool that never runs")
    }

    @Test("an operation cancelled while it waits for a connection ends at once, long before its acquire timeout")
    func cancelledWhileWaiting() async throws {
        let server = try StubTCPServer(.silent)
        defer { server.stop() }
        let store = Self.store(port: server.port, acquireTimeout: .seconds(60), connectTimeout: .seconds(60))
        try await withRunning(store) {
            let waiting = Task {
                try await store.apply(TestInbox.emptyBatch)
            }
            try await Task.sleep(for: .milliseconds(200))
            let cancelled = ContinuousClock.now
            waiting.cancel()
            let error = await #expect(throws: StoreError.self) { _ = try await waiting.value }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("cancelled") == true, "\(error.map(\.message) ?? "-")")
            // The wait it ends would last 60 s. The bound leaves room for this test's own task to be
            // scheduled late while the whole suite runs on two cores (5.5 s was seen once on CI).
            #expect(cancelled.duration(to: .now) < .seconds(15), "took \(cancelled.duration(to: .now))")
        }
    }
}

/// `PostgresStoreConfiguration(url:)`.
@Suite("PostgreSQL configuration URL")
struct PostgresConfigurationTests {
    @Test("a plain URL")
    func plain() throws {
        let configuration = try PostgresStoreConfiguration(url: "postgres://postgres@127.0.0.1:55432/signal_worker_test")
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 55432)
        #expect(configuration.username == "postgres")
        #expect(configuration.password == nil)
        #expect(configuration.database == "signal_worker_test")
        #expect(configuration.tls == .prefer)
    }

    @Test("percent-encoding, parameters, IPv6 and the default port")
    func full() throws {
        let configuration = try PostgresStoreConfiguration(
            url: "postgresql://app%20user:p%40ss:word@[::1]/my%20db?sslmode=require&application_name=w1&connect_timeout=3")
        #expect(configuration.username == "app user")
        #expect(configuration.password == "p@ss:word")
        #expect(configuration.host == "::1")
        #expect(configuration.port == 5432)
        #expect(configuration.database == "my db")
        #expect(configuration.tls == .require)
        #expect(configuration.applicationName == "w1")
        #expect(configuration.connectTimeout == .seconds(3))
        #expect(try PostgresStoreConfiguration(url: "postgres://u@h/db?sslmode=disable").tls == .disable)
    }

    @Test("the password is never printed")
    func passwordRedacted() throws {
        let configuration = try PostgresStoreConfiguration(url: "postgres://u:hunter2@db:5432/app")
        #expect(!configuration.description.contains("hunter2"))
        #expect(!String(reflecting: configuration).contains("hunter2"))
        #expect(configuration.description.contains("***"))
        do {
            _ = try PostgresStoreConfiguration(url: "postgres://u:hunter2@db:notaport/app")
            Issue.record("a bad port was accepted")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("port"))
        }
    }

    @Test(
        "bad URLs are refused with a reason",
        arguments: [
            ("mysql://u@h/db", "scheme"), ("postgres://u@h", "database"), ("postgres://h/db", "user"),
            ("postgres://u@h:99999/db", "port"), ("postgres://u@h/db?foo=1", "foo"), ("postgres://u@/db", "host"),
            ("postgres://u@h/a/b", "database"), ("postgres://u@h/db?sslmode=sometimes", "sslmode"), ("not a url", "postgres://"),
        ])
    func badURL(url: String, reason: String) {
        do {
            _ = try PostgresStoreConfiguration(url: url)
            Issue.record("\(url) was accepted")
        } catch {
            #expect(error.problem.contains(reason), "\(error)")
        }
    }
}
