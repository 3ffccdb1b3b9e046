import WorkerOperations
import SignalInbox
import SignalProtocol

/// What the broker reads from a request frame: the id (to answer it itself when no worker is
/// there) and the ordering key (`sender`, `instance.pk`) that picks the worker.
///
/// The frame is parsed with the protocol's own strict parser, building only those three
/// members (not the model fields, most of a frame); nothing else is validated here (the
/// worker does that and answers bad requests as it always does).
struct BrokerRequestKey: Sendable, Hashable {
    /// The request's `id`, when it is a string.
    var id: String?
    /// ``StableHash`` of (`sender`, `instance.pk`); `nil` for requests without one (pings,
    /// frames that are not JSON, a `pk` that is neither an integer nor a string).
    var orderingKey: UInt64?

    /// Frames larger than this are not parsed (the worker rejects them anyway).
    static let maxParsedBytes = 64 * 1024

    /// Reads `frame`.
    init(frame: [UInt8]) {
        guard frame.count <= Self.maxParsedBytes, let members = JSONMembers(parsing: frame, layout: Self.layout) else {
            self.init(id: nil, orderingKey: nil)
            return
        }
        var id: String?
        if case .string(let text)? = members[0] { id = text }
        guard case .string(let sender)? = members[1], let pk = members[2] else {
            self.init(id: id, orderingKey: nil)
            return
        }
        self.init(id: id, orderingKey: Self.orderingKey(sender: sender, pk: pk))
    }

    /// The members read: `id`, `sender`, `instance.pk` (slots 0, 1, 2).
    private static let layout = JSONMemberLayout([.init(["id"]), .init(["sender"]), .init(["instance", "pk"])])

    init(id: String?, orderingKey: UInt64?) {
        self.id = id
        self.orderingKey = orderingKey
    }

    /// The stable hash of (sender, pk): the sender's bytes, a separator that UTF-8 never contains,
    /// a type tag (an integer pk 42 and a string pk "42" are different objects), the pk's text.
    static func orderingKey(sender: String, pk: JSONValue) -> UInt64? {
        let tag: UInt8
        let text: String
        switch pk {
        case .integer(let value):
            tag = UInt8(ascii: "i")
            text = String(value)
        case .string(let value):
            tag = UInt8(ascii: "s")
            text = value
        default:
            return nil
        }
        var state = StableHash.fnv1a(sender.utf8)
        state = StableHash.fnv1a(CollectionOfOne(0xFF), state: state)
        state = StableHash.fnv1a(CollectionOfOne(tag), state: state)
        state = StableHash.fnv1a(text.utf8, state: state)
        return StableHash.mix(state)
    }
}
