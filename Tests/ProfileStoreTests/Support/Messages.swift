import SignalInbox
import ProfileReceiver
import SignalProtocol

/// `post_save` envelopes of users for the profile receiver, built from the fields a test cares about.
enum Messages {
    static func created(
        _ userID: Int64, seq: Int64? = nil, id: String = MessageIDs.next(), profileType: FieldUpdate<String> = .absent,
        sex: FieldUpdate<String> = .absent, birthdate: FieldUpdate<DjangoDate> = .absent, durable: Bool = true
    ) -> SignalEnvelope {
        envelope(userID, created: true, seq: seq, id: id, profileType: profileType, sex: sex, birthdate: birthdate, durable: durable)
    }

    static func updated(
        _ userID: Int64, seq: Int64? = nil, id: String = MessageIDs.next(), profileType: FieldUpdate<String> = .absent,
        sex: FieldUpdate<String> = .absent, birthdate: FieldUpdate<DjangoDate> = .absent, durable: Bool = true
    ) -> SignalEnvelope {
        envelope(userID, created: false, seq: seq, id: id, profileType: profileType, sex: sex, birthdate: birthdate, durable: durable)
    }

    static func date(_ text: String) -> DjangoDate {
        // Test literals are valid dates.
        // swift-format-ignore: NeverUseForceTry
        try! DjangoDate.parse(text)
    }

    private static func envelope(
        _ userID: Int64, created: Bool, seq: Int64?, id: String, profileType: FieldUpdate<String>, sex: FieldUpdate<String>,
        birthdate: FieldUpdate<DjangoDate>, durable: Bool
    ) -> SignalEnvelope {
        var data: [String: JSONValue] = [:]
        func put(_ key: String, _ update: FieldUpdate<String>) {
            switch update {
            case .absent: break
            case .null: data[key] = .null
            case .value(let value): data[key] = .string(value)
            }
        }
        put("profile_type", profileType)
        put("sex", sex)
        switch birthdate {
        case .absent: break
        case .null: data["birthdate"] = .null
        case .value(let date): data["birthdate"] = .string(date.description)
        }
        return SignalEnvelope(
            id: id, sequence: seq, durable: durable, signal: "post_save", sender: "auth.user", database: "default",
            created: created, raw: false, updateFields: nil, sentAt: nil,
            instance: InstanceReference(model: "auth.user", pk: .integer(userID)),
            attrs: data.isEmpty ? [:] : [ProfileReceiver.profileDataAttribute: .object(data)])
    }
}

extension SignalEnvelope {
    /// The user id of an envelope built by ``Messages``.
    var userID: Int64 {
        if case .integer(let id) = instance.pk { return id }
        return -1
    }
}
