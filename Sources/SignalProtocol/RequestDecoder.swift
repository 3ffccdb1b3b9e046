import Foundation

/// A request that could not be decoded: the error reply to send and the id, if one was readable.
public struct RequestDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The request id when it could be read before the failure, for the reply.
    public var requestID: String?
    /// The error reply body (`bad_request` or `unsupported`).
    public var error: ReplyError

    public var description: String { "request \(requestID ?? "<no id>"): \(error)" }
}

/// Decodes protocol v1 requests from one frame, with errors that name the field at fault
/// (docs/PROTOCOL.md, "Request").
///
/// The frame is read by a strict one-pass parser into the envelope's known members (one slot
/// each, see ``JSONMemberLayout``; no dictionary for the envelope or `instance`), then
/// validated field by field, so "absent" and "null" stay distinct everywhere. Unknown
/// members and `instance.fields` are checked as strictly (well-formed; `fields` an object)
/// but not built: no v1 receiver reads them. `pk` is kept as parsed, and so is `attrs`: whole,
/// or, given an ``AttributeLayout``, only the paths the receivers read (each in a slot of its
/// own, the rest checked but not built).
public struct RequestDecoder: Sendable {
    /// Largest frame accepted, in bytes; larger ones get `bad_request` without being parsed.
    public let maxFrameBytes: Int
    /// The paths under `attrs` that are kept; `nil`: `attrs` is kept whole.
    public let attributes: AttributeLayout?
    /// The envelope's members, then the attributes' paths (`attrs` followed by each path).
    private let layout: JSONMemberLayout
    /// Longest accepted message id, in UTF-8 bytes.
    public static let maxIDLength = 128

    /// Creates a decoder that rejects frames larger than `maxFrameBytes` and keeps, of `attrs`,
    /// the paths of `attributes` (`nil`, the default: all of it).
    public init(maxFrameBytes: Int = 64 * 1024, attributes: AttributeLayout? = nil) {
        self.maxFrameBytes = maxFrameBytes
        self.attributes = attributes
        if let attributes {
            let envelope = EnvelopeMember.allCases.map(\.member)
            let selected = attributes.paths.map { JSONMemberLayout.Member(EnvelopeMember.attrs.path + $0) }
            layout = JSONMemberLayout(envelope + selected)
        } else {
            layout = EnvelopeMember.layout
        }
    }

    /// Decodes one request frame.
    public func decode(_ frame: Data) throws(RequestDecodingError) -> Request {
        try decode([UInt8](frame))
    }

    /// Decodes one request frame.
    public func decode(_ frame: [UInt8]) throws(RequestDecodingError) -> Request {
        guard frame.count <= maxFrameBytes else {
            throw RequestDecodingError(
                requestID: nil,
                error: ReplyError(.badRequest, "frame of \(frame.count) bytes exceeds the limit of \(maxFrameBytes) bytes"))
        }
        let parsed: JSONParser.LayoutResult
        do {
            parsed = try JSONParser.parse(frame, layout: layout)
        } catch {
            throw RequestDecodingError(
                requestID: nil,
                error: ReplyError(.badRequest, "request is not well-formed JSON in UTF-8: \(error.reason) at byte \(error.offset)"))
        }
        switch parsed {
        case .members(let members):
            return try Self.request(from: FieldReader(members: members), attributes: attributes)
        case .other(let root):
            throw RequestDecodingError(
                requestID: nil, error: ReplyError(.badRequest, "request must be a JSON object, got \(root.typeName)"))
        }
    }

    private static func request(from fields: FieldReader, attributes layout: AttributeLayout?) throws(RequestDecodingError)
        -> Request
    {
        var fields = fields
        // The id first, so that every later error reply can echo it.
        let id = try fields.required(.id, "a string", \.stringValue)
        fields.requestID = id
        guard !id.isEmpty, id.utf8.count <= maxIDLength else {
            throw fields.failure(.badRequest, "must be 1 to \(maxIDLength) bytes long", .id)
        }
        let version = try fields.required(.version, "an integer", \.integerValue)
        guard version == Int64(ProtocolVersion.current) else {
            throw fields.failure(
                .unsupported, "protocol version \(version) is not supported (this worker speaks v\(ProtocolVersion.current))",
                .version)
        }
        switch try fields.optional(.type, "a string", \.stringValue) ?? "signal" {
        case "ping":
            return .ping(id: id)
        case "signal":
            break
        case let type:
            throw fields.failure(.unsupported, "unknown request type \"\(type)\" (expected \"signal\" or \"ping\")", .type)
        }

        let sequence = try fields.optional(.sequence, "an integer or null", \.integerValue)
        if let sequence, sequence < 0 { throw fields.failure(.badRequest, "must not be negative", .sequence) }
        let durable = try fields.optional(.durable, "a boolean", \.boolValue) ?? true
        let checksOutbox = try fields.optional(.outboxCheck, "a boolean", \.boolValue) ?? false
        let signal = try fields.required(.signal, "a string", \.stringValue)
        let sender = try fields.required(.sender, "a string", \.stringValue)
        let database = try fields.optional(.database, "a string", \.stringValue) ?? "default"
        let created = try fields.required(.created, "a boolean", \.boolValue)
        let raw = try fields.optional(.raw, "a boolean", \.boolValue) ?? false
        let updateFields = try fields.optional(.updateFields, "null or an array of strings", \.stringArrayValue)
        let sentAt = try fields.optional(.sentAt, "a string", \.stringValue)
        let attrs = try fields.optional(.attrs, "an object", \.objectValue) ?? [:]
        // With a layout, `attrs` came back empty: its paths are in the slots after the envelope's.
        let attributes =
            layout.map { SignalAttributes(layout: $0, values: fields.members.values, offset: EnvelopeMember.allCases.count) }
            ?? SignalAttributes(attrs)
        // An object here comes back empty: its members are in their own slots.
        _ = try fields.required(.instance, "an object", \.objectValue)
        let model = try fields.required(.model, "a string", \.stringValue)
        guard let pk = fields.value(.pk), pk != .null else { throw fields.failure(.badRequest, "is required", .pk) }
        _ = try fields.optional(.fields, "an object", \.objectValue)

        return .signal(
            SignalEnvelope(
                id: id, sequence: sequence, durable: durable, checksOutbox: checksOutbox, signal: signal, sender: sender, database: database, created: created,
                raw: raw, updateFields: updateFields, sentAt: sentAt, instance: InstanceReference(model: model, pk: pk),
                attributes: attributes))
    }
}

/// The members of a v1 request the decoder reads, each with its path in the frame; the
/// raw value is the member's slot in ``layout``.
private enum EnvelopeMember: Int, CaseIterable {
    case id, version, type, sequence, durable, outboxCheck, signal, sender, database, created, raw, updateFields, sentAt, attrs
    case instance, model, pk, fields

    /// Keys from the frame's root object down to the member.
    var path: [String] {
        switch self {
        case .id: ["id"]
        case .version: ["v"]
        case .type: ["type"]
        case .sequence: ["seq"]
        case .durable: ["durable"]
        case .outboxCheck: ["outbox_check"]
        case .signal: ["signal"]
        case .sender: ["sender"]
        case .database: ["db"]
        case .created: ["created"]
        case .raw: ["raw"]
        case .updateFields: ["update_fields"]
        case .sentAt: ["sent_at"]
        case .attrs: ["attrs"]
        case .instance: ["instance"]
        case .model: ["instance", "model"]
        case .pk: ["instance", "pk"]
        case .fields: ["instance", "fields"]
        }
    }

    /// The field's name in error replies (`instance.pk`).
    var fieldName: String { path.joined(separator: ".") }

    /// The member as a layout names it; the model fields are checked but not built.
    var member: JSONMemberLayout.Member { JSONMemberLayout.Member(path, isBuilt: self != .fields) }

    /// Every member in its slot (`attrs` whole).
    static let layout = JSONMemberLayout(allCases.map(\.member))
}

/// Reads one field at a time and turns absence or a type mismatch into a `bad_request` naming it.
private struct FieldReader {
    let members: JSONMembers
    var requestID: String?

    func value(_ member: EnvelopeMember) -> JSONValue? {
        members[member.rawValue]
    }

    func failure(_ code: ReplyErrorCode, _ what: String, _ member: EnvelopeMember) -> RequestDecodingError {
        let field = member.fieldName
        return RequestDecodingError(requestID: requestID, error: ReplyError(code, "field \(field) \(what)", field: field))
    }

    func required<T>(_ member: EnvelopeMember, _ expected: String, _ extract: (JSONValue) -> T?) throws(RequestDecodingError) -> T {
        guard let value = value(member) else { throw failure(.badRequest, "is required", member) }
        guard value != .null else { throw failure(.badRequest, "must be \(expected), not null", member) }
        guard let typed = extract(value) else { throw failure(.badRequest, "must be \(expected), got \(value.typeName)", member) }
        return typed
    }

    /// `nil` when the member is absent or `null`.
    func optional<T>(_ member: EnvelopeMember, _ expected: String, _ extract: (JSONValue) -> T?) throws(RequestDecodingError) -> T? {
        guard let value = value(member), value != .null else { return nil }
        guard let typed = extract(value) else { throw failure(.badRequest, "must be \(expected), got \(value.typeName)", member) }
        return typed
    }
}

extension JSONValue {
    var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// Integers, and doubles with an exact integer value (`1.0`), as JSON does not tell them apart.
    var integerValue: Int64? {
        switch self {
        case .integer(let value): return value
        case .double(let value): return value.rounded() == value ? Int64(exactly: value) : nil
        default: return nil
        }
    }

    var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    var stringArrayValue: [String]? {
        guard case .array(let values) = self else { return nil }
        var strings: [String] = []
        strings.reserveCapacity(values.count)
        for value in values {
            guard case .string(let string) = value else { return nil }
            strings.append(string)
        }
        return strings
    }
}
