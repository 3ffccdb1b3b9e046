/// A JSON value as it arrived on the wire, used where the protocol carries
/// free-form data (`instance.fields`, `attrs`).
///
/// Keeping the tree (rather than decoding into typed optionals) is what lets
/// a receiver tell "key absent" from "key present with `null`".
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The JSON type name used in error messages ("string", "object", ...).
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .integer, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

extension JSONValue {
    /// Parses one JSON text with the protocol's strict parser (RFC 8259, no NaN, nesting at
    /// most 64 deep); `nil` when the bytes are not JSON. For checking encoded replies: requests
    /// go through ``RequestDecoder``, which also says why; readers that need a few members of an
    /// object parse it with a layout (``JSONMembers/init(parsing:layout:)``).
    public init?(parsing bytes: [UInt8]) {
        guard let value = try? JSONParser.parse(bytes) else { return nil }
        self = value
    }
}
