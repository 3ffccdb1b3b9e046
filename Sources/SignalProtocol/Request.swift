/// A decoded protocol v1 request (docs/PROTOCOL.md, "Request").
public enum Request: Sendable, Hashable {
    /// A Django signal to apply.
    case signal(SignalEnvelope)
    /// A health check, answered without touching the store.
    case ping(id: String)

    /// The request id, echoed in the reply.
    public var id: String {
        switch self {
        case .signal(let envelope): envelope.id
        case .ping(let id): id
        }
    }
}

/// One Django signal as the shim sent it.
public struct SignalEnvelope: Sendable, Hashable {
    /// Unique message id (time-ordered UUIDv7 from the shim); the dedupe key.
    public var id: String
    /// The outbox sequence number; orders messages per instance. `nil` when the producer has none.
    public var sequence: Int64?
    /// `false` when the producer does not need the acknowledged effects to survive an OS crash or
    /// power loss (docs/PROTOCOL.md, `durable`): the store may then commit without waiting for the disk.
    public var durable: Bool
    /// `outbox_check`: before applying, look in the shim's outbox for an older message of the
    /// same object and answer `behind` if there is one (docs/PROTOCOL.md, "Outbox check").
    public var checksOutbox: Bool
    /// The signal name, e.g. `post_save`.
    public var signal: String
    /// The sender's model label, lower case, e.g. `auth.user`.
    public var sender: String
    /// The Django database alias the instance was saved to.
    public var database: String
    /// `created` argument of `post_save`.
    public var created: Bool
    /// `raw` argument of `post_save` (fixture loading).
    public var raw: Bool
    /// `update_fields` argument of `post_save`; `nil` when Django passed `None`.
    public var updateFields: [String]?
    /// When the shim sent the message (ISO 8601), informational only.
    public var sentAt: String?
    /// The saved instance.
    public var instance: InstanceReference
    /// Non-field instance attributes the receivers read (e.g. `_profile_data`): `attrs` as sent,
    /// or the paths of the decoder's ``AttributeLayout``.
    public var attributes: SignalAttributes

    /// Creates an envelope; defaults match an absent optional field on the wire.
    public init(
        id: String, sequence: Int64? = nil, durable: Bool = true, checksOutbox: Bool = false, signal: String = "post_save",
        sender: String = "auth.user", database: String = "default", created: Bool, raw: Bool = false,
        updateFields: [String]? = nil, sentAt: String? = nil, instance: InstanceReference, attrs: [String: JSONValue] = [:]
    ) {
        self.init(
            id: id, sequence: sequence, durable: durable, checksOutbox: checksOutbox, signal: signal, sender: sender,
            database: database, created: created, raw: raw, updateFields: updateFields, sentAt: sentAt, instance: instance,
            attributes: SignalAttributes(attrs))
    }

    /// Creates an envelope with its attributes as decoded.
    public init(
        id: String, sequence: Int64?, durable: Bool, checksOutbox: Bool, signal: String, sender: String, database: String,
        created: Bool, raw: Bool, updateFields: [String]?, sentAt: String?, instance: InstanceReference,
        attributes: SignalAttributes
    ) {
        self.id = id
        self.sequence = sequence
        self.durable = durable
        self.checksOutbox = checksOutbox
        self.signal = signal
        self.sender = sender
        self.database = database
        self.created = created
        self.raw = raw
        self.updateFields = updateFields
        self.sentAt = sentAt
        self.instance = instance
        self.attributes = attributes
    }
}

/// The saved model instance: its label and primary key (the v1 worker does not read `fields`).
public struct InstanceReference: Sendable, Hashable {
    /// Model label, e.g. `auth.user`.
    public var model: String
    /// Primary key as sent (an integer for Django's default user model).
    public var pk: JSONValue

    /// Creates an instance reference.
    public init(model: String, pk: JSONValue) {
        self.model = model
        self.pk = pk
    }
}
