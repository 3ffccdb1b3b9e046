import DRFTokenReceiver
import ProfileReceiver
import SignalInbox
import SignalProtocol
import Testing

/// An in-memory database for the inbox's planning: users, profiles, tokens, the worker's tables.
///
/// It answers the receivers' reads by their purpose (the rows a real store would return for the
/// batch's users) and applies their writes' rows, so that the inbox and the receivers' decisions are
/// tested without SQL; the SQL itself is tested against real databases in ProfileStoreTests. Faults
/// are scripted: a batch of several messages can be refused (`rejected`), and named messages fail
/// alone with `unavailable`.
private actor MemoryStore: SignalStore {
    var users: Set<Int64>
    var profiles: [Int64: ProfileRow] = [:]
    var tokens: [Int64: String] = [:]
    var state = InboxState()
    var refusesBatches = false
    var unavailable: Set<String> = []
    private(set) var committedIDs: [String] = []

    init(users: Set<Int64>) { self.users = users }

    nonisolated var dialect: SQLDialect { .sqlite }

    func set(profiles: [Int64: ProfileRow] = [:], state: InboxState = InboxState()) {
        self.profiles = profiles
        self.state = state
    }

    func addToken(user: Int64, key: String) { tokens[user] = key }

    func script(refusesBatches: Bool, unavailable: Set<String>) {
        self.refusesBatches = refusesBatches
        self.unavailable = unavailable
    }

    func apply(_ batch: StoreBatch) throws(StoreError) -> InboxPlan {
        if refusesBatches, batch.messageIDs.count > 1 { throw StoreError(.rejected, "UNIQUE constraint failed (scripted)") }
        if let id = batch.messageIDs.first(where: unavailable.contains) {
            throw StoreError(.unavailable, "database is locked (scripted, \(id))")
        }
        var inbox = InboxState()
        inbox.appliedMessageIDs = state.appliedMessageIDs.intersection(batch.messageIDs)
        for object in batch.objects { inbox.lastSequences[object] = state.lastSequences[object] }
        let rows = batch.reads.map(read)
        let plan = try batch.plan(inbox, rows)
        for write in plan.writes { self.write(write) }
        state.appliedMessageIDs.formUnion(plan.applied)
        for record in plan.sequences { state.lastSequences[record.object] = record.sequence }
        committedIDs += plan.applied
        return plan
    }

    private func read(_ statement: BatchStatement) -> [SQLRow] {
        statement.rows.map { row in
            let user = row[0].integer!
            switch statement.purpose {
            case "read users and tokens":
                return [.integer(user), .integer(users.contains(user) ? 1 : 0), .integer(tokens[user] == nil ? 0 : 1)]
            default:
                let profile = profiles[user]
                return [
                    .integer(user), .integer(users.contains(user) ? 1 : 0), .integer(profile == nil ? 0 : 1),
                    .text(profile?.profileType), .text(profile?.sex), .text(profile?.birthdate?.description),
                ]
            }
        }
    }

    private func write(_ statement: BatchStatement) {
        for row in statement.rows {
            switch statement.purpose {
            case "insert tokens":
                tokens[row[2].integer!] = row[0].text!
            default:  // profile rows: profile_type, sex, birthdate, user_id
                let user = row[3].integer!
                profiles[user] = ProfileRow(
                    userID: user, profileType: row[0].text!, sex: row[1].text,
                    birthdate: row[2].text.flatMap { try? DjangoDate.parse($0) })
            }
        }
    }

    func checkSchema(_ requirements: [TableRequirement]) -> SchemaReport { SchemaReport(problems: [], facts: SchemaFacts()) }
    func prepareWorkerTables() -> WorkerTablesReport { WorkerTablesReport() }
    func pruneApplied(olderThanSeconds seconds: Double) -> Int { 0 }
    func createTables(_ ddl: [String]) {}
}

private func envelope(
    _ id: String, user: Int64 = 1, created: Bool, seq: Int64? = nil, data: [String: JSONValue]? = nil
) -> SignalEnvelope {
    SignalEnvelope(
        id: id, sequence: seq, created: created, instance: InstanceReference(model: "auth.user", pk: .integer(user)),
        attrs: data.map { ["_profile_data": .object($0)] } ?? [:])
}

private func apply(_ envelopes: [SignalEnvelope], _ inbox: Inbox, _ store: MemoryStore) async throws -> [Reply.Outcome] {
    await inbox.apply(try envelopes.map { try inbox.prepare($0) }, to: store)
}

private let profileOnly = Inbox(receivers: [ProfileReceiver()])
private let profileAndToken = Inbox(receivers: [ProfileReceiver(), DRFTokenReceiver()])
private let user1 = ObjectKey(sender: "auth.user", pk: "1")

private func profile(_ action: ReplyAction) -> Reply.Outcome { .applied([ReceiverAction("profile", action)]) }

@Suite("Inbox: dedupe, order and the profile receiver's decisions")
struct InboxProfileTests {
    let date = try! DjangoDate.parse("1990-01-02")

    @Test("an update with bad data is skipped without a profile (as in Python) and fails with one")
    func deferredDataError() async throws {
        let store = MemoryStore(users: [1])
        let bad = envelope("u", created: false, data: ["birthdate": .string("2021-02-29")])
        #expect(try await apply([bad], profileOnly, store) == [profile(.skipped)])
        await store.set(profiles: [1: ProfileRow(userID: 1, profileType: "personal")])
        let again = envelope("v", created: false, data: ["birthdate": .string("2021-02-29")])
        let outcome = try await apply([again], profileOnly, store)
        #expect(outcome.map(\.errorCode) == [.invalidValue])
        if case .error(let error) = outcome[0] { #expect(error.receiver == "profile") }
        #expect(await store.committedIDs == ["u"])
    }

    @Test("create uses data or defaults; update keeps absent keys and applies nulls")
    func createThenUpdate() async throws {
        let store = MemoryStore(users: [1])
        let outcomes = try await apply(
            [
                envelope("a", created: true, data: ["sex": .string("F"), "birthdate": .string("1990-01-02")]),
                envelope("b", created: false, data: ["profile_type": .string("business"), "sex": .null]),
            ], profileOnly, store)
        #expect(outcomes == [profile(.created), profile(.updated)])
        #expect(await store.profiles == [1: ProfileRow(userID: 1, profileType: "business", sex: nil, birthdate: date)])
        #expect(await store.committedIDs == ["a", "b"])
    }

    @Test("the configured default profile type is used")
    func configuredDefault() async throws {
        let store = MemoryStore(users: [1])
        let inbox = Inbox(receivers: [ProfileReceiver(configuration: ProfileReceiverConfiguration(defaultProfileType: "business"))])
        _ = try await apply([envelope("a", created: true)], inbox, store)
        #expect(await store.profiles[1]?.profileType == "business")
    }

    @Test("conflicts: profile exists, user missing; failed messages are not recorded")
    func conflicts() async throws {
        let store = MemoryStore(users: [1])
        await store.set(profiles: [1: ProfileRow(userID: 1, profileType: "personal")])
        let outcomes = try await apply([envelope("a", created: true), envelope("b", user: 9, created: true)], profileOnly, store)
        #expect(outcomes.map(\.errorCode) == [.conflict, .conflict])
        #expect(await store.committedIDs.isEmpty)
    }

    @Test("duplicates: already applied, or twice in one batch")
    func duplicates() async throws {
        let store = MemoryStore(users: [1])
        await store.set(state: InboxState(appliedMessageIDs: ["old"]))
        let outcomes = try await apply(
            [envelope("old", created: true), envelope("a", created: true), envelope("a", created: true)], profileOnly, store)
        #expect(outcomes == [.ok(.duplicate), profile(.created), .ok(.duplicate)])
        #expect(await store.committedIDs == ["a"])
    }

    @Test("ordering: older sequences are stale, skipped ones do not advance, per object")
    func ordering() async throws {
        let store = MemoryStore(users: [1, 2])
        await store.set(
            profiles: [1: ProfileRow(userID: 1, profileType: "personal")], state: InboxState(lastSequences: [user1: 4]))
        let outcomes = try await apply(
            [
                envelope("a", created: false, seq: 4, data: ["sex": .string("F")]),
                envelope("b", created: false, seq: 6, data: ["sex": .string("M")]),
                envelope("c", created: false, seq: 5, data: ["sex": .string("O")]),
                envelope("d", user: 2, created: false, seq: 9),
                envelope("e", user: 2, created: true, seq: 3),
            ], profileOnly, store)
        #expect(outcomes == [.stale(lastSequence: 4), profile(.updated), .stale(lastSequence: 6), profile(.skipped), profile(.created)])
        #expect(await store.profiles[1]?.sex == "M")
        #expect(await store.state.lastSequences == [user1: 6, ObjectKey(sender: "auth.user", pk: "2"): 3])
        #expect(await store.committedIDs == ["a", "b", "c", "d", "e"])
    }

    @Test("a refused batch is retried message by message; after a retryable failure the object's later messages wait")
    func retryableFailureHoldsBackLaterMessagesOfItsObject() async throws {
        let store = MemoryStore(users: [1, 2])
        await store.set(profiles: [1: ProfileRow(userID: 1, profileType: "personal"), 2: ProfileRow(userID: 2, profileType: "personal")])
        await store.script(refusesBatches: true, unavailable: ["u1-seq5"])
        let outcomes = try await apply(
            [
                envelope("u1-seq5", created: false, seq: 5, data: ["sex": .string("F")]),
                envelope("u2-seq6", user: 2, created: false, seq: 6, data: ["sex": .string("M")]),
                envelope("u1-seq7", created: false, seq: 7, data: ["sex": .string("O")]),
            ], profileOnly, store)
        #expect(outcomes.map(\.errorCode) == [.storeUnavailable, nil, .storeUnavailable])
        #expect(outcomes[1] == profile(.updated))
        if case .error(let held) = outcomes[2] {
            #expect(held.message.contains("seq 5, id u1-seq5"), "\(held)")
        }
        #expect(await store.committedIDs == ["u2-seq6"], "user 1's seq 7 must not be applied before its seq 5")
    }

    @Test("an unknown sender is unsupported, naming what the inbox handles")
    func unknownSender() throws {
        var other = envelope("x", created: true)
        other.sender = "shop.order"
        #expect(throws: ReplyError.self) { try profileOnly.prepare(other) }
        do {
            _ = try profileOnly.prepare(other)
        } catch {
            #expect(error.code == .unsupported)
            #expect(error.message.contains("(post_save, auth.user)"), "\(error)")
        }
    }
}

@Suite("Inbox: several receivers on one signal (profile, then DRF's token)")
struct InboxSeveralReceiversTests {
    @Test("a create runs both, in connection order, with one reply listing each")
    func createRunsBoth() async throws {
        let store = MemoryStore(users: [1])
        let outcomes = try await apply([envelope("a", created: true, seq: 1)], profileAndToken, store)
        #expect(outcomes == [.applied([ReceiverAction("profile", .created), ReceiverAction("drf-token", .created)])])
        #expect(await store.profiles[1] != nil)
        let key = try #require(await store.tokens[1])
        #expect(TokenKey.isWellFormed(key), "\(key)")
        #expect(await store.state.lastSequences[user1] == 1)
    }

    @Test("an update: profile updated, token skipped and untouched")
    func updateSkipsToken() async throws {
        let store = MemoryStore(users: [1])
        _ = try await apply([envelope("a", created: true)], profileAndToken, store)
        let key = await store.tokens[1]
        let outcomes = try await apply([envelope("b", created: false, data: ["sex": .string("F")])], profileAndToken, store)
        #expect(outcomes == [.applied([ReceiverAction("profile", .updated), ReceiverAction("drf-token", .skipped)])])
        #expect(await store.tokens[1] == key)
        #expect(outcomes[0].action == .updated, "the top-level action is the first receiver's")
    }

    @Test("all or nothing: a token that exists refuses the message, and its profile is not written")
    func laterReceiverRefuses() async throws {
        let store = MemoryStore(users: [1, 2])
        await store.addToken(user: 1, key: "0123456789abcdef0123456789abcdef01234567")
        let outcomes = try await apply(
            [envelope("a", created: true, seq: 3), envelope("b", user: 2, created: true, seq: 4)], profileAndToken, store)
        guard case .error(let error) = outcomes[0] else {
            Issue.record("expected a conflict, got \(outcomes[0])")
            return
        }
        #expect(error.code == .conflict && error.receiver == "drf-token", "\(error)")
        #expect(outcomes[1] == .applied([ReceiverAction("profile", .created), ReceiverAction("drf-token", .created)]))
        #expect(await store.profiles[1] == nil, "the refused message's profile must not be written")
        #expect(await store.profiles[2] != nil)
        #expect(await store.state.lastSequences[user1] == nil, "a refused message does not advance its object")
        #expect(await store.committedIDs == ["b"])
    }

    @Test("an earlier receiver's refusal: the token receiver does not run")
    func earlierReceiverRefuses() async throws {
        let store = MemoryStore(users: [1])
        let bad = envelope("a", created: true, data: ["birthdate": .string("2021-02-29")])
        do {
            _ = try profileAndToken.prepare(bad)
            Issue.record("a create with an invalid date was accepted")
        } catch {
            #expect(error.code == .invalidValue && error.receiver == "profile")
        }
        let missingUser = try await apply([envelope("b", user: 7, created: true)], profileAndToken, store)
        if case .error(let error) = missingUser[0] { #expect(error.receiver == "profile" && error.code == .conflict) }
        #expect(await store.tokens.isEmpty)
    }

    @Test("the token receiver alone: created for a create, skipped for an update, conflict for a missing user")
    func tokenOnly() async throws {
        let store = MemoryStore(users: [1])
        let inbox = Inbox(receivers: [DRFTokenReceiver()])
        let outcomes = try await apply(
            [envelope("a", created: true), envelope("b", created: false), envelope("c", user: 5, created: true)], inbox, store)
        #expect(outcomes[0] == .applied([ReceiverAction("drf-token", .created)]))
        #expect(outcomes[1] == .applied([ReceiverAction("drf-token", .skipped)]))
        if case .error(let error) = outcomes[2] {
            #expect(error.code == .conflict && error.receiver == "drf-token" && error.message.contains("user 5"))
        } else {
            Issue.record("expected a conflict for the missing user, got \(outcomes[2])")
        }
        #expect(await store.profiles.isEmpty)
    }

    @Test("the reply lists every receiver in order, keeps `action` for one-receiver clients, and says nothing more for one receiver")
    func replyEncoding() {
        let reply = Reply(id: "a", outcome: .applied([ReceiverAction("profile", .updated), ReceiverAction("drf-token", .skipped)]))
        #expect(
            String(decoding: reply.encoded(), as: UTF8.self)
                == #"{"v":1,"id":"a","status":"ok","result":{"action":"updated","receivers":{"profile":"updated","drf-token":"skipped"}}}"#)
        let alone = Reply(id: "c", outcome: .applied([ReceiverAction("profile", .created)]))
        #expect(
            String(decoding: alone.encoded(), as: UTF8.self)
                == #"{"v":1,"id":"c","status":"ok","result":{"action":"created"}}"#,
            "one receiver: its action is the message's, no receivers object")
        let error = Reply(id: "b", outcome: .error(ReplyError(.conflict, "x", field: "instance.pk", receiver: "drf-token")))
        #expect(
            String(decoding: error.encoded(), as: UTF8.self)
                == #"{"v":1,"id":"b","status":"error","error":{"code":"conflict","message":"x","field":"instance.pk","receiver":"drf-token","retryable":false}}"#)
    }

    @Test("token keys: 40 lowercase hex characters, all different")
    func tokenKeys() {
        let keys = (0..<1000).map { _ in TokenKey.generate() }
        #expect(keys.allSatisfy(TokenKey.isWellFormed))
        #expect(Set(keys).count == keys.count)
        #expect(!TokenKey.isWellFormed("ABCDEF0123456789abcdef0123456789abcdef01"))
        #expect(!TokenKey.isWellFormed("abc"))
    }
}

/// A receiver written without declaring what it reads of `attrs`: the profile receiver's logic
/// behind a face that keeps the protocol's default (``AttributeSelection/all``).
private struct UndeclaredAttributesReceiver: PostSaveReceiver {
    let profile = ProfileReceiver()
    var name: String { "undeclared" }
    var sender: String { profile.sender }
    var tables: [TableRequirement] { profile.tables }
    func adapted(to facts: SchemaFacts) -> Self { self }
    func djangoCompatibleDDL(_ dialect: SQLDialect) -> [String] { profile.djangoCompatibleDDL(dialect) }
    func message(from envelope: SignalEnvelope) throws(ReplyError) -> ProfileMessage { try profile.message(from: envelope) }
    func reads(for messages: [ProfileMessage], dialect: SQLDialect) -> [BatchStatement] {
        profile.reads(for: messages, dialect: dialect)
    }
    func state(for messages: [ProfileMessage], rows: [[SQLRow]]) throws(StoreError) -> ProfileState {
        try profile.state(for: messages, rows: rows)
    }
    func decide(_ message: ProfileMessage, in state: ProfileState) -> Result<Decision<ProfileRow>, ReplyError> {
        profile.decide(message, in: state)
    }
    func record(_ row: ProfileRow, in state: inout ProfileState) { profile.record(row, in: &state) }
    func writes(for state: ProfileState, dialect: SQLDialect) -> [BatchStatement] { profile.writes(for: state, dialect: dialect) }
}

@Suite("Inbox: what the request decoder keeps of attrs")
struct InboxAttributeLayoutTests {
    @Test("the receivers' declared paths, each once; none for the token receiver; all of attrs once one receiver declares nothing")
    func layoutFromReceivers() {
        let profilePaths = [["_profile_data"], ["_profile_data", "profile_type"], ["_profile_data", "sex"], ["_profile_data", "birthdate"]]
        #expect(Inbox(receivers: [ProfileReceiver()]).attributeLayout?.paths == profilePaths)
        #expect(Inbox(receivers: [ProfileReceiver(), DRFTokenReceiver(), ProfileReceiver()]).attributeLayout?.paths == profilePaths)
        #expect(Inbox(receivers: [DRFTokenReceiver()]).attributeLayout?.paths == [])
        #expect(Inbox(receivers: [ProfileReceiver(), UndeclaredAttributesReceiver()]).attributeLayout == nil)
    }
}
