import ProfileReceiver
import SignalProtocol

/// A receiver as the worker sees it: validate an envelope, apply a batch of validated messages.
///
/// A second receiver (another signal or model) is a new conforming type plus one
/// `register` line in ``ReceiverRegistry/standard(configuration:store:)``.
public protocol SignalReceiver: Sendable {
    /// The receiver's validated form of a message.
    associatedtype Message: Sendable

    /// Validates an envelope; throws the error reply for bad content.
    func message(from envelope: SignalEnvelope) throws(ReplyError) -> Message

    /// What must stay in order: messages with equal keys are applied one batch after the
    /// other, in arrival order; batches whose keys are all different may be applied at the
    /// same time (on stores that allow it). The profile receiver uses the user id. Equal keys
    /// across receivers, or hash collisions, only serialize more than needed.
    func orderingKey(of message: Message) -> Int

    /// Applies a batch in arrival order, one outcome per message.
    func apply(_ messages: [Message]) async -> [Reply.Outcome]
}

/// The receivers the worker runs, keyed by (signal, sender).
public struct ReceiverRegistry: Sendable {
    /// Key of a registration.
    public struct Key: Sendable, Hashable, CustomStringConvertible {
        /// Signal name (`post_save`).
        public var signal: String
        /// Sender model label (`auth.user`).
        public var sender: String
        /// Creates a key.
        public init(signal: String, sender: String) {
            self.signal = signal
            self.sender = sender
        }
        public var description: String { "(\(signal), \(sender))" }
    }

    /// A message validated by the receiver at `receiverIndex`.
    public struct Prepared: Sendable {
        /// Which registered receiver validated it.
        public var receiverIndex: Int
        /// The receiver's own message type, boxed.
        public var message: any Sendable
        /// The receiver's ``SignalReceiver/orderingKey(of:)`` for it.
        public var orderingKey: Int
        /// The message as the retry holds see it: id, `seq` and object (sender, pk).
        public var holdReference: RetryHolds.Message
    }

    private struct Entry: Sendable {
        var prepare: @Sendable (SignalEnvelope) throws(ReplyError) -> (message: any Sendable, orderingKey: Int)
        var apply: @Sendable ([any Sendable]) async -> [Reply.Outcome]
    }

    private var indexes: [Key: Int] = [:]
    private var entries: [Entry] = []

    /// An empty registry.
    public init() {}

    /// Registers `receiver` for `key`; a later registration for the same key replaces it.
    public mutating func register<Receiver: SignalReceiver>(_ receiver: Receiver, for key: Key) {
        let entry = Entry(
            prepare: { envelope throws(ReplyError) in
                let message = try receiver.message(from: envelope)
                return (message, receiver.orderingKey(of: message))
            },
            apply: { messages in
                // Every element was produced by this entry's `prepare`, so the cast cannot fail.
                await receiver.apply(messages.map { $0 as! Receiver.Message })
            })
        if let index = indexes[key] {
            entries[index] = entry
        } else {
            indexes[key] = entries.count
            entries.append(entry)
        }
    }

    /// The registered keys, for the start-up log.
    public var keys: [Key] { indexes.keys.sorted { $0.description < $1.description } }

    /// Validates an envelope with the receiver registered for its (signal, sender).
    public func prepare(_ envelope: SignalEnvelope) throws(ReplyError) -> Prepared {
        guard let index = indexes[Key(signal: envelope.signal, sender: envelope.sender)] else {
            throw ReplyError(
                .unsupported,
                "no receiver for signal \(envelope.signal) from sender \(envelope.sender); this worker handles "
                    + keys.map(\.description).joined(separator: ", "),
                field: "sender")
        }
        let (message, orderingKey) = try entries[index].prepare(envelope)
        return Prepared(
            receiverIndex: index, message: message, orderingKey: orderingKey,
            holdReference: RetryHolds.Message(id: envelope.id, sequence: envelope.sequence, object: ObjectKey(envelope)))
    }

    /// Applies messages validated by the receiver at `receiverIndex`.
    public func apply(_ messages: [any Sendable], receiverIndex: Int) async -> [Reply.Outcome] {
        await entries[receiverIndex].apply(messages)
    }
}

/// The profile receiver bound to its store, as a ``SignalReceiver``.
public struct StoredProfileReceiver: SignalReceiver {
    /// The port.
    public var receiver: ProfileReceiver
    /// Where it writes.
    public var store: any ProfileStore

    /// Binds a receiver to a store.
    public init(receiver: ProfileReceiver, store: any ProfileStore) {
        self.receiver = receiver
        self.store = store
    }

    public func message(from envelope: SignalEnvelope) throws(ReplyError) -> ProfileMessage {
        try receiver.message(from: envelope)
    }

    /// The user: one user's messages apply in order (outbox sequence), different users' need not.
    public func orderingKey(of message: ProfileMessage) -> Int { Int(truncatingIfNeeded: message.userID) }

    public func apply(_ messages: [ProfileMessage]) async -> [Reply.Outcome] {
        await receiver.apply(messages, to: store)
    }
}

extension ReceiverRegistry {
    /// The worker's registry: the profile receiver for `post_save` of the configured user model.
    public static func standard(receiver: ProfileReceiver, store: any ProfileStore) -> ReceiverRegistry {
        var registry = ReceiverRegistry()
        registry.register(
            StoredProfileReceiver(receiver: receiver, store: store),
            for: Key(signal: "post_save", sender: receiver.configuration.senderLabel))
        return registry
    }
}
