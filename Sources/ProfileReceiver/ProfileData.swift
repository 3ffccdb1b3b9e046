import SignalProtocol

/// One key of `_profile_data`: absent, present with `null`, or present with a value.
///
/// The receiver reads it with `dict.get(key, existing)`, so absent keeps the stored
/// value while `null` overwrites it: the two must stay distinct.
public enum FieldUpdate<Value: Sendable & Hashable>: Sendable, Hashable {
    case absent
    case null
    case value(Value)

    /// The new value given the current one (`dict.get(key, current)`).
    public func resolved(current: Value?) -> Value? {
        switch self {
        case .absent: current
        case .null: nil
        case .value(let value): value
        }
    }
}

/// The validated `_profile_data` attribute of a saved user.
public struct ProfileData: Sendable, Hashable {
    /// `profile_type` key.
    public var profileType: FieldUpdate<String>
    /// `sex` key.
    public var sex: FieldUpdate<String>
    /// `birthdate` key.
    public var birthdate: FieldUpdate<DjangoDate>

    /// Creates profile data; every key absent by default (`{}`).
    public init(
        profileType: FieldUpdate<String> = .absent, sex: FieldUpdate<String> = .absent,
        birthdate: FieldUpdate<DjangoDate> = .absent
    ) {
        self.profileType = profileType
        self.sex = sex
        self.birthdate = birthdate
    }
}

/// A profile row of Django's `UserProfile` model, without its surrogate `id`.
public struct ProfileRow: Sendable, Hashable, CustomStringConvertible {
    /// `user_id`, the one-to-one key to the user table.
    public var userID: Int64
    /// `profile_type` (NOT NULL).
    public var profileType: String
    /// `sex` (nullable).
    public var sex: String?
    /// `birthdate` (nullable).
    public var birthdate: DjangoDate?

    /// Creates a row.
    public init(userID: Int64, profileType: String, sex: String? = nil, birthdate: DjangoDate? = nil) {
        self.userID = userID
        self.profileType = profileType
        self.sex = sex
        self.birthdate = birthdate
    }

    public var description: String {
        "(user \(userID), \(profileType), \(sex ?? "NULL"), \(birthdate.map(String.init(describing:)) ?? "NULL"))"
    }
}

/// A `post_save` of a user, validated for the profile receiver (its id, `seq` and durability
/// are the inbox's: ``SignalInbox/InboxMessage``).
public struct ProfileMessage: Sendable, Hashable {
    /// The saved user's primary key.
    public var userID: Int64
    /// `created` argument of `post_save`.
    public var created: Bool
    /// The parsed `_profile_data` (all absent when the attribute was absent).
    public var data: ProfileData
    /// Why `_profile_data` could not be used, for an update (`created: false`) only: the
    /// Python receiver reads the data only when the user has a profile, so a bad value is an
    /// error only then and `skipped` otherwise. (A create always reads it: its errors are
    /// thrown by ``ProfileReceiver/message(from:)``.) `data` is empty when this is set.
    public var dataError: ReplyError?

    /// Creates a message.
    public init(userID: Int64, created: Bool, data: ProfileData = ProfileData(), dataError: ReplyError? = nil) {
        self.userID = userID
        self.created = created
        self.data = data
        self.dataError = dataError
    }
}
