import SignalProtocol

/// The object a message is about: its sender (model label) and primary key.
///
/// Order and the retry hold are kept per object (docs/PROTOCOL.md, "Exactly once and ordering").
public struct ObjectKey: Sendable, Hashable, CustomStringConvertible {
    /// Model label, e.g. `auth.user`.
    public let sender: String
    /// The primary key as text: `42` for an integer, `"ann"` (quoted) for a string, so the two differ.
    public let pk: String
    /// The hash of (sender, pk), computed once: a key is hashed several times per batch (objects,
    /// sequences, retry holds), and the first time is on the thread that validates the message,
    /// not on the one that applies batches.
    private let hash: Int

    /// Creates a key.
    public init(sender: String, pk: String) {
        self.sender = sender
        self.pk = pk
        var hasher = Hasher()
        hasher.combine(sender)
        hasher.combine(pk)
        hash = hasher.finalize()
    }

    public static func == (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        lhs.hash == rhs.hash && lhs.pk == rhs.pk && lhs.sender == rhs.sender
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    /// The key of an envelope's instance.
    public init(_ envelope: SignalEnvelope) {
        switch envelope.instance.pk {
        case .integer(let value): self.init(sender: envelope.sender, pk: String(value))
        case .string(let value): self.init(sender: envelope.sender, pk: "\"\(value)\"")
        case let other: self.init(sender: envelope.sender, pk: "\(other.typeName) \(other)")
        }
    }

    public var description: String { "\(sender) \(pk)" }
}
