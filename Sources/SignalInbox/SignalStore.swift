import SignalProtocol

/// Django's database as the inbox uses it: transactions, the worker's own tables, SQL.
///
/// A store knows SQL and its database (connections, `BEGIN IMMEDIATE`, advisory locks,
/// durability, the dedupe and sequence tables, pruning), not receivers: each batch comes as a
/// ``StoreBatch`` of statements and a planning function, built by ``Inbox``.
public protocol SignalStore: Sendable {
    /// The SQL the store runs.
    var dialect: SQLDialect { get }

    /// Runs one batch in one transaction and returns the plan it committed:
    ///
    /// 1. begin; on PostgreSQL lock the batch's objects (``StoreBatch/objects``) first;
    /// 2. read the ``InboxState`` (which ids were applied, the last `seq` of each object);
    /// 3. run ``StoreBatch/reads`` and call ``StoreBatch/plan`` with the state and their rows;
    /// 4. run the plan's ``InboxPlan/writes``, record its ``InboxPlan/applied`` ids and
    ///    ``InboxPlan/sequences``; commit.
    ///
    /// Throws ``StoreError`` with code `.rejected` when the database refused a write (the
    /// transaction rolled back, nothing was written), `.unavailable` when it could not be reached.
    func apply(_ batch: StoreBatch) async throws(StoreError) -> InboxPlan

    /// Checks the receivers' tables; no problems means they are usable.
    func checkSchema(_ requirements: [TableRequirement]) async throws(StoreError) -> SchemaReport

    /// Creates the worker's own tables (dedupe, sequences, schema version) if missing and upgrades
    /// them, in one transaction, from an earlier release's layout. Never touches Django's.
    @discardableResult
    func prepareWorkerTables() async throws(StoreError) -> WorkerTablesReport

    /// Deletes dedupe ids recorded more than `seconds` ago; returns how many.
    func pruneApplied(olderThanSeconds seconds: Double) async throws(StoreError) -> Int

    /// Runs idempotent DDL in one transaction (`--create-schema`: Django's tables for a trial).
    func createTables(_ ddl: [String]) async throws(StoreError)
}

/// One batch as the store runs it: the messages' ids and objects, the receivers' reads, and the
/// function that plans the writes once the reads are done.
public struct StoreBatch: Sendable {
    /// The batch's message ids, each once.
    public var messageIDs: [String]
    /// The batch's objects, each once (locked on PostgreSQL, their last `seq` read).
    public var objects: [ObjectKey]
    /// Whether every message said its commit may skip the fsync (`durable: false`).
    public var mayCommitWithoutSync: Bool
    /// The outbox checks the batch's messages asked for (`outbox_check`), each once: the store
    /// looks for an older row of each in the shim's outbox, after locking and before ``plan``.
    public var outboxChecks: [OutboxCheck]
    /// The receivers' reads.
    public var reads: [BatchStatement]
    /// Plans the batch from the inbox state and the rows of ``reads`` (one array per statement).
    public var plan: @Sendable (InboxState, [[SQLRow]]) throws(StoreError) -> InboxPlan

    /// Creates a batch.
    public init(
        messageIDs: [String], objects: [ObjectKey], mayCommitWithoutSync: Bool, outboxChecks: [OutboxCheck] = [],
        reads: [BatchStatement], plan: @escaping @Sendable (InboxState, [[SQLRow]]) throws(StoreError) -> InboxPlan
    ) {
        self.messageIDs = messageIDs
        self.objects = objects
        self.mayCommitWithoutSync = mayCommitWithoutSync
        self.outboxChecks = outboxChecks
        self.reads = reads
        self.plan = plan
    }
}

/// What the worker's own tables say about a batch.
public struct InboxState: Sendable, Hashable {
    /// Ids of the batch already in the dedupe table.
    public var appliedMessageIDs: Set<String>
    /// The last applied `seq` of the batch's objects that have one.
    public var lastSequences: [ObjectKey: Int64]
    /// The batch's outbox checks that found an older row in the shim's outbox.
    public var behind: Set<OutboxCheck>

    /// Creates a state.
    public init(appliedMessageIDs: Set<String> = [], lastSequences: [ObjectKey: Int64] = [:], behind: Set<OutboxCheck> = []) {
        self.appliedMessageIDs = appliedMessageIDs
        self.lastSequences = lastSequences
        self.behind = behind
    }
}


/// What a batch writes and answers.
public struct InboxPlan: Sendable, Hashable {
    /// One outcome per message, in message order.
    public var outcomes: [Reply.Outcome]
    /// The receivers' writes.
    public var writes: [BatchStatement]
    /// Message ids to record in the dedupe table.
    public var applied: [String]
    /// New last applied `seq` per object.
    public var sequences: [SequenceRecord]

    /// Creates a plan.
    public init(
        outcomes: [Reply.Outcome] = [], writes: [BatchStatement] = [], applied: [String] = [],
        sequences: [SequenceRecord] = []
    ) {
        self.outcomes = outcomes
        self.writes = writes
        self.applied = applied
        self.sequences = sequences
    }
}

/// The last `seq` applied for one object.
public struct SequenceRecord: Sendable, Hashable {
    /// The object.
    public var object: ObjectKey
    /// The `seq` of the newest message that changed a row of it.
    public var sequence: Int64

    /// Creates a record.
    public init(object: ObjectKey, sequence: Int64) {
        self.object = object
        self.sequence = sequence
    }
}
