import ProfileReceiver

/// Shorthands for building profile messages in tests.
enum Messages {
    static func created(
        _ userID: Int64, seq: Int64? = nil, id: String = MessageIDs.next(), profileType: FieldUpdate<String> = .absent,
        sex: FieldUpdate<String> = .absent, birthdate: FieldUpdate<DjangoDate> = .absent
    ) -> ProfileMessage {
        ProfileMessage(
            id: id, sequence: seq, userID: userID, created: true,
            data: ProfileData(profileType: profileType, sex: sex, birthdate: birthdate))
    }

    static func updated(
        _ userID: Int64, seq: Int64? = nil, id: String = MessageIDs.next(), profileType: FieldUpdate<String> = .absent,
        sex: FieldUpdate<String> = .absent, birthdate: FieldUpdate<DjangoDate> = .absent
    ) -> ProfileMessage {
        ProfileMessage(
            id: id, sequence: seq, userID: userID, created: false,
            data: ProfileData(profileType: profileType, sex: sex, birthdate: birthdate))
    }

    static func date(_ text: String) -> DjangoDate {
        // Test literals are valid dates.
        // swift-format-ignore: NeverUseForceTry
        try! DjangoDate.parse(text)
    }
}
