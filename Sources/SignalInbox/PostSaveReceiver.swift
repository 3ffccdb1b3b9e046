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
    /// What of `attrs` ``message(from:)`` reads: `.all` (the default) keeps the whole object;
    /// naming the paths lets the decoder keep only those, each in a slot of its own, and skip
    /// building the rest (no dictionary per object: docs/RECEIVERS.md, "Attributes").
    var attributes: AttributeSelection { get }

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

/// What of a request's `attrs` a receiver reads (``PostSaveReceiver/attributes``).
public enum AttributeSelection: Sendable, Hashable {
    /// The whole object: ``SignalProtocol/SignalAttributes/value(at:)`` reads any path.
    case all
    /// Only these paths (keys from `attrs` down; each prefix comes with them): reading another
    /// one finds nothing.
    case paths([[String]])
}

extension PostSaveReceiver {
    /// The whole `attrs` object.
    public var attributes: AttributeSelection { .all }

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
    @usableFromInline let attributes: AttributeSelection
    @usableFromInline let adapted: @Sendable (SchemaFacts) -> ErasedReceiver
    @usableFromInline let djangoCompatibleDDL: @Sendable (SQLDialect) -> [String]
    /// Validates an envelope into a ``ValidatedMessage`` of the receiver's `Message`.
    @usableFromInline let message: @Sendable (SignalEnvelope) throws(ReplyError) -> any AnyObject & Sendable
    /// The receiver's part of a batch: its messages (each made by ``message``), its reads, its planner.
    @usableFromInline let batch: @Sendable ([any AnyObject & Sendable], SQLDialect) -> ReceiverBatch

    /// Erases `receiver`.
    @inlinable
    public init<Receiver: PostSaveReceiver>(_ receiver: Receiver) {
        name = receiver.name
        sender = receiver.sender
        tables = receiver.tables
        attributes = receiver.attributes
        adapted = { receiver.adapted(to: $0).erased }
        djangoCompatibleDDL = { receiver.djangoCompatibleDDL($0) }
        message = { envelope throws(ReplyError) in ValidatedMessage(try receiver.message(from: envelope)) }
        batch = { parts, dialect in
            // Every part was made by this receiver's `message`: the downcast cannot fail (checked in
            // debug builds).
            let messages = parts.map { unsafeDowncast($0, to: ValidatedMessage<Receiver.Message>.self).message }
            return ReceiverBatch(
                reads: receiver.reads(for: messages, dialect: dialect),
                planner: { rows throws(StoreError) in
                    let planning = Planning(
                        receiver: receiver, messages: messages, state: try receiver.state(for: messages, rows: rows))
                    return ReceiverPlanner(
                        decide: { planning.decide($0) }, decideAndKeep: { planning.decideAndKeep($0) },
                        keepPending: { planning.keepPending() },
                        dropPending: { planning.dropPending() }, writes: { planning.writes($0) })
                })
        }
    }
}

/// A receiver's validated message, as the inbox carries it from validation to the batch.
@usableFromInline
final class ValidatedMessage<Message: Sendable>: Sendable {
    @usableFromInline let message: Message

    @inlinable
    init(_ message: Message) { self.message = message }
}

/// One receiver's part of a batch: the statements it reads with, and its planner once they ran.
@usableFromInline
struct ReceiverBatch: Sendable {
    @usableFromInline let reads: [BatchStatement]
    /// The planner from the rows of ``reads`` (one array per statement).
    @usableFromInline let planner: @Sendable ([[SQLRow]]) throws(StoreError) -> ReceiverPlanner

    @inlinable
    init(reads: [BatchStatement], planner: @escaping @Sendable ([[SQLRow]]) throws(StoreError) -> ReceiverPlanner) {
        self.reads = reads
        self.planner = planner
    }
}

/// A receiver's verdict on one message of a batch. A concrete type, not a `Result` of a tuple: the
/// planner's closures return it without a reabstraction thunk per call.
@usableFromInline
enum PlannerDecision {
    /// The receiver accepts the message: its action, and whether it changes a row.
    case accepted(ReplyAction, changes: Bool)
    /// The receiver refuses the message.
    case refused(ReplyError)
}

/// A receiver's planning of one batch, as the inbox calls it once per message. Closures made
/// where the receiver's type is known (``ErasedReceiver/init(_:)``), so each is specialized.
@usableFromInline
struct ReceiverPlanner {
    /// Decides the receiver's `index`-th message of the batch; its change (if any) stays pending.
    @usableFromInline let decide: (Int) -> PlannerDecision
    /// Decides the receiver's `index`-th message and records its change at once if accepted (a
    /// message with no other receiver): one call instead of two.
    @usableFromInline let decideAndKeep: (Int) -> PlannerDecision
    /// Records the pending change (every receiver accepted the message).
    @usableFromInline let keepPending: () -> Void
    /// Forgets the pending change (a receiver refused the message).
    @usableFromInline let dropPending: () -> Void
    /// The statements that write the final state.
    @usableFromInline let writes: (SQLDialect) -> [BatchStatement]

    @inlinable
    init(
        decide: @escaping (Int) -> PlannerDecision, decideAndKeep: @escaping (Int) -> PlannerDecision,
        keepPending: @escaping () -> Void,
        dropPending: @escaping () -> Void, writes: @escaping (SQLDialect) -> [BatchStatement]
    ) {
        self.decide = decide
        self.decideAndKeep = decideAndKeep
        self.keepPending = keepPending
        self.dropPending = dropPending
        self.writes = writes
    }
}

/// One receiver's planning of one batch: its messages, its state, the change pending a verdict.
///
/// Used by one thread, the store's, for one batch, and never re-entered (a receiver's `decide` and
/// `record` do not call back into it): its two variables skip the run-time exclusivity checks,
/// which cost a tenth of the planning's time when every access to them began and ended one.
@usableFromInline
final class Planning<Receiver: PostSaveReceiver> {
    @usableFromInline let receiver: Receiver
    @usableFromInline let messages: [Receiver.Message]
    @exclusivity(unchecked) @usableFromInline var state: Receiver.State
    @exclusivity(unchecked) @usableFromInline var pending: Receiver.Change?

    @inlinable
    init(receiver: Receiver, messages: [Receiver.Message], state: Receiver.State) {
        self.receiver = receiver
        self.messages = messages
        self.state = state
    }

    /// Decides the receiver's `index`-th message of the batch; its change (if any) stays pending.
    @inlinable
    func decide(_ index: Int) -> PlannerDecision {
        pending = nil
        switch receiver.decide(messages[index], in: state) {
        case .success(let decision):
            pending = decision.change
            return .accepted(decision.action, changes: decision.change != nil)
        case .failure(let error):
            return .refused(error)
        }
    }

    /// Decides the receiver's `index`-th message and records its change at once if accepted.
    @inlinable
    func decideAndKeep(_ index: Int) -> PlannerDecision {
        let decision = decide(index)
        keepPending()
        return decision
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
