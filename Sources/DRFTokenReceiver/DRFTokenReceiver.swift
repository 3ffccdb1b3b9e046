import SignalInbox
import SignalProtocol

/// The Swift port of Django REST framework's token receiver (its authentication docs,
/// "Generating Tokens"), connected to the user model's `post_save`:
///
/// ```python
/// @receiver(post_save, sender=settings.AUTH_USER_MODEL)
/// def create_auth_token(sender, instance=None, created=False, **kwargs):
///     if created:
///         Token.objects.create(user=instance)
/// ```
///
/// `Token.objects.create` inserts a row of `authtoken_token` whose key is `Token.generate_key()`
/// (`secrets.token_hex(20)`): 20 random bytes as 40 lowercase hex characters. What Django does in the other cases, the port
/// answers: a token that already exists for the user is an `IntegrityError` on the unique
/// `user_id` (`conflict`), and so is a user row that is gone (the deferred foreign key, at commit).
public struct DRFTokenReceiver: PostSaveReceiver {
    /// The receiver's settings.
    public struct Configuration: Sendable, Hashable {
        /// The user model label whose `post_save` it handles.
        public var senderLabel: String
        /// DRF's token table.
        public var tokenTable: String
        /// The user model's table.
        public var userTable: String

        /// Creates a configuration; defaults match DRF with `django.contrib.auth`'s user.
        public init(senderLabel: String = "auth.user", tokenTable: String = "authtoken_token", userTable: String = "auth_user") {
            self.senderLabel = senderLabel
            self.tokenTable = tokenTable
            self.userTable = userTable
        }
    }

    /// A user's `post_save` as the receiver reads it.
    public struct Message: Sendable, Hashable {
        /// The user's primary key.
        public var userID: Int64
        /// `created` argument of `post_save`.
        public var created: Bool
    }

    /// What the receiver knows about a batch's users.
    public struct State {
        var existingUsers: Set<Int64> = []
        var usersWithToken: Set<Int64> = []
        var newTokens: [NewToken] = []
    }

    /// A token to insert.
    public struct NewToken: Sendable, Hashable {
        var userID: Int64
        var key: String
    }

    /// The receiver's settings.
    public var configuration: Configuration
    /// Makes token keys; ``TokenKey/generate()`` unless a test replaces it.
    var makeKey: @Sendable () -> String

    /// Creates the receiver.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.makeKey = TokenKey.generate
    }

    public var name: String { "drf-token" }

    /// None of `attrs` (as DRF's receiver, it reads only the user).
    public var attributes: AttributeSelection { .paths([]) }

    /// The inbox's face of the receiver, compiled for this type (``SignalInbox/ErasedReceiver``).
    public var erased: ErasedReceiver { ErasedReceiver(self) }
    public var sender: String { configuration.senderLabel }

    /// `authtoken_token` as DRF's migrations create it, and the user table.
    public var tables: [TableRequirement] {
        let table = configuration.tokenTable
        return [
            .userTable(configuration.userTable),
            TableRequirement(
                table: table,
                missing: "the token table does not exist; add \"rest_framework.authtoken\" to INSTALLED_APPS and run "
                    + "`python manage.py migrate`",
                columns: [
                    .init("key", .text, notNull: true),
                    .init("user_id", .integer, notNull: true),
                    .init("created", .dateTime, notNull: true),
                ],
                primaryKey: .supplied("key"),
                foreignKeys: [
                    .init(column: "user_id", table: configuration.userTable, reason: "Token.user is a OneToOneField")
                ],
                unique: [.init(column: "user_id", reason: "one token per user; Token.user is a OneToOneField")]),
        ]
    }

    /// Nothing to adapt: keys are always 40 characters and never contain NUL.
    public func adapted(to facts: SchemaFacts) -> DRFTokenReceiver { self }

    public func djangoCompatibleDDL(_ dialect: SQLDialect) -> [String] {
        TokenSQL(configuration, dialect: dialect).djangoCompatibleDDL
    }

    public func message(from envelope: SignalEnvelope) throws(ReplyError) -> Message {
        guard case .integer(let userID) = envelope.instance.pk else {
            throw ReplyError(
                .badRequest, "field instance.pk must be an integer, got \(envelope.instance.pk.typeName)",
                field: "instance.pk")
        }
        return Message(userID: userID, created: envelope.created)
    }

    public func reads(for messages: [Message], dialect: SQLDialect) -> [BatchStatement] {
        var seen = Set<Int64>()
        let users = messages.filter(\.created).compactMap { seen.insert($0.userID).inserted ? $0.userID : nil }
        return [TokenSQL(configuration, dialect: dialect).readUsers(users)]
    }

    public func state(for messages: [Message], rows: [[SQLRow]]) throws(StoreError) -> State {
        var state = State()
        for row in rows[0] {
            guard let userID = row[0].integer else { continue }
            if row[1].isTrue { state.existingUsers.insert(userID) }
            if row[2].isTrue { state.usersWithToken.insert(userID) }
        }
        return state
    }

    public func decide(_ message: Message, in state: State) -> Result<Decision<NewToken>, ReplyError> {
        guard message.created else { return .success(Decision(.skipped)) }
        if state.usersWithToken.contains(message.userID) {
            return .failure(
                ReplyError(.conflict, "a token already exists for user \(message.userID)", field: "instance.pk"))
        }
        guard state.existingUsers.contains(message.userID) else {
            return .failure(
                ReplyError(.conflict, "user \(message.userID) does not exist in the user table", field: "instance.pk"))
        }
        return .success(Decision(.created, change: NewToken(userID: message.userID, key: makeKey())))
    }

    public func record(_ token: NewToken, in state: inout State) {
        state.usersWithToken.insert(token.userID)
        state.newTokens.append(token)
    }

    public func writes(for state: State, dialect: SQLDialect) -> [BatchStatement] {
        [TokenSQL(configuration, dialect: dialect).insertTokens(state.newTokens)]
    }
}
