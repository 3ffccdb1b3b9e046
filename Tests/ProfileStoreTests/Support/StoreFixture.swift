import DRFTokenReceiver
import ProfileReceiver
import SignalInbox
import SignalProtocol
import SignalStorePostgres
import SignalStoreSQLite
import Testing

/// Which store a test runs against.
enum StoreKind: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { self == .sqlite ? "SQLite" : "PostgreSQL" }

    /// SQLite always; PostgreSQL when `SIGNAL_WORKER_TEST_POSTGRES_URL` is set.
    static var available: [StoreKind] { TestEnvironment.postgresEnabled ? [.sqlite, .postgres] : [.sqlite] }
}

/// A profile row as the database holds it (dates as text), for comparisons.
struct StoredProfile: Sendable, Hashable, CustomStringConvertible {
    var userID: Int64
    var profileType: String
    var sex: String?
    var birthdate: String?

    init(userID: Int64, profileType: String, sex: String? = nil, birthdate: String? = nil) {
        self.userID = userID
        self.profileType = profileType
        self.sex = sex
        self.birthdate = birthdate
    }

    init(_ row: ProfileRow) {
        self.init(
            userID: row.userID, profileType: row.profileType, sex: row.sex, birthdate: row.birthdate?.description)
    }

    var description: String { "(\(userID), \(profileType), \(sex ?? "null"), \(birthdate ?? "null"))" }
}

/// A store on a private copy of Django's schema, plus direct SQL access to set up and inspect it.
protocol StoreFixture: Sendable {
    var kind: StoreKind { get }
    var store: any SignalStore { get }
    /// The profile receiver on the fixture's tables (``FixtureOptions``), behind an inbox.
    var inbox: Inbox { get }
    /// Rows in the user table (username `user<id>`, Django's other NOT NULL columns filled).
    func addUsers(_ ids: [Int64]) async throws
    func addProfiles(_ rows: [StoredProfile]) async throws
    /// Dedupe ids, applied `ageSeconds` ago.
    func addApplied(_ ids: [String], ageSeconds: Double) async throws
    func setSequences(_ sequences: [Int64: Int64]) async throws
    /// All profile rows, sorted by user id.
    func profiles() async throws -> [StoredProfile]
    func appliedIDs() async throws -> Set<String>
    func sequences() async throws -> [Int64: Int64]
    /// A DRF token row for `userID`.
    func addToken(userID: Int64, key: String) async throws
    /// DRF token keys by user.
    func tokens() async throws -> [Int64: String]
    /// Makes the database refuse (as a constraint violation) any profile whose `sex` is `value`.
    func refuseSex(_ value: String) async throws
    /// Runs SQL on the helper connection.
    func execute(_ sql: String) async throws
}

extension StoreFixture {
    func addApplied(_ ids: [String]) async throws { try await addApplied(ids, ageSeconds: 0) }

    /// The profile receiver's (and with `tokens`, also DRF's) Django-compatible DDL, run by the store.
    func createDjangoCompatibleSchema(tokens: Bool = false) async throws {
        let inbox = tokens ? TestInbox.profileAndToken() : self.inbox
        try await store.createTables(inbox.djangoCompatibleDDL(store.dialect))
    }

    /// Applies envelopes through the fixture's inbox.
    func apply(_ envelopes: [SignalEnvelope]) async -> [Reply.Outcome] {
        await TestInbox.apply(envelopes, inbox: inbox, to: store)
    }
}

/// How to set up a fixture.
struct FixtureOptions: Sendable {
    /// Create Django's tables (a copy of Django's migrated schema, else the compatible one).
    var djangoSchema = true
    /// The profile receiver's `profileTable`, when not Django's.
    var profileTable: String?
    /// The profile receiver's `userTable`, when not Django's.
    var userTable: String?

    /// The profile receiver's configuration.
    var profileConfiguration: ProfileReceiverConfiguration {
        var configuration = ProfileReceiverConfiguration()
        if let profileTable { configuration.profileTable = profileTable }
        if let userTable { configuration.userTable = userTable }
        return configuration
    }
}

/// Runs `body` with a fresh fixture of `kind`, cleaned up afterwards.
func withFixture(
    _ kind: StoreKind, _ options: FixtureOptions = FixtureOptions(), _ body: (any StoreFixture) async throws -> Void
) async throws {
    switch kind {
    case .sqlite:
        try await FixtureLimiter.sqlite.withSlot {
            try await SQLiteFixture.with(djangoSchema: options.djangoSchema, profile: options.profileConfiguration) {
                try await body($0)
            }
        }
    case .postgres:
        try await FixtureLimiter.postgres.withSlot {
            try await PostgresFixture.with(djangoSchema: options.djangoSchema, profile: options.profileConfiguration) {
                try await body($0)
            }
        }
    }
}

/// The one outcome of applying one message through the default profile inbox.
func applyOne(_ message: SignalEnvelope, to store: any SignalStore, inbox: Inbox = TestInbox.profile()) async
    -> Reply.Outcome
{
    let outcomes = await TestInbox.apply([message], inbox: inbox, to: store)
    return outcomes.count == 1 ? outcomes[0] : .error(ReplyError(.badRequest, "expected one outcome, got \(outcomes.count)"))
}

/// Inboxes and outcomes of the tests.
enum TestInbox {
    /// The profile receiver alone, on Django's default tables.
    static func profile(_ configuration: ProfileReceiverConfiguration = ProfileReceiverConfiguration()) -> Inbox {
        Inbox(receivers: [ProfileReceiver(configuration: configuration)])
    }

    /// A batch of one message that reads and writes nothing.
    static let emptyBatch = StoreBatch(
        messageIDs: ["m1"], objects: [ObjectKey(sender: "auth.user", pk: "1")], mayCommitWithoutSync: false, reads: [],
        plan: { _, _ in InboxPlan(outcomes: [.profile(.skipped)]) })

    /// The profile receiver then DRF's token receiver, as Django connects them in the example project.
    static func profileAndToken() -> Inbox {
        Inbox(receivers: [ProfileReceiver(), DRFTokenReceiver()])
    }

    /// Validates and applies `envelopes` in one batch; a message the inbox refuses gets its error
    /// and the others are applied, in order, as the worker does.
    static func apply(_ envelopes: [SignalEnvelope], inbox: Inbox, to store: any SignalStore) async -> [Reply.Outcome] {
        var outcomes = [Reply.Outcome?](repeating: nil, count: envelopes.count)
        var valid: [(Int, InboxMessage)] = []
        for (index, envelope) in envelopes.enumerated() {
            do throws(ReplyError) {
                valid.append((index, try inbox.prepare(envelope)))
            } catch {
                outcomes[index] = .error(error)
            }
        }
        let applied = await inbox.apply(valid.map(\.1), to: store)
        for ((index, _), outcome) in zip(valid, applied) { outcomes[index] = outcome }
        return outcomes.map { $0! }
    }
}

extension Reply.Outcome {
    /// The outcome of a message the profile receiver alone accepted with `action`.
    static func profile(_ action: ReplyAction) -> Reply.Outcome { .applied([ReceiverAction("profile", action)]) }
}

extension Inbox {
    /// Validates and applies envelopes in one batch (``TestInbox/apply(_:inbox:to:)``).
    func apply(_ envelopes: [SignalEnvelope], to store: any SignalStore) async -> [Reply.Outcome] {
        await TestInbox.apply(envelopes, inbox: self, to: store)
    }

    /// The inbox adapted to what `store`'s schema enforces, as the worker starts it.
    func adapted(to store: any SignalStore) async throws -> Inbox {
        adapted(to: try await store.checkSchema(tables).facts)
    }
}
