import SignalProtocol

/// What a store read, inside its write transaction, about the messages of one batch.
public struct StoreSnapshot: Sendable, Hashable {
    /// Ids of the batch already in the dedupe table.
    public var appliedMessageIDs: Set<String>
    /// Current profile rows of the batch's users.
    public var profiles: [Int64: ProfileRow]
    /// Last applied outbox sequence of the batch's users.
    public var lastSequences: [Int64: Int64]
    /// The batch's users that exist in the user table.
    public var existingUsers: Set<Int64>

    /// Creates a snapshot.
    public init(
        appliedMessageIDs: Set<String> = [], profiles: [Int64: ProfileRow] = [:], lastSequences: [Int64: Int64] = [:],
        existingUsers: Set<Int64> = []
    ) {
        self.appliedMessageIDs = appliedMessageIDs
        self.profiles = profiles
        self.lastSequences = lastSequences
        self.existingUsers = existingUsers
    }
}

/// The writes a batch needs and each message's outcome, computed from a snapshot.
///
/// Applying `inserts`, `updates`, `applied` and `sequences` in one transaction leaves
/// the tables as applying the messages one by one, in order, would have.
public struct BatchPlan: Sendable, Hashable {
    /// One outcome per message, in message order.
    public var outcomes: [Reply.Outcome]
    /// Final rows of users that had no profile before the batch.
    public var inserts: [ProfileRow]
    /// Final rows of users that had a profile before the batch (all three columns written).
    public var updates: [ProfileRow]
    /// Message ids to record in the dedupe table.
    public var applied: [String]
    /// New last applied sequence per user.
    public var sequences: [SequenceRecord]

    /// Creates a plan.
    public init(
        outcomes: [Reply.Outcome] = [], inserts: [ProfileRow] = [], updates: [ProfileRow] = [], applied: [String] = [],
        sequences: [SequenceRecord] = []
    ) {
        self.outcomes = outcomes
        self.inserts = inserts
        self.updates = updates
        self.applied = applied
        self.sequences = sequences
    }

    /// Whether the plan writes nothing to the profile table.
    public var writesNoProfiles: Bool { inserts.isEmpty && updates.isEmpty }
}

/// The last outbox sequence applied for one user.
public struct SequenceRecord: Sendable, Hashable {
    /// The user.
    public var userID: Int64
    /// The sequence of the newest message that changed the user's profile.
    public var sequence: Int64

    /// Creates a record.
    public init(userID: Int64, sequence: Int64) {
        self.userID = userID
        self.sequence = sequence
    }
}
