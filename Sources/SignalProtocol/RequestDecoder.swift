import Foundation

/// A request that could not be decoded: the error reply to send and the id, if one was readable.
public struct RequestDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The request id when it could be read before the failure, for the reply.
    public var requestID: String?
    /// The error reply body (`bad_request` or `unsupported`).
    public var error: ReplyError

    public var description: String { "request \(requestID ?? "<no id>"): \(error)" }
}

/// Decodes protocol v1 requests from one frame, with errors that name the field at fault.
///
/// Not thread-safe (it reuses one `JSONDecoder`): give each thread its own.
public final class RequestDecoder {
    /// Largest frame accepted, in bytes; larger ones get `bad_request` without being parsed.
    public let maxFrameBytes: Int
    /// Longest accepted message id, in UTF-8 bytes.
    public static let maxIDLength = 128
    private let decoder = JSONDecoder()

    /// Creates a decoder that rejects frames larger than `maxFrameBytes`.
    public init(maxFrameBytes: Int = 64 * 1024) {
        self.maxFrameBytes = maxFrameBytes
    }

    /// Decodes one request frame.
    public func decode(_ frame: [UInt8]) throws(RequestDecodingError) -> Request {
        try decode(Data(frame))
    }

    /// Decodes one request frame.
    public func decode(_ frame: Data) throws(RequestDecodingError) -> Request {
        guard frame.count <= maxFrameBytes else {
            throw RequestDecodingError(
                requestID: nil,
                error: ReplyError(.badRequest, "frame of \(frame.count) bytes exceeds the limit of \(maxFrameBytes) bytes"))
        }
        do {
            return try decoder.decode(WireRequest.self, from: frame).request
        } catch let error as RequestDecodingError {
            throw error
        } catch let error as DecodingError {
            throw RequestDecodingError(requestID: nil, error: Self.describe(error))
        } catch {
            throw RequestDecodingError(requestID: nil, error: ReplyError(.badRequest, "undecodable request: \(error)"))
        }
    }

    /// Turns Foundation's error for unparsable bytes into a short `bad_request`.
    private static func describe(_ error: DecodingError) -> ReplyError {
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return ReplyError(.badRequest, "request is not well-formed JSON in UTF-8")
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return ReplyError(.badRequest, "request must be a JSON object")
        default:
            return ReplyError(.badRequest, "malformed request: \(error.localizedDescription)")
        }
    }
}

/// The top-level JSON object; its `init(from:)` does the field-by-field validation.
private struct WireRequest: Decodable {
    var request: Request

    private enum Key: String, CodingKey {
        case v, id, type, seq, signal, sender, db, created, raw
        case updateFields = "update_fields"
        case sentAt = "sent_at"
        case instance, attrs
    }

    private enum InstanceKey: String, CodingKey { case model, pk, fields }

    init(from decoder: any Decoder) throws {
        let root = try decoder.container(keyedBy: Key.self)
        var fields = FieldReader(container: root, requestID: nil)
        // The id first, so that every later error reply can echo it.
        let id = try fields.required(String.self, .id, "a string")
        fields.requestID = id
        guard !id.isEmpty, id.utf8.count <= RequestDecoder.maxIDLength else {
            throw fields.failure(.badRequest, "must be 1 to \(RequestDecoder.maxIDLength) bytes long", .id)
        }
        let version = try fields.required(Int64.self, .v, "an integer")
        guard version == Int64(ProtocolVersion.current) else {
            throw fields.failure(
                .unsupported, "protocol version \(version) is not supported (this worker speaks v\(ProtocolVersion.current))",
                .v)
        }
        let type = try fields.optional(String.self, .type, "a string") ?? "signal"
        switch type {
        case "ping":
            request = .ping(id: id)
            return
        case "signal":
            break
        default:
            throw fields.failure(.unsupported, "unknown request type \"\(type)\" (expected \"signal\" or \"ping\")", .type)
        }

        let sequence = try fields.optional(Int64.self, .seq, "an integer or null")
        if let sequence, sequence < 0 { throw fields.failure(.badRequest, "must not be negative", .seq) }
        let signal = try fields.required(String.self, .signal, "a string")
        let sender = try fields.required(String.self, .sender, "a string")
        let database = try fields.optional(String.self, .db, "a string") ?? "default"
        let created = try fields.required(Bool.self, .created, "a boolean")
        let raw = try fields.optional(Bool.self, .raw, "a boolean") ?? false
        let updateFields = try fields.optional([String].self, .updateFields, "null or an array of strings")
        let sentAt = try fields.optional(String.self, .sentAt, "a string")
        let attrs = try fields.optional([String: JSONValue].self, .attrs, "an object") ?? [:]

        guard root.contains(.instance) else { throw fields.failure(.badRequest, "is required", .instance) }
        let instanceContainer: KeyedDecodingContainer<InstanceKey>
        do {
            instanceContainer = try root.nestedContainer(keyedBy: InstanceKey.self, forKey: .instance)
        } catch {
            throw fields.failure(.badRequest, "must be an object", .instance)
        }
        let instanceFields = FieldReader(container: instanceContainer, requestID: id, prefix: "instance.")
        let model = try instanceFields.required(String.self, .model, "a string")
        guard instanceContainer.contains(.pk) else { throw instanceFields.failure(.badRequest, "is required", .pk) }
        let pk = try instanceFields.required(JSONValue.self, .pk, "a JSON value")
        if instanceContainer.contains(.fields) {
            do {
                _ = try instanceContainer.nestedContainer(keyedBy: InstanceKey.self, forKey: .fields)
            } catch {
                throw instanceFields.failure(.badRequest, "must be an object", .fields)
            }
        }

        request = .signal(
            SignalEnvelope(
                id: id, sequence: sequence, signal: signal, sender: sender, database: database, created: created,
                raw: raw, updateFields: updateFields, sentAt: sentAt,
                instance: InstanceReference(model: model, pk: pk), attrs: attrs))
    }
}

/// Reads one field at a time and turns absence or a type mismatch into a `bad_request` naming it.
private struct FieldReader<Key: CodingKey & RawRepresentable> where Key.RawValue == String {
    let container: KeyedDecodingContainer<Key>
    var requestID: String?
    var prefix = ""

    func failure(_ code: ReplyErrorCode, _ what: String, _ key: Key) -> RequestDecodingError {
        let field = prefix + key.rawValue
        return RequestDecodingError(requestID: requestID, error: ReplyError(code, "field \(field) \(what)", field: field))
    }

    func required<T: Decodable>(_ type: T.Type, _ key: Key, _ expected: String) throws(RequestDecodingError) -> T {
        guard container.contains(key) else { throw failure(.badRequest, "is required", key) }
        guard let value = try optional(type, key, expected) else { throw failure(.badRequest, "must be \(expected), not null", key) }
        return value
    }

    /// `nil` when the key is absent or `null`.
    func optional<T: Decodable>(_ type: T.Type, _ key: Key, _ expected: String) throws(RequestDecodingError) -> T? {
        do {
            return try container.decodeIfPresent(type, forKey: key)
        } catch {
            throw failure(.badRequest, "must be \(expected)", key)
        }
    }
}
