/// What a successful request did, the `result.action` of an `ok` reply (and, per receiver, the
/// values of `result.receivers`).
public enum ReplyAction: String, Sendable, Hashable, CaseIterable {
    /// The receiver inserted its row (a profile, a token).
    case created
    /// The receiver rewrote its existing row.
    case updated
    /// The receiver had nothing to do (an update for a user without a profile), as in Python.
    case skipped
    /// The message id was applied before; nothing changed.
    case duplicate
    /// An older message (`seq`) than one already applied for that object; nothing changed
    /// (``Reply/Outcome/stale(lastSequence:)`` carries the newer `seq`).
    case stale
    /// Answer to a `ping` request.
    case pong
}

/// The error codes of protocol v1 (docs/PROTOCOL.md, "Errors").
public struct ReplyErrorCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Malformed JSON, a missing field, a field of the wrong type, an oversized frame.
    public static let badRequest = ReplyErrorCode(rawValue: "bad_request")
    /// An unknown protocol version, request type, signal or sender.
    public static let unsupported = ReplyErrorCode(rawValue: "unsupported")
    /// The database state forbids the change (a profile already exists, the user does not).
    public static let conflict = ReplyErrorCode(rawValue: "conflict")
    /// A value the database (through Django) would reject: bad date, too long, NULL in NOT NULL.
    public static let invalidValue = ReplyErrorCode(rawValue: "invalid_value")
    /// The store could not be reached or failed; retryable, and it holds the object's later
    /// messages until this one is sent again (docs/PROTOCOL.md, "Retryable failures hold their object").
    public static let storeUnavailable = ReplyErrorCode(rawValue: "store_unavailable")
    /// The message asked for an outbox check (`outbox_check`) and the shim's outbox holds an older
    /// message of its object: nothing was written; send that one first, then this one again.
    public static let behind = ReplyErrorCode(rawValue: "behind")

    /// Whether a client may send the same message again later (`store_unavailable`, `behind`).
    public var isRetryable: Bool { self == .storeUnavailable || self == .behind }

    /// Whether the failure holds the object's later messages in the worker (``storeUnavailable``
    /// only: a message `behind` waits for older ones the shim sends, which must get through).
    public var holdsObject: Bool { self == .storeUnavailable }

    public var description: String { rawValue }
}

/// An error reply: code, human-readable message and, when one field is at fault, its name.
public struct ReplyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The machine-readable code.
    public var code: ReplyErrorCode
    /// What went wrong, for people; never contains secrets.
    public var message: String
    /// The field at fault (`birthdate`, `seq`, `instance.pk`, ...), if any.
    public var field: String?
    /// The receiver whose rule refused the message (`profile`, `drf-token`), if one did.
    public var receiver: String?

    /// Creates an error reply body.
    public init(_ code: ReplyErrorCode, _ message: String, field: String? = nil, receiver: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
        self.receiver = receiver
    }

    /// The same error, attributed to `receiver`.
    public func from(receiver: String) -> ReplyError {
        var error = self
        error.receiver = receiver
        return error
    }

    public var description: String {
        let origin = receiver.map { "[\($0)] " } ?? ""
        if let field { return "\(origin)\(code) (\(field)): \(message)" }
        return "\(origin)\(code): \(message)"
    }
}

/// What one receiver did with a message: an entry of `result.receivers`.
public struct ReceiverAction: Sendable, Hashable, CustomStringConvertible {
    /// The receiver's name (`profile`, `drf-token`).
    public var receiver: String
    /// What it did.
    public var action: ReplyAction

    /// Creates an entry.
    public init(_ receiver: String, _ action: ReplyAction) {
        self.receiver = receiver
        self.action = action
    }

    public var description: String { "\(receiver)=\(action.rawValue)" }
}

/// A protocol v1 reply, ready to be encoded into one frame.
public struct Reply: Sendable, Hashable {
    /// The outcome carried by a reply.
    public enum Outcome: Sendable, Hashable {
        /// Success without receivers (`duplicate`, `pong`); `stale` goes through
        /// ``stale(lastSequence:)`` instead.
        case ok(ReplyAction)
        /// The message reached its receivers, which all accepted it, in connection order
        /// (`"result": {"action": <the first one's>, "receivers": {"profile": "created", …}}`;
        /// with one receiver just `{"action": …}`, as before receivers were plural). Never empty.
        case applied([ReceiverAction])
        /// Success without a change: `seq` is not newer than `lastSequence`, the last one applied
        /// for the object (`"result": {"action": "stale", "last_seq": N}`).
        case stale(lastSequence: Int64)
        /// A final or retryable error.
        case error(ReplyError)

        /// The action of a success, `nil` for an error.
        public var action: ReplyAction? {
            switch self {
            case .ok(let action): action
            case .applied(let receivers): receivers.first?.action
            case .stale: .stale
            case .error: nil
            }
        }

        /// The error's code when this is an error.
        public var errorCode: ReplyErrorCode? {
            if case .error(let error) = self { return error.code }
            return nil
        }

        /// Whether this is an error a client may resend (`store_unavailable`, `behind`).
        public var isRetryableError: Bool { errorCode?.isRetryable ?? false }

        /// Whether this error holds its object's later messages (`store_unavailable`).
        public var holdsObject: Bool { errorCode?.holdsObject ?? false }
    }

    /// The id of the request answered; `nil` when the request was too malformed to have one.
    public var id: String?
    /// Success with an action, or an error.
    public var outcome: Outcome
    /// What this worker can do beyond the basics, listed by a `pong` only
    /// (`"features": ["outbox_check"]`, docs/PROTOCOL.md "Health check").
    public var features: [String]

    /// Creates a reply.
    public init(id: String?, outcome: Outcome, features: [String] = []) {
        self.id = id
        self.outcome = outcome
        self.features = features
    }

    /// A success reply.
    public static func ok(_ id: String?, _ action: ReplyAction) -> Reply { Reply(id: id, outcome: .ok(action)) }
    /// An error reply.
    public static func error(_ id: String?, _ error: ReplyError) -> Reply { Reply(id: id, outcome: .error(error)) }

    private static let prefix = Array("{\"v\":\(ProtocolVersion.current),\"id\":".utf8)

    /// The reply as compact UTF-8 JSON (docs/PROTOCOL.md, "Reply").
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96)
        encode(into: &out)
        return out
    }

    /// Replaces the contents of `out` with ``encoded()``'s bytes, keeping its capacity: a sender
    /// that reuses one buffer allocates nothing per reply.
    public func encode(into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        out += Self.prefix
        if let id { JSONString.append(id, to: &out) } else { out += "null".utf8 }
        switch outcome {
        case .ok(let action):
            out += #","status":"ok","result":{"action":""#.utf8
            out += action.rawValue.utf8
            if action == .pong, !features.isEmpty {
                out += #"","features":["#.utf8
                for (index, feature) in features.enumerated() {
                    if index > 0 { out.append(UInt8(ascii: ",")) }
                    JSONString.append(feature, to: &out)
                }
                out += "]}}".utf8
                break
            }
            out += #""}}"#.utf8
        case .applied(let receivers):
            out += #","status":"ok","result":{"action":""#.utf8
            out += (receivers.first?.action ?? .skipped).rawValue.utf8
            // One receiver (the default): its action is the message's, nothing more to say.
            guard receivers.count > 1 else {
                out += #""}}"#.utf8
                break
            }
            out += #"","receivers":{"#.utf8
            for (index, entry) in receivers.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSONString.append(entry.receiver, to: &out)
                out += #":""#.utf8
                out += entry.action.rawValue.utf8
                out.append(UInt8(ascii: "\""))
            }
            out += "}}}".utf8
        case .stale(let lastSequence):
            out += #","status":"ok","result":{"action":"stale","last_seq":"#.utf8
            out += String(lastSequence).utf8
            out += "}}".utf8
        case .error(let error):
            out += #","status":"error","error":{"code":""#.utf8
            out += error.code.rawValue.utf8
            out += #"","message":"#.utf8
            JSONString.append(error.message, to: &out)
            if let field = error.field {
                out += #","field":"#.utf8
                JSONString.append(field, to: &out)
            }
            if let receiver = error.receiver {
                out += #","receiver":"#.utf8
                JSONString.append(receiver, to: &out)
            }
            out += (error.code.isRetryable ? #","retryable":true}}"# : #","retryable":false}}"#).utf8
        }
    }
}

/// JSON string escaping for the hand-built reply (RFC 8259 §7).
enum JSONString {
    static func append(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // The usual string (an id, a receiver's name) needs no escape: one copy of its bytes
        // instead of a capacity check per byte.
        var string = string
        let copied = string.withUTF8 { bytes -> Bool in
            guard !bytes.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
                return false
            }
            out.append(contentsOf: bytes)
            return true
        }
        if !copied { appendEscaped(string, to: &out) }
        out.append(UInt8(ascii: "\""))
    }

    /// The bytes of `string` with the characters JSON requires escaped.
    private static func appendEscaped(_ string: String, to out: inout [UInt8]) {
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += #"\""#.utf8
            case UInt8(ascii: "\\"): out += #"\\"#.utf8
            case UInt8(ascii: "\n"): out += #"\n"#.utf8
            case UInt8(ascii: "\r"): out += #"\r"#.utf8
            case UInt8(ascii: "\t"): out += #"\t"#.utf8
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += #"\u00"#.utf8
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            default: out.append(byte)  // UTF-8 passes through unchanged
            }
        }
    }
}
