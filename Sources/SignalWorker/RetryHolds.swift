import WorkerOperations
import SignalInbox
import SignalProtocol

/// Which messages must wait because an earlier message of their object failed retryably.
///
/// A message answered with a retryable error (`store_unavailable`) is resent later by its
/// producer. Until then, a later message of the same object must not be applied: the resent
/// message would then be `stale`, and its change lost. So after such a failure the object is
/// *held*: later messages of it (higher `seq`, or any other message when either has no `seq`)
/// get the retryable error too, until the held message is answered with anything else
/// (applied, `duplicate`, `stale` or a final error) or ``holdTime`` has passed since its last
/// failure. Older messages (lower `seq`) and the held message itself pass.
///
/// A value-type state machine: the apply loop asks ``admit(_:now:)`` before a batch and
/// reports each outcome with ``record(_:outcome:now:)``. At most ``capacity`` objects are held;
/// past that the hold that would end soonest is dropped early (and counted in ``evicted``):
/// the bridge then dead-letters a `stale` answer to the message it was holding for, rather than
/// deleting it (docs/PROTOCOL.md).
public struct RetryHolds: Sendable {
    /// A message as the holds see it.
    public struct Message: Sendable, Hashable {
        /// The message id.
        public var id: String
        /// Its outbox sequence, if any.
        public var sequence: Int64?
        /// Its object.
        public var object: ObjectKey

        /// Creates a message reference.
        public init(id: String, sequence: Int64?, object: ObjectKey) {
            self.id = id
            self.sequence = sequence
            self.object = object
        }
    }

    /// The message an object waits for, and when it last failed.
    struct Hold: Sendable, Hashable {
        var message: Message
        var failedAt: ContinuousClock.Instant
    }

    /// How long after its last retryable failure a message holds its object back.
    public let holdTime: Duration
    /// Most objects held at once.
    public let capacity: Int
    /// Holds dropped before their time because ``capacity`` was reached.
    public private(set) var evicted = 0

    private(set) var holds: [ObjectKey: Hold] = [:]

    /// Creates an empty set of holds; a zero `holdTime` disables holding.
    public init(holdTime: Duration, capacity: Int = 100_000) {
        self.holdTime = holdTime
        self.capacity = max(1, capacity)
    }

    /// Objects held now (expired holds included until the next call touches them).
    public var count: Int { holds.count }

    /// `nil` when `message` may be applied, else the retryable error to answer it with.
    public mutating func admit(_ message: Message, now: ContinuousClock.Instant) -> ReplyError? {
        guard let hold = holds[message.object] else { return nil }
        if hold.failedAt + holdTime <= now {
            holds[message.object] = nil
            return nil
        }
        if hold.message.id == message.id { return nil }
        if let sequence = message.sequence, let heldSequence = hold.message.sequence, sequence < heldSequence {
            return nil
        }
        let which = hold.message.sequence.map { "seq \($0), id \(hold.message.id)" } ?? "id \(hold.message.id)"
        return ReplyError(
            .storeUnavailable,
            "held: an earlier message of \(message.object) (\(which)) failed with a retryable error and has not been "
                + "applied since; send it again first (this object is held for up to \(holdTime) after its last failure)")
    }

    /// Whether `object` waits for the message `id`.
    public func isHeld(_ object: ObjectKey, waitingFor id: String) -> Bool {
        holds[object]?.message.id == id
    }

    /// Updates the holds with the outcome of a message that was admitted and applied (or tried).
    public mutating func record(_ message: Message, outcome: Reply.Outcome, now: ContinuousClock.Instant) {
        guard holdTime > .zero else { return }
        let current = holds[message.object]
        guard outcome.holdsObject else {
            if current?.message.id == message.id { holds[message.object] = nil }
            return
        }
        if let current, current.message.id != message.id, !Self.precedes(message, current.message) { return }
        if current == nil, holds.count >= capacity { makeRoom(now: now) }
        holds[message.object] = Hold(message: message, failedAt: now)
    }

    /// Whether `message` comes before `held` in its object's order (only a lower `seq` does).
    private static func precedes(_ message: Message, _ held: Message) -> Bool {
        guard let sequence = message.sequence, let heldSequence = held.sequence else { return false }
        return sequence < heldSequence
    }

    /// Drops expired holds; if none expired, the one that would end first.
    private mutating func makeRoom(now: ContinuousClock.Instant) {
        let before = holds.count
        holds = holds.filter { $0.value.failedAt + holdTime > now }
        guard holds.count == before, let oldest = holds.min(by: { $0.value.failedAt < $1.value.failedAt }) else { return }
        holds[oldest.key] = nil
        evicted += 1
    }
}
