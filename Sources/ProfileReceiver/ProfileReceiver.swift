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
/// Pure logic: ``message(from:)`` validates an envelope, ``plan(_:snapshot:)`` decides
/// what a batch writes given what the store read. ``apply(_:to:)`` runs a batch
/// through a ``ProfileStore``.
public struct ProfileReceiver: Sendable {
    /// The receiver's settings.
    public var configuration: ProfileReceiverConfiguration

    /// Creates a receiver.
    public init(configuration: ProfileReceiverConfiguration = ProfileReceiverConfiguration()) {
        self.configuration = configuration
    }

    /// The attribute the receiver reads from the instance.
    public static let profileDataAttribute = "_profile_data"

    // MARK: - Validation

    /// Validates a `post_save` envelope for this receiver.
    ///
    /// Throws `bad_request` for wrong JSON types and `invalid_value` for values the
    /// database would refuse (bad dates, NULL `profile_type`, text over the column limit),
    /// naming the field Django would name when several are wrong: `birthdate` first (Django
    /// parses it before any SQL runs), then text types, then text length and NUL (the
    /// database's `DataError`), then a NULL `profile_type` (checked by the database last).
    /// For an update the data errors are kept in ``ProfileMessage/dataError`` instead:
    /// they count only if the user has a profile (see ``plan(_:snapshot:)``).
    public func message(from envelope: SignalEnvelope) throws(ReplyError) -> ProfileMessage {
        guard case .integer(let userID) = envelope.instance.pk else {
            throw ReplyError(
                .badRequest, "field instance.pk must be an integer, got \(envelope.instance.pk.typeName)",
                field: "instance.pk")
        }
        var message = ProfileMessage(
            id: envelope.id, sequence: envelope.sequence, durable: envelope.durable, userID: userID,
            created: envelope.created)
        do {
            message.data = try profileData(envelope.attrs[Self.profileDataAttribute])
        } catch {
            guard !envelope.created else { throw error }
            message.dataError = error
        }
        return message
    }

    /// `_profile_data` as the receiver reads it; absent means `{}`.
    private func profileData(_ value: JSONValue?) throws(ReplyError) -> ProfileData {
        var data = ProfileData()
        switch value {
        case nil:
            return data  // getattr(instance, '_profile_data', {})
        case .object(let object)?:
            data.birthdate = try date(object, "birthdate")
            let profileType = try textType(object, "profile_type")
            let sex = try textType(object, "sex")
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

    private func textType(_ object: [String: JSONValue], _ key: String) throws(ReplyError) -> FieldUpdate<String> {
        switch object[key] {
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

    private func date(_ object: [String: JSONValue], _ key: String) throws(ReplyError) -> FieldUpdate<DjangoDate> {
        switch object[key] {
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

    private static func quoted(_ value: String) -> String {
        let shown = value.count > 40 ? String(value.prefix(40)) + "…" : value
        return "\"" + shown.debugDescription.dropFirst().dropLast() + "\""
    }

    // MARK: - Planning

    /// Decides what a batch writes: the same end state as applying the messages one
    /// by one, in order, with the Python receiver, plus dedupe and ordering.
    public func plan(_ messages: [ProfileMessage], snapshot: StoreSnapshot) -> BatchPlan {
        var plan = BatchPlan()
        plan.outcomes.reserveCapacity(messages.count)
        plan.applied.reserveCapacity(messages.count)
        var seen = snapshot.appliedMessageIDs
        var rows = snapshot.profiles
        var lastSequences = snapshot.lastSequences
        var touchedUsers: [Int64] = []  // first-touch order, for deterministic writes
        var touched = Set<Int64>()
        var newSequences: [Int64: Int64] = [:]

        for message in messages {
            if seen.contains(message.id) {
                plan.outcomes.append(.ok(.duplicate))
                continue
            }
            if let sequence = message.sequence, let last = lastSequences[message.userID], sequence <= last {
                plan.outcomes.append(.stale(lastSequence: last))
                seen.insert(message.id)
                plan.applied.append(message.id)
                continue
            }
            let outcome = decide(message, current: rows[message.userID], userExists: snapshot.existingUsers.contains(message.userID))
            switch outcome {
            case .failure(let error):
                plan.outcomes.append(.error(error))
                continue
            case .success(let (action, row)):
                plan.outcomes.append(.ok(action))
                seen.insert(message.id)
                plan.applied.append(message.id)
                guard let row else { continue }
                rows[message.userID] = row
                if touched.insert(message.userID).inserted { touchedUsers.append(message.userID) }
                if let sequence = message.sequence {
                    lastSequences[message.userID] = sequence
                    newSequences[message.userID] = sequence
                }
            }
        }
        for userID in touchedUsers {
            guard let row = rows[userID] else { continue }
            if snapshot.profiles[userID] == nil { plan.inserts.append(row) } else { plan.updates.append(row) }
        }
        plan.sequences = newSequences.map { SequenceRecord(userID: $0.key, sequence: $0.value) }
            .sorted { $0.userID < $1.userID }
        return plan
    }

    /// One message against the current row: the action and the row to write, if any.
    private func decide(_ message: ProfileMessage, current: ProfileRow?, userExists: Bool)
        -> Result<(ReplyAction, ProfileRow?), ReplyError>
    {
        let data = message.data
        if message.created {
            if current != nil {
                return .failure(
                    ReplyError(.conflict, "a profile already exists for user \(message.userID)", field: "instance.pk"))
            }
            guard userExists else {
                return .failure(
                    ReplyError(.conflict, "user \(message.userID) does not exist in the user table", field: "instance.pk"))
            }
            let row = ProfileRow(
                userID: message.userID,
                profileType: data.profileType.resolved(current: configuration.defaultProfileType)
                    ?? configuration.defaultProfileType,
                sex: data.sex.resolved(current: nil),
                birthdate: data.birthdate.resolved(current: nil))
            return .success((.created, row))
        }
        guard var row = current else { return .success((.skipped, nil)) }
        if let error = message.dataError { return .failure(error) }  // read only now, as in Python
        row.profileType = data.profileType.resolved(current: row.profileType) ?? row.profileType
        row.sex = data.sex.resolved(current: row.sex)
        row.birthdate = data.birthdate.resolved(current: row.birthdate)
        return .success((.updated, row))
    }

    // MARK: - Applying

    /// The retryable error of a message not applied because `earlier`, a message of the same
    /// user in its batch, failed retryably.
    static func heldBehind(_ earlier: ProfileMessage) -> ReplyError {
        let which = earlier.sequence.map { "seq \($0), id \(earlier.id)" } ?? "id \(earlier.id)"
        return ReplyError(
            .storeUnavailable,
            "not applied: an earlier message of user \(earlier.userID) in the same batch (\(which)) failed with a "
                + "retryable error; send both again, the earlier one first")
    }

    /// Applies a batch through `store`: one transaction, one outcome per message.
    ///
    /// When the database refuses the batch (a row changed under the worker, a
    /// constraint the planner did not foresee), each message is retried alone so that
    /// one bad message does not fail the others; once a message of a user fails
    /// retryably there, the user's later messages are not applied but answered with
    /// the retryable error too (they must not overtake it: docs/PROTOCOL.md, "Exactly
    /// once and ordering"). A store that cannot be reached gives every message
    /// `store_unavailable`.
    public func apply(_ messages: [ProfileMessage], to store: some ProfileStore) async -> [Reply.Outcome] {
        guard !messages.isEmpty else { return [] }
        let receiver = self
        do {
            return try await store.apply(messages) { receiver.plan(messages, snapshot: $0) }.outcomes
        } catch where error.code == .rejected && messages.count > 1 {
            var outcomes: [Reply.Outcome] = []
            outcomes.reserveCapacity(messages.count)
            var failedRetryably: [Int64: ProfileMessage] = [:]  // user -> the first message that failed
            for message in messages {
                if let earlier = failedRetryably[message.userID] {
                    outcomes.append(.error(Self.heldBehind(earlier)))
                    continue
                }
                let outcome = await apply([message], to: store)
                if outcome.first?.isRetryableError == true { failedRetryably[message.userID] = message }
                outcomes += outcome
            }
            return outcomes
        } catch where error.code == .rejected {
            return [.error(ReplyError(.invalidValue, "the database refused the change: \(error.message)"))]
        } catch {
            let reply = ReplyError(.storeUnavailable, "the store is unavailable: \(error.message)")
            return Array(repeating: .error(reply), count: messages.count)
        }
    }
}
