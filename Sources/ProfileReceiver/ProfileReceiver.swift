import SignalInbox
import SignalProtocol

/// The Swift port of the reference `create_or_update_user_profile` receiver.
///
/// ```python
/// if created:
///     UserProfile.objects.create(user=instance, profile_type=data.get('profile_type', default),
///                                sex=data.get('sex', None), birthdate=data.get('birthdate', None))
/// elif hasattr(instance, 'profile'):
///     profile.<field> = data.get('<field>', profile.<field>)  # for the three fields
///     instance.profile.save()
/// ```
///
/// A ``SignalInbox/PostSaveReceiver``: ``message(from:)`` validates an envelope, ``decide(_:in:)``
/// decides one message against the rows read for its batch; the SQL is in `ProfileSQL`.
public struct ProfileReceiver: PostSaveReceiver {
    /// The receiver's settings.
    public var configuration: ProfileReceiverConfiguration

    /// Creates a receiver.
    public init(configuration: ProfileReceiverConfiguration = ProfileReceiverConfiguration()) {
        self.configuration = configuration
    }

    /// The attribute the receiver reads from the instance.
    public static let profileDataAttribute = "_profile_data"

    /// The paths of `attrs` it reads: `_profile_data` and its three keys.
    private static let profileDataPath = [profileDataAttribute]
    private static let profileTypePath = [profileDataAttribute, "profile_type"]
    private static let sexPath = [profileDataAttribute, "sex"]
    private static let birthdatePath = [profileDataAttribute, "birthdate"]

    /// `_profile_data`'s three keys: the decoder keeps those and builds nothing else of `attrs`.
    public var attributes: AttributeSelection { .paths([Self.profileTypePath, Self.sexPath, Self.birthdatePath]) }

    // MARK: - Validation

    /// Validates a `post_save` envelope for this receiver.
    ///
    /// Throws `bad_request` for wrong JSON types and `invalid_value` for values the
    /// database would refuse (bad dates, NULL `profile_type`, text over the column limit),
    /// naming the field Django would name when several are wrong: `birthdate` first (Django
    /// parses it before any SQL runs), then text types, then text length and NUL (the
    /// database's `DataError`), then a NULL `profile_type` (checked by the database last).
    /// For an update the data errors are kept in ``ProfileMessage/dataError`` instead:
    /// they count only if the user has a profile (see ``decide(_:in:)``).
    public func message(from envelope: SignalEnvelope) throws(ReplyError) -> ProfileMessage {
        guard case .integer(let userID) = envelope.instance.pk else {
            throw ReplyError(
                .badRequest, "field instance.pk must be an integer, got \(envelope.instance.pk.typeName)",
                field: "instance.pk")
        }
        var message = ProfileMessage(userID: userID, created: envelope.created)
        do {
            message.data = try profileData(envelope.attributes)
        } catch {
            guard !envelope.created else { throw error }
            message.dataError = error
        }
        return message
    }

    /// `_profile_data` as the receiver reads it; absent means `{}`.
    private func profileData(_ attributes: SignalAttributes) throws(ReplyError) -> ProfileData {
        var data = ProfileData()
        switch attributes.value(at: Self.profileDataPath) {
        case nil:
            return data  // getattr(instance, '_profile_data', {})
        case .object?:
            data.birthdate = try date(attributes.value(at: Self.birthdatePath), "birthdate")
            let profileType = try textType(attributes.value(at: Self.profileTypePath), "profile_type")
            let sex = try textType(attributes.value(at: Self.sexPath), "sex")
            data.profileType = try withinLimits(profileType, "profile_type", maxLength: configuration.limits.profileTypeMaxLength)
            data.sex = try withinLimits(sex, "sex", maxLength: configuration.limits.sexMaxLength)
            if case .null = data.profileType {
                throw ReplyError(
                    .invalidValue, "profile_type must not be null (the column is NOT NULL)", field: "profile_type")
            }
            return data
        case let other?:
            throw ReplyError(
                .badRequest, "attrs._profile_data must be an object, got \(other.typeName)",
                field: "attrs._profile_data")
        }
    }

    /// A text key of `_profile_data` (`value`: its value, `nil` when absent).
    private func textType(_ value: JSONValue?, _ key: String) throws(ReplyError) -> FieldUpdate<String> {
        switch value {
        case nil: return .absent
        case .null?: return .null
        case .string(let value)?: return .value(value)
        case let other?:
            throw ReplyError(.badRequest, "\(key) must be a string or null, got \(other.typeName)", field: key)
        }
    }

    private func withinLimits(_ update: FieldUpdate<String>, _ key: String, maxLength: Int?) throws(ReplyError)
        -> FieldUpdate<String>
    {
        guard case .value(let value) = update else { return update }
        if let maxLength, value.unicodeScalars.count > maxLength {
            throw ReplyError(
                .invalidValue, "\(key) is \(value.unicodeScalars.count) characters long; the column allows \(maxLength)",
                field: key)
        }
        if configuration.limits.rejectsNUL, value.unicodeScalars.contains("\0") {
            throw ReplyError(.invalidValue, "\(key) contains a NUL character, which the database refuses", field: key)
        }
        return update
    }

    /// The date key of `_profile_data` (`value`: its value, `nil` when absent).
    private func date(_ value: JSONValue?, _ key: String) throws(ReplyError) -> FieldUpdate<DjangoDate> {
        switch value {
        case nil: return .absent
        case .null?: return .null
        case .string(let value)?:
            switch Result(catching: { () throws(DjangoDate.ParseFailure) in try DjangoDate.parse(value) }) {
            case .success(let date):
                return .value(date)
            case .failure(.invalidFormat):
                throw ReplyError(
                    .invalidValue, "\(key) \(Self.quoted(value)) has an invalid date format; it must be in YYYY-MM-DD format",
                    field: key)
            case .failure(.invalidDate):
                throw ReplyError(
                    .invalidValue, "\(key) \(Self.quoted(value)) has the correct format (YYYY-MM-DD) but is an invalid date",
                    field: key)
            }
        case let other?:
            throw ReplyError(.badRequest, "\(key) must be a date string or null, got \(other.typeName)", field: key)
        }
    }

    static func quoted(_ value: String) -> String {
        let shown = value.count > 40 ? String(value.prefix(40)) + "…" : value
        return "\"" + shown.debugDescription.dropFirst().dropLast() + "\""
    }

    // MARK: - PostSaveReceiver

    /// `profile`.
    public var name: String { "profile" }

    /// The inbox's face of the receiver, compiled for this type (``SignalInbox/ErasedReceiver``).
    public var erased: ErasedReceiver { ErasedReceiver(self) }

    /// The user model label.
    public var sender: String { configuration.senderLabel }

    /// The profile table as the model declares it, and the user table.
    public var tables: [TableRequirement] {
        ProfileSQL.tables(configuration)
    }

    /// The receiver with the `varchar` lengths and NUL rule the database enforces.
    public func adapted(to facts: SchemaFacts) -> ProfileReceiver {
        var adapted = self
        adapted.configuration.limits = ColumnLimits(
            profileTypeMaxLength: facts.maximumLength(configuration.profileTable, "profile_type"),
            sexMaxLength: facts.maximumLength(configuration.profileTable, "sex"), rejectsNUL: facts.rejectsNUL)
        return adapted
    }

    public func djangoCompatibleDDL(_ dialect: SQLDialect) -> [String] {
        ProfileSQL(configuration, dialect: dialect).djangoCompatibleDDL
    }

    public func reads(for messages: [ProfileMessage], dialect: SQLDialect) -> [BatchStatement] {
        [ProfileSQL(configuration, dialect: dialect).readUsers(Self.users(of: messages))]
    }

    public func state(for messages: [ProfileMessage], rows: [[SQLRow]]) throws(StoreError) -> ProfileState {
        try ProfileSQL.state(from: rows[0])
    }

    /// One message against the current row: the action and the row to write, if any.
    public func decide(_ message: ProfileMessage, in state: ProfileState) -> Result<Decision<ProfileRow>, ReplyError> {
        let data = message.data
        let user = state.users[message.userID]
        let current = user?.row
        if message.created {
            if current != nil {
                return .failure(
                    ReplyError(.conflict, "a profile already exists for user \(message.userID)", field: "instance.pk"))
            }
            guard user?.exists == true else {
                return .failure(
                    ReplyError(.conflict, "user \(message.userID) does not exist in the user table", field: "instance.pk"))
            }
            let row = ProfileRow(
                userID: message.userID,
                profileType: data.profileType.resolved(current: configuration.defaultProfileType)
                    ?? configuration.defaultProfileType,
                sex: data.sex.resolved(current: nil),
                birthdate: data.birthdate.resolved(current: nil))
            return .success(Decision(.created, change: row))
        }
        guard var row = current else { return .success(Decision(.skipped)) }
        if let error = message.dataError { return .failure(error) }  // read only now, as in Python
        row.profileType = data.profileType.resolved(current: row.profileType) ?? row.profileType
        row.sex = data.sex.resolved(current: row.sex)
        row.birthdate = data.birthdate.resolved(current: row.birthdate)
        return .success(Decision(.updated, change: row))
    }

    public func record(_ row: ProfileRow, in state: inout ProfileState) {
        state.record(row)
    }

    public func writes(for state: ProfileState, dialect: SQLDialect) -> [BatchStatement] {
        var inserts: [ProfileRow] = []
        var updates: [ProfileRow] = []
        for userID in state.changedOrder {
            guard let user = state.users[userID], let row = user.row else { continue }
            if user.hadProfile { updates.append(row) } else { inserts.append(row) }
        }
        let sql = ProfileSQL(configuration, dialect: dialect)
        return [sql.insertProfiles(inserts), sql.updateProfiles(updates)]
    }

    /// The batch's users, each once, in first-seen order.
    static func users(of messages: [ProfileMessage]) -> [Int64] {
        var seen = Set<Int64>(minimumCapacity: messages.count)
        return messages.compactMap { seen.insert($0.userID).inserted ? $0.userID : nil }
    }
}

/// What the profile receiver knows about a batch's users while it plans the batch.
///
/// One dictionary entry per user, so that deciding a message and recording its change cost one
/// lookup each (the planning runs once per message, inside the batch's write transaction).
public struct ProfileState: Sendable, Hashable {
    /// What is known of one user of the batch.
    struct User: Sendable, Hashable {
        /// The user's row exists in the user table.
        var exists: Bool
        /// The user had a profile before the batch (its change is an update, not an insert).
        var hadProfile: Bool
        /// The current profile row (read, then changed by the batch's messages so far).
        var row: ProfileRow?
        /// The batch changed the row.
        var changed = false
    }

    /// The batch's users that exist or have a profile.
    var users: [Int64: User]
    /// Users whose row the batch changed, in first-change order (deterministic writes).
    var changedOrder: [Int64] = []

    /// A state of `capacity` users, filled by ``read(_:exists:profile:)``.
    init(capacity: Int) {
        users = Dictionary(minimumCapacity: capacity)
        changedOrder.reserveCapacity(capacity)
    }

    /// Adds a user as read from the database.
    mutating func read(_ userID: Int64, exists: Bool, profile: ProfileRow?) {
        users[userID] = User(exists: exists, hadProfile: profile != nil, row: profile)
    }

    /// Records an accepted message's row (one dictionary lookup: the entry changes in place).
    mutating func record(_ row: ProfileRow) {
        if Self.change(&users[row.userID, default: User(exists: true, hadProfile: false, row: nil)], to: row) {
            changedOrder.append(row.userID)
        }
    }

    /// Sets the user's row; whether it is the batch's first change of it.
    private static func change(_ user: inout User, to row: ProfileRow) -> Bool {
        let first = !user.changed
        user.changed = true
        user.row = row
        return first
    }
}
