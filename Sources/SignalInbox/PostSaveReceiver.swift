import SignalProtocol

/// A Django `post_save` receiver ported to Swift: the only thing a porter writes.
///
/// The inbox (``Inbox``) does everything else for every receiver: dedupe by message id, order
/// per object by `seq`, the batch transaction, the store, the reply. A receiver sees a batch of
/// messages in three steps, all inside one write transaction of the store:
///
/// 1. ``reads(for:dialect:)``: the statements that fetch what it needs to know about the batch's
///    objects (does the user exist, its current row), then ``state(for:rows:)`` turns their rows
///    into the receiver's own ``State``.
/// 2. ``decide(_:in:)`` for each message in arrival order (duplicates and stale ones are already
///    answered by the inbox): the action, or the error Django would raise, and the change to make.
///    When every receiver of the message accepted it, the inbox ``record(_:in:)``s the changes;
///    when one refuses it, none are recorded (all or nothing per message, as in `atomic()`).
/// 3. ``writes(for:dialect:)``: the statements that bring the tables from what was read to the
///    final ``State``, for the whole batch at once.
///
/// docs/RECEIVERS.md walks through a port with the Django REST framework token receiver.
public protocol PostSaveReceiver: Sendable {
    /// The receiver's validated form of a message.
    associatedtype Message: Sendable
    /// What the receiver knows about a batch's objects while it plans the batch.
    associatedtype State
    /// The change one message makes to ``State``.
    associatedtype Change

    /// The name in `--receivers`, in replies (`result.receivers`) and in logs: `profile`.
    var name: String { get }
    /// The model label whose `post_save` it handles: `auth.user`.
    var sender: String { get }
    /// The tables it reads and writes, checked at start-up.
    var tables: [TableRequirement] { get }

    /// The receiver adapted to what the database enforces (column lengths, NUL), read at start-up.
    func adapted(to facts: SchemaFacts) -> Self

    /// Django 5.2's DDL of its tables for `--create-schema` (trials without Django), each
    /// statement idempotent (`CREATE TABLE IF NOT EXISTS`, or guarded by the store).
    func djangoCompatibleDDL(_ dialect: SQLDialect) -> [String]

    /// Validates its part of an envelope; throws the error reply for content Django would refuse.
    func message(from envelope: SignalEnvelope) throws(ReplyError) -> Message

    /// The statements that read what ``state(for:rows:)`` needs about `messages`.
    func reads(for messages: [Message], dialect: SQLDialect) -> [BatchStatement]

    /// The state before the batch, from the rows of ``reads(for:dialect:)`` (one array per
    /// statement, in order). Throws `StoreError.rejected` for stored data it cannot read.
    func state(for messages: [Message], rows: [[SQLRow]]) throws(StoreError) -> State

    /// What one message does given the state so far: an action and the change to record (`nil`:
    /// nothing to write), or the error reply.
    func decide(_ message: Message, in state: State) -> Result<Decision<Change>, ReplyError>

    /// Records an accepted message's change.
    func record(_ change: Change, in state: inout State)

    /// The statements that write the batch's final state.
    func writes(for state: State, dialect: SQLDialect) -> [BatchStatement]

    /// The receiver as the inbox keeps it; the default implementation is right for every receiver.
    var erased: ErasedReceiver { get }
}

/// A receiver's decision on one message.
public struct Decision<Change> {
    /// What the reply says the receiver did.
    public var action: ReplyAction
    /// The change to record, `nil` when the message changes nothing.
    public var change: Change?

    /// Creates a decision.
    public init(_ action: ReplyAction, change: Change? = nil) {
        self.action = action
        self.change = change
    }
}

extension PostSaveReceiver {
    /// The receiver behind the inbox's type-erased face (``ErasedReceiver``).
    ///
    /// A receiver may restate it as `public var erased: ErasedReceiver { ErasedReceiver(self) }`:
    /// written in the receiver's own module, the inbox's per-message planning is compiled for the
    /// receiver's concrete types (as the two shipped receivers do), instead of going through
    /// generic code at run time.
    @inlinable
    public var erased: ErasedReceiver { ErasedReceiver(self) }
}

/// A receiver behind a type-erased face, as the inbox keeps a list of different receivers.
///
/// Its initializer is `@inlinable`: called where the receiver's type is known, every closure it
/// makes (validation, reads, the per-message planning) is specialized for that type.
public struct ErasedReceiver: Sendable {
    @usableFromInline let name: String
    @usableFromInline let sender: String
    @usableFromInline let tables: [TableRequirement]
    @usableFromInline let adapted: @Sendable (SchemaFacts) -> ErasedReceiver
    @usableFromInline let djangoCompatibleDDL: @Sendable (SQLDialect) -> [String]
    @usableFromInline let message: @Sendable (SignalEnvelope) throws(ReplyError) -> any Sendable
    @usableFromInline let reads: @Sendable ([any Sendable], SQLDialect) -> [BatchStatement]
    @usableFromInline let planner: @Sendable ([any Sendable], [[SQLRow]]) throws(StoreError) -> ReceiverPlanner

    /// Erases `receiver`.
    @inlinable
    public init<Receiver: PostSaveReceiver>(_ receiver: Receiver) {
        name = receiver.name
        sender = receiver.sender
        tables = receiver.tables
        adapted = { receiver.adapted(to: $0).erased }
        djangoCompatibleDDL = { receiver.djangoCompatibleDDL($0) }
        message = { envelope throws(ReplyError) in try receiver.message(from: envelope) }
        // Every element was produced by this receiver's `message`, so the casts cannot fail.
        reads = { messages, dialect in receiver.reads(for: messages.map { $0 as! Receiver.Message }, dialect: dialect) }
        planner = { messages, rows throws(StoreError) in
            let typed = messages.map { $0 as! Receiver.Message }
            let planning = Planning(receiver: receiver, messages: typed, state: try receiver.state(for: typed, rows: rows))
            return ReceiverPlanner(
                decide: { planning.decide($0) }, keepPending: { planning.keepPending() },
                dropPending: { planning.dropPending() }, writes: { planning.writes($0) })
        }
    }
}

/// One receiver's planning of one batch: its messages, its state, the change pending a verdict.
@usableFromInline
final class Planning<Receiver: PostSaveReceiver> {
    @usableFromInline let receiver: Receiver
    @usableFromInline let messages: [Receiver.Message]
    @usableFromInline var state: Receiver.State
    @usableFromInline var pending: Receiver.Change?

    @inlinable
    init(receiver: Receiver, messages: [Receiver.Message], state: Receiver.State) {
        self.receiver = receiver
        self.messages = messages
        self.state = state
    }

    /// Decides the receiver's `index`-th message of the batch; its change (if any) stays pending.
    @inlinable
    func decide(_ index: Int) -> Result<(action: ReplyAction, changes: Bool), ReplyError> {
        pending = nil
        switch receiver.decide(messages[index], in: state) {
        case .success(let decision):
            pending = decision.change
            return .success((decision.action, decision.change != nil))
        case .failure(let error):
            return .failure(error)
        }
    }

    /// Records the pending change (every receiver accepted the message).
    @inlinable
    func keepPending() {
        guard let change = pending else { return }
        pending = nil
        receiver.record(change, in: &state)
    }

    /// Forgets the pending change (a receiver refused the message).
    @inlinable
    func dropPending() { pending = nil }

    /// The statements that write the final state.
    @inlinable
    func writes(_ dialect: SQLDialect) -> [BatchStatement] {
        receiver.writes(for: state, dialect: dialect).filter { !$0.isEmpty }
    }
}

/// A receiver's planning of one batch, as the inbox calls it.
@usableFromInline
struct ReceiverPlanner {
    @usableFromInline let decide: (Int) -> Result<(action: ReplyAction, changes: Bool), ReplyError>
    @usableFromInline let keepPending: () -> Void
    @usableFromInline let dropPending: () -> Void
    @usableFromInline let writes: (SQLDialect) -> [BatchStatement]

    @inlinable
    init(
        decide: @escaping (Int) -> Result<(action: ReplyAction, changes: Bool), ReplyError>,
        keepPending: @escaping () -> Void, dropPending: @escaping () -> Void,
        writes: @escaping (SQLDialect) -> [BatchStatement]
    ) {
        self.decide = decide
        self.keepPending = keepPending
        self.dropPending = dropPending
        self.writes = writes
    }
}
