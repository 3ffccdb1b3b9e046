import SignalInbox
import Foundation
import SignalProtocol

/// One file of `Tests/Contract/vectors` (format: docs and the lead's README there).
struct ContractVector: Sendable {
    struct Profile: Decodable, Sendable, Hashable {
        var userID: Int64
        var profileType: String
        var sex: String?
        var birthdate: String?

        enum CodingKeys: String, CodingKey {
            case userID = "user_id", profileType = "profile_type", sex, birthdate
        }

        var stored: StoredProfile { StoredProfile(userID: userID, profileType: profileType, sex: sex, birthdate: birthdate) }
    }

    /// A DRF token row: initial rows give the key; expected rows may leave it out (any
    /// well-formed key: the worker generates it).
    struct Token: Decodable, Sendable, Hashable {
        var userID: Int64
        var key: String?

        enum CodingKeys: String, CodingKey {
            case userID = "user_id", key
        }
    }

    struct Initial: Decodable, Sendable {
        var users: [Int64]?
        var profiles: [Profile]?
        var applied: [String]?
        var sequences: [String: Int64]?
        var tokens: [Token]?
    }

    struct ExpectedReply: Decodable, Sendable, CustomStringConvertible {
        struct Result: Decodable, Sendable {
            var action: String
            /// Each receiver's action; must be absent when the reply has none (one receiver).
            var receivers: [String: String]?
            /// The newer sequence of a `stale` reply, compared when given.
            var lastSeq: Int64?

            enum CodingKeys: String, CodingKey {
                case action, receivers, lastSeq = "last_seq"
            }
        }
        struct ErrorBody: Decodable, Sendable {
            var code: String
            var field: String?
            /// The receiver that refused the message, compared when given.
            var receiver: String?
        }
        var status: String
        var result: Result?
        var error: ErrorBody?

        var description: String {
            if let error { return "error \(error.code)" + (error.field.map { " (field \($0))" } ?? "") }
            return "\(status) \(result?.action ?? "?")"
        }

        /// Why `reply` does not match, `nil` when it does (message text is not compared).
        func mismatch(_ reply: Reply) -> String? {
            switch reply.outcome {
            case .ok, .stale, .applied:
                let action = reply.outcome.action?.rawValue ?? "?"
                guard status == "ok", result?.action == action else { return "expected \(self), got ok \(action)" }
                // `result.receivers` as the reply puts it on the wire: present exactly when the
                // vector lists it (a one-receiver worker's reply has none).
                let encoded = try? JSONSerialization.jsonObject(with: Data(reply.encoded())) as? [String: Any]
                let actual = (encoded?["result"] as? [String: Any])?["receivers"] as? [String: String]
                guard actual == result?.receivers else {
                    return "expected receivers \(result?.receivers.map(\.description) ?? "absent"), "
                        + "got \(actual.map(\.description) ?? "absent")"
                }
                if let expected = result?.lastSeq {
                    guard case .stale(let last) = reply.outcome, last == expected else {
                        return "expected stale with last_seq \(expected), got \(reply.outcome)"
                    }
                }
            case .error(let actual):
                guard status == "error", let error, error.code == actual.code.rawValue else {
                    return "expected \(self), got \(actual)"
                }
                if let field = error.field, field != actual.field {
                    return "expected \(self), got \(actual.code) with field \(actual.field ?? "none")"
                }
                if let receiver = error.receiver, receiver != actual.receiver {
                    return "expected \(self) from receiver \(receiver), got \(actual.receiver ?? "none")"
                }
            }
            return nil
        }
    }

    struct Step: Decodable, Sendable {
        var reply: ExpectedReply
        var replyPostgres: ExpectedReply?

        enum CodingKeys: String, CodingKey {
            case reply, replyPostgres = "reply_postgres"
        }
    }

    struct Expected: Decodable, Sendable {
        var profiles: [Profile]?
        /// Compared when given.
        var tokens: [Token]?
    }

    private struct File: Decodable {
        var name: String
        var receivers: [String]?
        var initial: Initial?
        var steps: [Step]
        var expected: Expected?
        var expectedPostgres: Expected?

        enum CodingKeys: String, CodingKey {
            case name, receivers, initial, steps, expected, expectedPostgres = "expected_postgres"
        }
    }

    var name: String
    /// The receivers the vector runs, in connection order (default: the profile receiver).
    var receivers: [String]
    var initial: Initial
    var steps: [Step]
    /// The request frame of each step: the raw bytes of `message` when it is an object,
    /// the UTF-8 of the string when it is a string.
    var frames: [[UInt8]]
    var expected: Expected?
    var expectedPostgres: Expected?

    func reply(step: Int, kind: StoreKind) -> ExpectedReply {
        kind == .postgres ? steps[step].replyPostgres ?? steps[step].reply : steps[step].reply
    }

    func expectedProfiles(kind: StoreKind) -> [StoredProfile]? {
        let expected = kind == .postgres ? expectedPostgres ?? self.expected : self.expected
        return expected.map { ($0.profiles ?? []).map(\.stored).sorted { $0.userID < $1.userID } }
    }

    struct FormatError: Error, CustomStringConvertible {
        var description: String
    }

    init(contentsOf url: URL) throws {
        let data = try Data(contentsOf: url)
        let file = try JSONDecoder().decode(File.self, from: data)
        let raw = RawJSON(bytes: Array(data))
        guard let stepsRange = try raw.members(ofObjectAt: raw.start()).first(where: { $0.key == "steps" })?.value else {
            throw FormatError(description: "\(url.lastPathComponent): no steps")
        }
        var frames: [[UInt8]] = []
        for stepRange in try raw.elements(ofArrayAt: stepsRange.lowerBound) {
            guard let message = try raw.members(ofObjectAt: stepRange.lowerBound).first(where: { $0.key == "message" })?.value
            else {
                throw FormatError(description: "\(url.lastPathComponent): a step has no message")
            }
            if raw.bytes[message.lowerBound] == UInt8(ascii: "\"") {
                frames.append(Array(try raw.string(at: message).utf8))
            } else {
                frames.append(Array(raw.bytes[message]))
            }
        }
        guard frames.count == file.steps.count else {
            throw FormatError(description: "\(url.lastPathComponent): steps and messages disagree")
        }
        name = file.name
        receivers = file.receivers ?? ["profile"]
        initial = file.initial ?? Initial()
        steps = file.steps
        self.frames = frames
        expected = file.expected
        expectedPostgres = file.expectedPostgres
    }
}

/// Finds the byte ranges of JSON values without decoding them, so that a message object
/// can be sent exactly as the vector file spells it.
struct RawJSON {
    let bytes: [UInt8]

    struct Malformed: Error {}

    func start() throws -> Int {
        var index = 0
        skipWhitespace(&index)
        guard index < bytes.count else { throw Malformed() }
        return index
    }

    private func skipWhitespace(_ index: inout Int) {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    /// The index just after the string starting at `start` (a `"`).
    private func stringEnd(_ start: Int) throws -> Int {
        var index = start + 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        throw Malformed()
    }

    /// The index just after the value starting at `start`.
    func valueEnd(_ start: Int) throws -> Int {
        guard start < bytes.count else { throw Malformed() }
        switch bytes[start] {
        case UInt8(ascii: "\""):
            return try stringEnd(start)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var index = start
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    index = try stringEnd(index)
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return index + 1 }
                default:
                    break
                }
                index += 1
            }
            throw Malformed()
        default:
            var index = start
            while index < bytes.count, !",}] \t\n\r".utf8.contains(bytes[index]) { index += 1 }
            return index
        }
    }

    /// The decoded string value in `range`.
    func string(at range: Range<Int>) throws -> String {
        guard let value = try JSONSerialization.jsonObject(with: Data(bytes[range]), options: .fragmentsAllowed) as? String
        else { throw Malformed() }
        return value
    }

    /// Keys and value ranges of the object starting at `start`.
    func members(ofObjectAt start: Int) throws -> [(key: String, value: Range<Int>)] {
        guard bytes[start] == UInt8(ascii: "{") else { throw Malformed() }
        var members: [(key: String, value: Range<Int>)] = []
        var index = start + 1
        while true {
            skipWhitespace(&index)
            guard index < bytes.count else { throw Malformed() }
            if bytes[index] == UInt8(ascii: "}") { return members }
            let keyEnd = try stringEnd(index)
            let key = try string(at: index..<keyEnd)
            index = keyEnd
            skipWhitespace(&index)
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw Malformed() }
            index += 1
            skipWhitespace(&index)
            let end = try valueEnd(index)
            members.append((key, index..<end))
            index = end
            skipWhitespace(&index)
            if index < bytes.count, bytes[index] == UInt8(ascii: ",") { index += 1 }
        }
    }

    /// Value ranges of the array starting at `start`.
    func elements(ofArrayAt start: Int) throws -> [Range<Int>] {
        guard bytes[start] == UInt8(ascii: "[") else { throw Malformed() }
        var elements: [Range<Int>] = []
        var index = start + 1
        while true {
            skipWhitespace(&index)
            guard index < bytes.count else { throw Malformed() }
            if bytes[index] == UInt8(ascii: "]") { return elements }
            let end = try valueEnd(index)
            elements.append(index..<end)
            index = end
            skipWhitespace(&index)
            if index < bytes.count, bytes[index] == UInt8(ascii: ",") { index += 1 }
        }
    }
}
