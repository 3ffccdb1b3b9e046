import Foundation
import SignalProtocol
import Testing

/// The strict parser behind ``RequestDecoder``, exercised through `attrs`, which keeps values as parsed.
@Suite("Strict JSON parsing")
struct JSONParsingTests {
    private func attrs(_ json: String) throws -> JSONValue? {
        let frame = #"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","created":true,"instance":{"model":"m","pk":1},"attrs":{"x":"#
            + json + "}}"
        guard case .signal(let envelope) = try RequestDecoder().decode(Array(frame.utf8)) else { return nil }
        return envelope.attributes.value(at: ["x"])
    }

    private func isRejected(_ frame: [UInt8]) -> Bool {
        do {
            _ = try RequestDecoder().decode(frame)
            return false
        } catch {
            return error.error.code == .badRequest && error.error.message.contains("well-formed")
        }
    }

    @Test(
        "values parse to the right JSON type",
        arguments: [
            ("null", JSONValue.null), ("true", .bool(true)), ("false", .bool(false)), ("0", .integer(0)),
            ("-12", .integer(-12)), ("9223372036854775807", .integer(.max)), ("1.5", .double(1.5)),
            ("-2e3", .double(-2000)), ("1E-2", .double(0.01)), ("9223372036854775808", .double(9_223_372_036_854_775_808)),
            ("-9223372036854775808", .integer(.min)), ("-9223372036854775809", .double(-9_223_372_036_854_775_808)),
            ("-0", .integer(0)), ("1234567890123456789", .integer(1_234_567_890_123_456_789)),
            (#""a\"b\\c\/d\n\t\r\b\f""#, .string("a\"b\\c/d\n\t\r\u{8}\u{C}")), (#""\u00e9\u4e2d""#, .string("é中")),
            (#""\ud83d\ude00""#, .string("😀")), (#""naïve 😀""#, .string("naïve 😀")), ("[]", .array([])),
            ("[1, [2, {}], \"x\"]", .array([.integer(1), .array([.integer(2), .object([:])]), .string("x")])),
            (#"{"k": {"k2": [null]}}"#, .object(["k": .object(["k2": .array([.null])])])),
            (#"{"k": 1, "k": 2}"#, .object(["k": .integer(2)])), (" \n\t\r 7 \n", .integer(7)),
        ])
    func values(json: String, expected: JSONValue) throws {
        #expect(try attrs(json) == expected)
    }

    @Test(
        "malformed JSON is refused",
        arguments: [
            "{", "}", "[1,]", #"{"a":1,}"#, "01", "1.", ".5", "-", "1e", "+1", "NaN", "Infinity", "tru", "nul",
            #""unterminated"#, #""bad \x escape""#, #""\u12""#, #""\ud800""#, #""\udc00x""#, "{'a':1}", "// c\n{}",
            #"{"a" 1}"#, #"{1:2}"#, "[1 2]", "{} {}", "\u{FEFF}{}", "1e400",
        ])
    func malformed(json: String) {
        #expect(isRejected(Array(json.utf8)))
    }

    @Test("control characters and invalid UTF-8 inside strings are refused")
    func rawBytes() {
        #expect(isRejected(Array(#"{"id":"a"#.utf8) + [0x01] + Array(#""}"#.utf8)))
        #expect(isRejected(Array(#"{"id":"a"#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)))
        #expect(isRejected(Array(#"{"id":"\n"#.utf8) + [0xFF] + Array(#""}"#.utf8)))
        #expect(isRejected(Array(#"{"id":"a"#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8)))  // encoded surrogate
    }

    @Test("strings of every length up to 40 bytes, with a special byte at every position, read byte for byte")
    func specialBytesAtEveryPosition() throws {
        // Wherever a backslash, a control character or a non-ASCII byte stands in a string (first,
        // last, or in between), the string is read byte for byte and an error names its offset.
        let prefix = #"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","created":true,"instance":{"model":"m","pk":1,"fields":{"f":"#
        for length in 0...40 {
            for position in 0..<max(length, 1) {
                for special: [UInt8] in [[0x20], [0x21], [0x23], [0x5B], [0x5D], [0x7F], [0xC3, 0xA9], [0x5C, 0x6E], [0x01], [0x1F]] {
                    var text = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    if length > 0 { text.replaceSubrange(position...position, with: special) }
                    let quoted = [UInt8(ascii: "\"")] + text + [UInt8(ascii: "\"")]
                    // Once inside `fields` (checked, not built), once in `attrs` (built).
                    let frame = Array(prefix.utf8) + quoted + Array(#"}},"attrs":{"x":"#.utf8) + quoted + Array("}}".utf8)
                    let isControl = length > 0 && (special == [0x01] || special == [0x1F])
                    do throws(RequestDecodingError) {
                        guard case .signal(let envelope) = try RequestDecoder().decode(frame) else {
                            Issue.record("not a signal")
                            continue
                        }
                        var expected = text
                        if special == [0x5C, 0x6E], length > 0 { expected.replaceSubrange(position...(position + 1), with: [0x0A]) }
                        if isControl { Issue.record("length \(length), position \(position), \(special) accepted") }
                        #expect(envelope.attributes.value(at: ["x"]) == .string(String(decoding: expected, as: UTF8.self)), "length \(length), position \(position), \(special)")
                    } catch {
                        // The first control character is the one inside `fields`.
                        let offset = prefix.utf8.count + 1 + position
                        #expect(isControl, "length \(length), position \(position), \(special): \(error)")
                        #expect(error.error.message.hasSuffix("control character in a string at byte \(offset)"), "\(error)")
                    }
                }
            }
        }
    }

    @Test("objects of every size around the room reserved at their first member keep every member, the last of a repeated key winning")
    func objectSizes() throws {
        for count in 0...20 {
            let members = (0..<count).map { "\"k\($0)\": \($0)" }
            // A repeated first key after the others: the later value replaces the earlier one.
            let repeated = count > 0 ? [#""k0": "last""#] : []
            let parsed = try attrs("{" + (members + repeated).joined(separator: ", ") + "}")
            var expected: [String: JSONValue] = [:]
            for index in 0..<count { expected["k\(index)"] = .integer(Int64(index)) }
            if count > 0 { expected["k0"] = .string("last") }
            #expect(parsed == .object(expected), "\(count) members")
        }
    }

    @Test("nesting is bounded")
    func depth() throws {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(isRejected(Array(deep.utf8)))
        let fine = String(repeating: "[", count: 20) + String(repeating: "]", count: 20)
        #expect(try attrs(fine) != nil)
    }

    @Test("integral doubles are accepted where integers are expected")
    func integralDouble() throws {
        let request = try RequestDecoder().decode(
            Array(#"{"v":1.0,"id":"a","seq":3.0,"signal":"s","sender":"x","created":true,"instance":{"model":"m","pk":1}}"#.utf8))
        guard case .signal(let envelope) = request else {
            Issue.record("expected a signal")
            return
        }
        #expect(envelope.sequence == 3)
    }

    @Test("instance.fields is checked strictly though not kept; other 'fields' keys are kept")
    func skippedFields() throws {
        let prefix = #"{"v":1,"id":"a","signal":"s","sender":"x","created":true,"instance":{"model":"m","pk":1,"fields":"#
        for malformed in [#"{"a" 1}"#, #"{"a":1,}"#, #"[1 2]"#, #"{"a":tru}"#, "{\"a\":\"\u{01}\"}"] {
            #expect(isRejected(Array((prefix + malformed + "}}").utf8)), "fields \(malformed)")
        }
        let kept = try RequestDecoder().decode(
            Array((prefix + #"{"nested":{"deep":[1,{"x":null}]}}},"attrs":{"fields":{"k":"v"}}}"#).utf8))
        guard case .signal(let envelope) = kept else {
            Issue.record("expected a signal")
            return
        }
        #expect(envelope.attributes.value(at: ["fields"]) == .object(["k": .string("v")]))
        let notObject = prefix + #"[1]}}"#
        #expect(throws: RequestDecodingError.self) { try RequestDecoder().decode(Array(notObject.utf8)) }
    }

    @Test("a member layout keeps the named members, checks the rest strictly and builds none of it")
    func memberLayout() {
        let layout = JSONMemberLayout([.init(["id"]), .init(["instance"]), .init(["instance", "pk"]), .init(["instance", "fields"], isBuilt: false)])
        let prefix = #"{"id":"a","sender":"auth.user","instance":{"pk":7,"fields":"#
        let frame = Array((prefix + #"{"username":"ann","last_login":null}},"attrs":{"fields":1}}"#).utf8)
        #expect(
            JSONMembers(parsing: frame, layout: layout)?.values == [.string("a"), .object([:]), .integer(7), .object([:])])
        // An unwanted member is checked as strictly as a wanted one.
        for malformed in [#"{"a" 1}"#, #"{"a":1,}"#, "{\"a\":\"\u{01}\"}", #"["\x"]"#, #""\ud800""#] {
            #expect(JSONMembers(parsing: Array((prefix + malformed + "}}").utf8), layout: layout) == nil, "fields \(malformed)")
            let unwanted = #"{"id":"a","other":"# + malformed + "}"
            #expect(JSONMembers(parsing: Array(unwanted.utf8), layout: layout) == nil, "other \(malformed)")
        }
        // Not an object at the top: no members.
        #expect(JSONMembers(parsing: Array("[1]".utf8), layout: layout) == nil)
    }

    @Test("member keys match after unescaping; a repeated member is replaced whole, the last one wins")
    func memberKeysAndRepeats() {
        let layout = JSONMemberLayout([.init(["id"]), .init(["instance"]), .init(["instance", "pk"]), .init(["instance", "model"])])
        let escaped = #"{"\u0069d":"x","instance":{"p\u006b":1,"model":"m"}}"#
        #expect(JSONMembers(parsing: Array(escaped.utf8), layout: layout)?.values == [.string("x"), .object([:]), .integer(1), .string("m")])
        // The second `instance` has no model: the first one's does not survive it.
        let repeated = #"{"id":"a","instance":{"pk":1,"model":"m"},"id":"b","instance":{"pk":2}}"#
        #expect(JSONMembers(parsing: Array(repeated.utf8), layout: layout)?.values == [.string("b"), .object([:]), .integer(2), nil])
        // A member that is not an object keeps its value; the members below it stay empty.
        let scalar = #"{"instance":{"pk":1},"instance":"flat"}"#
        #expect(JSONMembers(parsing: Array(scalar.utf8), layout: layout)?.values == [nil, .string("flat"), nil, nil])
        // The empty key is a key like any other.
        let empty = JSONMemberLayout([.init([""]), .init(["id"])])
        #expect(JSONMembers(parsing: Array(#"{"id":1,"":2}"#.utf8), layout: empty)?.values == [.integer(2), .integer(1)])
        // Keys that only start like a wanted one are not it.
        let near = #"{"i":1,"idx":2,"instance":{"pkk":3,"p":4}}"#
        #expect(JSONMembers(parsing: Array(near.utf8), layout: layout)?.values == [nil, .object([:]), nil, nil])
    }
}
