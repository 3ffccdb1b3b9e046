import Foundation
import Synchronization

/// Builds wire-protocol v1 requests as the Django shim would send them (docs/PROTOCOL.md).
struct Messages: Sendable {
    private let prefix: String
    private let counter = Counter()

    /// Ids look like UUIDv7: this run's millisecond timestamp first, then a counter, so they are
    /// unique within a test and time-ordered.
    init() {
        let milliseconds = UInt64(Date().timeIntervalSince1970 * 1_000)
        let hex = String(milliseconds, radix: 16)
        let padded = String(repeating: "0", count: max(0, 12 - hex.count)) + hex
        prefix = "\(padded.prefix(8))-\(padded.dropFirst(8).prefix(4))-7\(String(format: "%03x", UInt32.random(in: 0..<4096)))-8"
    }

    /// A fresh message id.
    func nextID() -> String {
        let number = counter.next()
        return prefix + String(format: "%03x-%012llx", UInt32.random(in: 0..<4096), UInt64(number))
    }

    /// A `post_save` of `auth.user` `user`; `data` becomes `attrs._profile_data` (a `nil` value is
    /// JSON `null`, a key left out is absent), `nil` data leaves `_profile_data` out.
    func signal(
        id: String? = nil, user: Int, created: Bool, data: KeyValuePairs<String, String?>? = [:],
        sender: String = "auth.user", seq: Int? = nil, padding: Int = 0, outboxCheck: Bool = false
    ) -> (id: String, json: String) {
        let id = id ?? nextID()
        var attrs = "{}"
        if let data {
            let fields = data.map { key, value in "\(Self.quoted(key)): \(value.map(Self.quoted) ?? "null")" }
            attrs = "{\"_profile_data\": {\(fields.joined(separator: ", "))}}"
        }
        var extra = padding > 0 ? ", \"padding\": \"\(String(repeating: "x", count: padding))\"" : ""
        if outboxCheck { extra += ", \"outbox_check\": true" }
        let json = """
            {"v": 1, "id": \(Self.quoted(id)), "seq": \(seq.map(String.init) ?? "null"), "signal": "post_save", \
            "sender": \(Self.quoted(sender)), "db": "default", "created": \(created), "raw": false, \
            "update_fields": null, "sent_at": "2026-11-25T13:00:00.123456Z", \
            "instance": {"model": \(Self.quoted(sender)), "pk": \(user), "fields": {"username": "user\(user)"}}, \
            "attrs": \(attrs)\(extra)}
            """
        return (id, json)
    }

    /// A ping.
    func ping(id: String? = nil) -> (id: String, json: String) {
        let id = id ?? nextID()
        return (id, "{\"v\": 1, \"id\": \(Self.quoted(id)), \"type\": \"ping\"}")
    }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    private final class Counter: Sendable {
        private let value = Mutex<UInt64>(0)
        func next() -> UInt64 { value.withLock { $0 += 1; return $0 } }
    }
}

/// A reply as received, parsed with Foundation (independently of the worker's own types).
struct ParsedReply: Sendable, CustomStringConvertible {
    /// The frame as text.
    var raw: String
    /// `v`.
    var version: Int?
    /// `id`; `nil` when absent or null.
    var id: String?
    /// The reply has `"id": null` (the request was too malformed to read one).
    var idIsNull: Bool
    /// `status`: `ok` or `error`.
    var status: String?
    /// `result.action`.
    var action: String?
    /// `error.code`.
    var code: String?
    /// `error.field`.
    var field: String?
    /// `error.retryable`.
    var retryable: Bool?
    /// `error.message`.
    var errorMessage: String?
    /// `result.last_seq` (a `stale` reply).
    var lastSequence: Int?
    /// `result.receivers`: each receiver's action.
    var receivers: [String: String]?
    /// `error.receiver`: the receiver that refused the message.
    var errorReceiver: String?
    /// `result.features` (a pong).
    var features: [String]?

    var description: String { raw }

    /// Parses a reply frame; a frame that is not a JSON object gives a reply with every field `nil`.
    init(_ bytes: [UInt8]) {
        raw = String(decoding: bytes, as: UTF8.self)
        let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
        version = object["v"] as? Int
        id = object["id"] as? String
        idIsNull = object.keys.contains("id") && object["id"] is NSNull
        status = object["status"] as? String
        let result = object["result"] as? [String: Any]
        action = result?["action"] as? String
        let error = object["error"] as? [String: Any]
        code = error?["code"] as? String
        field = error?["field"] as? String
        retryable = error?["retryable"] as? Bool
        errorMessage = error?["message"] as? String
        lastSequence = result?["last_seq"] as? Int
        receivers = result?["receivers"] as? [String: String]
        errorReceiver = error?["receiver"] as? String
        features = result?["features"] as? [String]
    }

    /// `ok` with `action`.
    func isOK(_ action: String) -> Bool { status == "ok" && self.action == action }

    /// `error` with `code`.
    func isError(_ code: String) -> Bool { status == "error" && self.code == code }
}
