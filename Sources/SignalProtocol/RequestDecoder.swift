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
/// The frame is parsed into a ``JSONValue`` tree by a strict one-pass parser, then
/// validated field by field, so "absent" and "null" stay distinct everywhere.
/// `instance.fields` is checked (well-formed, an object) but not kept: no v1 receiver
/// reads it, and building it was a third of the decoding time.
public struct RequestDecoder: Sendable {
    /// Largest frame accepted, in bytes; larger ones get `bad_request` without being parsed.
    public let maxFrameBytes: Int
    /// Longest accepted message id, in UTF-8 bytes.
    public static let maxIDLength = 128

    /// Creates a decoder that rejects frames larger than `maxFrameBytes`.
    public init(maxFrameBytes: Int = 64 * 1024) {
        self.maxFrameBytes = maxFrameBytes
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
        let root: JSONValue
        do {
            root = try JSONParser.parse(frame, skipping: (parent: "instance", key: "fields"))
        } catch {
            throw RequestDecodingError(
                requestID: nil,
                error: ReplyError(.badRequest, "request is not well-formed JSON in UTF-8: \(error.reason) at byte \(error.offset)"))
        }
        guard case .object(let object) = root else {
            throw RequestDecodingError(
                requestID: nil, error: ReplyError(.badRequest, "request must be a JSON object, got \(root.typeName)"))
        }
        return try Self.request(from: object)
    }

    private static func request(from object: [String: JSONValue]) throws(RequestDecodingError) -> Request {
        var fields = FieldReader(object: object)
        // The id first, so that every later error reply can echo it.
        let id = try fields.required("id", "a string", \.stringValue)
        fields.requestID = id
        guard !id.isEmpty, id.utf8.count <= maxIDLength else {
            throw fields.failure(.badRequest, "must be 1 to \(maxIDLength) bytes long", "id")
        }
        let version = try fields.required("v", "an integer", \.integerValue)
        guard version == Int64(ProtocolVersion.current) else {
            throw fields.failure(
                .unsupported, "protocol version \(version) is not supported (this worker speaks v\(ProtocolVersion.current))",
                "v")
        }
        switch try fields.optional("type", "a string", \.stringValue) ?? "signal" {
        case "ping":
            return .ping(id: id)
        case "signal":
            break
        case let type:
            throw fields.failure(.unsupported, "unknown request type \"\(type)\" (expected \"signal\" or \"ping\")", "type")
        }

        let sequence = try fields.optional("seq", "an integer or null", \.integerValue)
        if let sequence, sequence < 0 { throw fields.failure(.badRequest, "must not be negative", "seq") }
        let durable = try fields.optional("durable", "a boolean", \.boolValue) ?? true
        let checksOutbox = try fields.optional("outbox_check", "a boolean", \.boolValue) ?? false
        let signal = try fields.required("signal", "a string", \.stringValue)
        let sender = try fields.required("sender", "a string", \.stringValue)
        let database = try fields.optional("db", "a string", \.stringValue) ?? "default"
        let created = try fields.required("created", "a boolean", \.boolValue)
        let raw = try fields.optional("raw", "a boolean", \.boolValue) ?? false
        let updateFields = try fields.optional("update_fields", "null or an array of strings", \.stringArrayValue)
        let sentAt = try fields.optional("sent_at", "a string", \.stringValue)
        let attrs = try fields.optional("attrs", "an object", \.objectValue) ?? [:]
        let instanceObject = try fields.required("instance", "an object", \.objectValue)

        let instance = FieldReader(object: instanceObject, requestID: id, prefix: "instance.")
        let model = try instance.required("model", "a string", \.stringValue)
        guard let pk = instanceObject["pk"], pk != .null else { throw instance.failure(.badRequest, "is required", "pk") }
        _ = try instance.optional("fields", "an object", \.objectValue)

        return .signal(
            SignalEnvelope(
                id: id, sequence: sequence, durable: durable, checksOutbox: checksOutbox, signal: signal, sender: sender, database: database, created: created,
                raw: raw, updateFields: updateFields, sentAt: sentAt, instance: InstanceReference(model: model, pk: pk),
                attrs: attrs))
    }
}

/// Reads one field at a time and turns absence or a type mismatch into a `bad_request` naming it.
private struct FieldReader {
    let object: [String: JSONValue]
    var requestID: String?
    var prefix = ""

    func failure(_ code: ReplyErrorCode, _ what: String, _ key: String) -> RequestDecodingError {
        let field = prefix + key
        return RequestDecodingError(requestID: requestID, error: ReplyError(code, "field \(field) \(what)", field: field))
    }

    func required<T>(_ key: String, _ expected: String, _ extract: (JSONValue) -> T?) throws(RequestDecodingError) -> T {
        guard let value = object[key] else { throw failure(.badRequest, "is required", key) }
        guard value != .null else { throw failure(.badRequest, "must be \(expected), not null", key) }
        guard let typed = extract(value) else { throw failure(.badRequest, "must be \(expected), got \(value.typeName)", key) }
        return typed
    }

    /// `nil` when the key is absent or `null`.
    func optional<T>(_ key: String, _ expected: String, _ extract: (JSONValue) -> T?) throws(RequestDecodingError) -> T? {
        guard let value = object[key], value != .null else { return nil }
        guard let typed = extract(value) else { throw failure(.badRequest, "must be \(expected), got \(value.typeName)", key) }
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
