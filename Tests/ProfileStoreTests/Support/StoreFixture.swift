import ProfileReceiver
import ProfileStorePostgres
import ProfileStoreSQLite
import SignalProtocol
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
    var store: any ProfileStore { get }
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
    /// Makes the database refuse (as a constraint violation) any profile whose `sex` is `value`.
    func refuseSex(_ value: String) async throws
    /// Runs SQL on the helper connection.
    func execute(_ sql: String) async throws
    /// The store's `createDjangoCompatibleSchema()`.
    func createDjangoCompatibleSchema() async throws
}

extension StoreFixture {
    func addApplied(_ ids: [String]) async throws { try await addApplied(ids, ageSeconds: 0) }
}

/// How to set up a fixture.
struct FixtureOptions: Sendable {
    /// Create Django's tables (a copy of Django's migrated schema, else the compatible one).
    var djangoSchema = true
    /// The store's `profileTable`, when not Django's.
    var profileTable: String?
    /// The store's `userTable`, when not Django's.
    var userTable: String?
}

/// Runs `body` with a fresh fixture of `kind`, cleaned up afterwards.
func withFixture(
    _ kind: StoreKind, _ options: FixtureOptions = FixtureOptions(), _ body: (any StoreFixture) async throws -> Void
) async throws {
    switch kind {
    case .sqlite:
        try await FixtureLimiter.sqlite.withSlot {
            try await SQLiteFixture.with(djangoSchema: options.djangoSchema) { configuration in
                if let table = options.profileTable { configuration.profileTable = table }
                if let table = options.userTable { configuration.userTable = table }
            } _: { try await body($0) }
        }
    case .postgres:
        try await FixtureLimiter.postgres.withSlot {
            try await PostgresFixture.with(djangoSchema: options.djangoSchema) { configuration in
                if let table = options.profileTable { configuration.profileTable = table }
                if let table = options.userTable { configuration.userTable = table }
            } _: { try await body($0) }
        }
    }
}

/// The one outcome of applying one message.
func applyOne(_ message: ProfileMessage, to store: any ProfileStore, receiver: ProfileReceiver = ProfileReceiver())
    async -> Reply.Outcome
{
    let outcomes = await receiver.apply([message], to: store)
    return outcomes.count == 1 ? outcomes[0] : .error(ReplyError(.badRequest, "expected one outcome, got \(outcomes.count)"))
}
