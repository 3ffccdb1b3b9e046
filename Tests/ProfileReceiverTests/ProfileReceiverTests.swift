import ProfileReceiver
import SignalProtocol
import Testing

@Suite("Profile receiver: validation")
struct ProfileValidationTests {
    let receiver = ProfileReceiver()

    private func envelope(pk: JSONValue = .integer(7), created: Bool = true, data: JSONValue?) -> SignalEnvelope {
        SignalEnvelope(
            id: "m1", created: created, instance: InstanceReference(model: "auth.user", pk: pk),
            attrs: data.map { ["_profile_data": $0] } ?? [:])
    }

    private func error(_ envelope: SignalEnvelope, receiver: ProfileReceiver? = nil) -> ReplyError? {
        do {
            _ = try (receiver ?? self.receiver).message(from: envelope)
            return nil
        } catch {
            return error
        }
    }

    @Test("absent, null and present keys are kept apart")
    func nullAbsentPresent() throws {
        let message = try receiver.message(
            from: envelope(data: .object(["sex": .null, "birthdate": .string("1990-1-2")])))
        #expect(message.userID == 7)
        #expect(message.data.profileType == .absent)
        #expect(message.data.sex == .null)
        #expect(message.data.birthdate == .value(try DjangoDate.parse("1990-01-02")))
    }

    @Test("several bad values: the error names the field Django names (birthdate, then length, then NULL)")
    func errorOrder() throws {
        let limited = ProfileReceiver(
            configuration: ProfileReceiverConfiguration(limits: ColumnLimits(profileTypeMaxLength: 20, sexMaxLength: 1)))
        let badDateAndNull = envelope(data: .object(["profile_type": .null, "birthdate": .string("2021-02-29")]))
        #expect(error(badDateAndNull)?.field == "birthdate")
        let numberDateAndNull = envelope(data: .object(["profile_type": .null, "birthdate": .integer(0)]))
        #expect(error(numberDateAndNull)?.code == .badRequest)
        #expect(error(numberDateAndNull)?.field == "birthdate")
        let longSexAndNull = envelope(data: .object(["profile_type": .null, "sex": .string("FF")]))
        #expect(error(longSexAndNull, receiver: limited)?.field == "sex")
        #expect(error(longSexAndNull)?.field == "profile_type", "without limits (SQLite) only the NULL is refused")
    }

    @Test("an update keeps its data errors for later: they count only if the user has a profile")
    func updateErrorsAreDeferred() throws {
        for data: JSONValue in [
            .object(["birthdate": .string("2021-02-29")]), .object(["profile_type": .null]), .array([]),
            .object(["sex": .integer(1)]),
        ] {
            let update = try receiver.message(from: envelope(created: false, data: data))
            #expect(update.dataError != nil, "\(data)")
            #expect(update.data == ProfileData())
            #expect(error(envelope(created: true, data: data)) == update.dataError, "a create throws the same error at once")
        }
    }

    @Test("absent _profile_data means {}")
    func absentData() throws {
        #expect(try receiver.message(from: envelope(data: nil)).data == ProfileData())
    }

    @Test("wrong JSON types are bad requests naming the field")
    func wrongTypes() throws {
        let cases: [(SignalEnvelope, String)] = [
            (envelope(pk: .string("7"), data: nil), "instance.pk"),
            (envelope(data: .string("business")), "attrs._profile_data"),
            (envelope(data: .array([])), "attrs._profile_data"),
            (envelope(data: .object(["sex": .integer(1)])), "sex"),
            (envelope(data: .object(["profile_type": .bool(true)])), "profile_type"),
            (envelope(data: .object(["birthdate": .integer(20_200_102)])), "birthdate"),
        ]
        for (input, field) in cases {
            let failure = try #require(error(input))
            #expect(failure.code == .badRequest)
            #expect(failure.field == field)
        }
    }

    @Test("values the database refuses are invalid_value naming the field")
    func invalidValues() throws {
        let limited = ProfileReceiver(
            configuration: ProfileReceiverConfiguration(
                limits: ColumnLimits(profileTypeMaxLength: 20, sexMaxLength: 1, rejectsNUL: true)))
        let cases: [(SignalEnvelope, ProfileReceiver, String)] = [
            (envelope(data: .object(["profile_type": .null])), receiver, "profile_type"),
            (envelope(data: .object(["birthdate": .string("2021-02-29")])), receiver, "birthdate"),
            (envelope(data: .object(["birthdate": .string("yesterday")])), receiver, "birthdate"),
            (envelope(data: .object(["sex": .string("Female")])), limited, "sex"),
            (envelope(data: .object(["profile_type": .string(String(repeating: "x", count: 21))])), limited, "profile_type"),
            (envelope(data: .object(["sex": .string("\0")])), limited, "sex"),
        ]
        for (input, receiver, field) in cases {
            let failure = try #require(error(input, receiver: receiver))
            #expect(failure.code == .invalidValue)
            #expect(failure.field == field)
        }
        // Without limits (SQLite) the same long value is fine, and 20 astral characters fit a limit of 20.
        #expect(error(envelope(data: .object(["sex": .string("Female")]))) == nil)
        #expect(error(envelope(data: .object(["profile_type": .string(String(repeating: "🙂", count: 20))])), receiver: limited) == nil)
    }
}

@Suite("Profile receiver: planning")
struct ProfilePlanTests {
    let receiver = ProfileReceiver()
    let date = try! DjangoDate.parse("1990-01-02")

    private func message(
        _ id: String, user: Int64 = 1, created: Bool, seq: Int64? = nil, _ data: ProfileData = ProfileData()
    ) -> ProfileMessage {
        ProfileMessage(id: id, sequence: seq, userID: user, created: created, data: data)
    }

    @Test("an update with bad data is skipped without a profile (as in Python) and fails with one")
    func deferredDataError() {
        let bad = ReplyError(.invalidValue, "birthdate is an invalid date", field: "birthdate")
        let update = ProfileMessage(id: "u", userID: 1, created: false, dataError: bad)
        let withoutProfile = receiver.plan([update], snapshot: StoreSnapshot(existingUsers: [1]))
        #expect(withoutProfile.outcomes == [.ok(.skipped)])
        #expect(withoutProfile.applied == ["u"])
        let profile = ProfileRow(userID: 1, profileType: "personal", sex: nil, birthdate: nil)
        let withProfile = receiver.plan([update], snapshot: StoreSnapshot(profiles: [1: profile], existingUsers: [1]))
        #expect(withProfile.outcomes == [.error(bad)])
        #expect(withProfile.applied.isEmpty && withProfile.updates.isEmpty)
    }

    @Test("create uses data or defaults; update keeps absent keys and applies nulls")
    func createThenUpdate() {
        let plan = receiver.plan(
            [
                message("a", created: true, ProfileData(sex: .value("F"), birthdate: .value(date))),
                message("b", created: false, ProfileData(profileType: .value("business"), sex: .null)),
            ], snapshot: StoreSnapshot(existingUsers: [1]))
        #expect(plan.outcomes == [.ok(.created), .ok(.updated)])
        #expect(plan.inserts == [ProfileRow(userID: 1, profileType: "business", sex: nil, birthdate: date)])
        #expect(plan.updates.isEmpty)
        #expect(plan.applied == ["a", "b"])
    }

    @Test("the configured default profile type is used")
    func configuredDefault() {
        let receiver = ProfileReceiver(configuration: ProfileReceiverConfiguration(defaultProfileType: "business"))
        let plan = receiver.plan([message("a", created: true)], snapshot: StoreSnapshot(existingUsers: [1]))
        #expect(plan.inserts.first?.profileType == "business")
    }

    @Test("update of an existing row is an update; no row is skipped")
    func updateAndSkip() {
        let existing = ProfileRow(userID: 1, profileType: "personal", sex: "M", birthdate: date)
        let plan = receiver.plan(
            [message("a", created: false, ProfileData(sex: .value("F"))), message("b", user: 2, created: false)],
            snapshot: StoreSnapshot(profiles: [1: existing], existingUsers: [1, 2]))
        #expect(plan.outcomes == [.ok(.updated), .ok(.skipped)])
        #expect(plan.updates == [ProfileRow(userID: 1, profileType: "personal", sex: "F", birthdate: date)])
        #expect(plan.inserts.isEmpty)
        #expect(plan.applied == ["a", "b"])
    }

    @Test("conflicts: profile exists, user missing; failed messages are not recorded")
    func conflicts() {
        let existing = ProfileRow(userID: 1, profileType: "personal")
        let plan = receiver.plan(
            [message("a", created: true), message("b", user: 9, created: true)],
            snapshot: StoreSnapshot(profiles: [1: existing], existingUsers: [1]))
        #expect(plan.outcomes.map(\.code) == [.conflict, .conflict])
        #expect(plan.writesNoProfiles)
        #expect(plan.applied.isEmpty)
    }

    @Test("duplicates: already applied, or twice in one batch")
    func duplicates() {
        let plan = receiver.plan(
            [message("old", created: true), message("a", created: true), message("a", created: true)],
            snapshot: StoreSnapshot(appliedMessageIDs: ["old"], existingUsers: [1]))
        #expect(plan.outcomes == [.ok(.duplicate), .ok(.created), .ok(.duplicate)])
        #expect(plan.applied == ["a"])
    }

    @Test("ordering: older sequences are stale, skipped ones do not advance, per user")
    func ordering() {
        let existing = ProfileRow(userID: 1, profileType: "personal")
        let plan = receiver.plan(
            [
                message("a", created: false, seq: 4, ProfileData(sex: .value("F"))),
                message("b", created: false, seq: 6, ProfileData(sex: .value("M"))),
                message("c", created: false, seq: 5, ProfileData(sex: .value("O"))),
                message("d", user: 2, created: false, seq: 9),
                message("e", user: 2, created: true, seq: 3),
            ], snapshot: StoreSnapshot(profiles: [1: existing], lastSequences: [1: 4], existingUsers: [1, 2]))
        #expect(plan.outcomes == [.stale(lastSequence: 4), .ok(.updated), .stale(lastSequence: 6), .ok(.skipped), .ok(.created)])
        #expect(plan.updates.first?.sex == "M")
        #expect(plan.sequences == [SequenceRecord(userID: 1, sequence: 6), SequenceRecord(userID: 2, sequence: 3)])
        #expect(plan.applied == ["a", "b", "c", "d", "e"])
    }
}

extension Reply.Outcome {
    var code: ReplyErrorCode? { errorCode }
}

/// A store whose faults are scripted: a batch of several messages is refused (`rejected`, as when
/// a row changed under the worker), and the messages named in `unavailable` fail alone with
/// `unavailable` (the lock timed out on their own retry). Faults that the real stores cannot be
/// made to show in this order on demand; the real stores' behaviour is tested in ProfileStoreTests.
private actor ScriptedFaultStore: ProfileStore {
    let unavailable: Set<String>
    private(set) var applied: [String] = []

    init(unavailable: Set<String>) { self.unavailable = unavailable }

    var columnLimits: ColumnLimits { ColumnLimits() }

    func apply(_ messages: [ProfileMessage], plan: @escaping @Sendable (StoreSnapshot) -> BatchPlan) throws(StoreError)
        -> BatchPlan
    {
        if messages.count > 1 { throw StoreError(.rejected, "UNIQUE constraint failed (scripted)") }
        if unavailable.contains(messages[0].id) { throw StoreError(.unavailable, "database is locked (scripted)") }
        let existing = ProfileRow(userID: messages[0].userID, profileType: "personal")
        let result = plan(StoreSnapshot(profiles: [messages[0].userID: existing], existingUsers: [messages[0].userID]))
        applied += result.applied
        return result
    }

    func checkSchema() throws(StoreError) -> [SchemaProblem] { [] }
    func prepareWorkerTables() throws(StoreError) -> WorkerTablesReport { WorkerTablesReport() }
    func pruneApplied(olderThanSeconds seconds: Double) throws(StoreError) -> Int { 0 }
}

@Suite("Profile receiver: applying through a store")
struct ProfileApplyTests {
    @Test("a refused batch is retried message by message; after a retryable failure the user's later messages wait")
    func retryableFailureHoldsBackLaterMessagesOfItsUser() async {
        let store = ScriptedFaultStore(unavailable: ["u1-seq5"])
        let messages = [
            ProfileMessage(id: "u1-seq5", sequence: 5, userID: 1, created: false, data: ProfileData(sex: .value("F"))),
            ProfileMessage(id: "u2-seq6", sequence: 6, userID: 2, created: false, data: ProfileData(sex: .value("M"))),
            ProfileMessage(id: "u1-seq7", sequence: 7, userID: 1, created: false, data: ProfileData(sex: .value("O"))),
        ]
        let outcomes = await ProfileReceiver().apply(messages, to: store)
        #expect(outcomes.map(\.code) == [.storeUnavailable, nil, .storeUnavailable])
        #expect(outcomes[1] == .ok(.updated))
        if case .error(let held) = outcomes[2] {
            #expect(held.message.contains("seq 5, id u1-seq5"), "\(held)")
        }
        #expect(await store.applied == ["u2-seq6"], "user 1's seq 7 must not be applied before its seq 5")
    }
}
