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

