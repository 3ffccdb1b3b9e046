/// A strict RFC 8259 JSON parser for request frames.
///
/// Why not `JSONDecoder`: measured in `Benchmarks/ProtocolBenchmark`, decoding a v1
/// envelope through `Codable` while keeping "absent" apart from "null" in free-form
/// attributes ran at ~23,000 requests/s per core, a quarter of the worker's budget.
/// This parser reads the bytes in one pass, either into a ``JSONValue`` tree or, given a
/// ``JSONMemberLayout``, into the slots of the members a decoder named (the rest checked,
/// not built); the envelope is then validated field by field (``RequestDecoder``).
///
/// Strict: no comments, no trailing commas, no NaN/Infinity, no leading zeros, no
/// control characters or invalid UTF-8 in strings, nothing after the value but
/// whitespace, nesting at most ``maxDepth`` deep. Duplicate object keys: the last one
/// wins (as Python's `json` does).
struct JSONParser {
    /// Why the bytes are not JSON, with the byte offset.
    struct Failure: Error, Sendable, Hashable {
        var reason: String
        var offset: Int
    }

    /// Deepest nesting accepted (arrays and objects).
    static let maxDepth = 64

    /// Members a built object has room for once it has one (one table of 8 buckets); a larger
    /// object grows as usual. An empty object (`{}`) allocates nothing.
    static let objectCapacityAtFirstMember = 6

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0

    private init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Parses one JSON text.
    static func parse(_ input: [UInt8]) throws(Failure) -> JSONValue {
        try parseWhole(input) { parser throws(Failure) in try parser.parseValue() }
    }

    /// What a parse with a layout found.
    enum LayoutResult {
        /// The text is an object: the layout's members.
        case members(JSONMembers)
        /// The text is some other value, built whole.
        case other(JSONValue)
    }

    /// Parses one JSON text, keeping only `layout`'s members when it is an object.
    static func parse(_ input: [UInt8], layout: JSONMemberLayout) throws(Failure) -> LayoutResult {
        try parseWhole(input) { parser throws(Failure) in
            guard parser.current == UInt8(ascii: "{") else { return .other(try parser.parseValue()) }
            var slots = [JSONValue?](repeating: nil, count: layout.slotCount)
            try parser.parseMembers(of: layout.root, into: &slots)
            return .members(JSONMembers(values: slots))
        }
    }

    /// Runs `parseValue` over `input`: whitespace around the one value, nothing after it.
    private static func parseWhole<T>(_ input: [UInt8], _ parseValue: (inout JSONParser) throws(Failure) -> T)
        throws(Failure) -> T
    {
        let result: Result<T, Failure> = input.withUnsafeBufferPointer { buffer in
            var parser = JSONParser(bytes: buffer)
            return Result { () throws(Failure) -> T in
                parser.skipWhitespace()
                let value = try parseValue(&parser)
                parser.skipWhitespace()
                guard parser.index == buffer.count else { throw parser.failure("unexpected data after the JSON value") }
                return value
            }
        }
        return try result.get()
    }

    private func failure(_ reason: String) -> Failure {
        Failure(reason: reason, offset: index)
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    /// Parses one value; with `build: false` it is checked as strictly but comes back as its
    /// shape only (containers and strings empty).
    private mutating func parseValue(build: Bool = true) throws(Failure) -> JSONValue {
        guard let byte = current else { throw failure("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(build: build)
        case UInt8(ascii: "["): return try parseArray(build: build)
        case UInt8(ascii: "\""):
            guard build else {
                try skipString()
                return .string("")
            }
            return .string(try parseString())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw failure("unexpected character")
        }
    }

    private mutating func expect(_ literal: StaticString) throws(Failure) {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - index >= count else { throw failure("invalid literal") }
        let matches = literal.withUTF8Buffer { expected in
            (0..<count).allSatisfy { bytes[index + $0] == expected[$0] }
        }
        guard matches else { throw failure("invalid literal") }
        index += count
    }

    private mutating func enterContainer() throws(Failure) {
        depth += 1
        guard depth <= Self.maxDepth else { throw failure("nesting deeper than \(Self.maxDepth)") }
        index += 1
        skipWhitespace()
    }

    private mutating func parseObject(build: Bool) throws(Failure) -> JSONValue {
        guard build else {
            try forEachMember { parser throws(Failure) in try parser.skipString() } value: { parser, _ throws(Failure) in
                _ = try parser.parseValue(build: false)
            }
            return .object([:])
        }
        var object: [String: JSONValue] = [:]
        try forEachMember { parser throws(Failure) in try parser.parseString() } value: { parser, key throws(Failure) in
            // Room for a small object's members at its first one: growing from empty reallocates
            // and rehashes at the 2nd and 4th member (the profile's `attrs` has three or four).
            // (`init(minimumCapacity:)`: 6 % of a decode's samples under `perf`, `reserveCapacity` 8.5 %.)
            if object.isEmpty { object = Dictionary(minimumCapacity: Self.objectCapacityAtFirstMember) }
            object[key] = try parser.parseValue()
        }
        return .object(object)
    }

    /// Parses an object keeping the members `level` wants in `slots` (see ``JSONMemberLayout``).
    private mutating func parseMembers(of level: JSONMemberLayout.Level, into slots: inout [JSONValue?]) throws(Failure) {
        try forEachMember { parser throws(Failure) in try parser.wantedKey(in: level) } value: { parser, wanted throws(Failure) in
            guard let wanted else {
                _ = try parser.parseValue(build: false)
                return
            }
            for slot in level.slotsBelow[wanted] { slots[slot] = nil }
            let value: JSONValue
            if let below = level.children[wanted], parser.current == UInt8(ascii: "{") {
                try parser.parseMembers(of: below, into: &slots)
                value = .object([:])
            } else {
                value = try parser.parseValue(build: level.isBuilt[wanted])
            }
            if let slot = level.slots[wanted] { slots[slot] = value }
        }
    }

    /// Walks one object from its `{`: for each member, `key` consumes the key string (the parser is
    /// at its opening quote) and `value` consumes the value, given what `key` returned.
    private mutating func forEachMember<Key>(
        key readKey: (inout JSONParser) throws(Failure) -> Key,
        value readValue: (inout JSONParser, Key) throws(Failure) -> Void
    ) throws(Failure) {
        try enterContainer()
        if current == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return
        }
        while true {
            guard current == UInt8(ascii: "\"") else { throw failure("expected a string key") }
            let key = try readKey(&self)
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw failure("expected ':' after an object key") }
            index += 1
            skipWhitespace()
            try readValue(&self, key)
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                index += 1
                skipWhitespace()
            case UInt8(ascii: "}"):
                index += 1
                depth -= 1
                return
            default:
                throw failure("expected ',' or '}' in an object")
            }
        }
    }

    /// Consumes a key string; returns its index among `level`'s keys, `nil` when it is not wanted.
    private mutating func wantedKey(in level: JSONMemberLayout.Level) throws(Failure) -> Int? {
        if let plain = try scanPlainString() { return level.index(of: UnsafeBufferPointer(rebasing: bytes[plain])) }
        let key = Array(try parseDecodedString().utf8)
        return key.withUnsafeBufferPointer { level.index(of: $0) }
    }

    /// Consumes a string that is plain ASCII without escapes (nothing to decode or validate) and
    /// returns the range of its bytes; for any other string returns `nil`, still at its opening quote.
    private mutating func scanPlainString() throws(Failure) -> Range<Int>? {
        let quote = index
        index += 1
        // Eight bytes at a time up to the first byte that ends the string or needs a closer look;
        // the byte loop below then tells which it is (and finishes what is left near the end).
        if let base = bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            while index &+ 8 <= bytes.count {
                let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                let stops = Self.plainRunStops(word)
                if stops == 0 {
                    index &+= 8
                } else {
                    index &+= stops.trailingZeroBitCount &>> 3
                    break
                }
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return quote + 1..<index - 1
            }
            if byte == UInt8(ascii: "\\") || byte >= 0x80 {
                index = quote
                return nil
            }
            guard byte >= 0x20 else { throw failure("control character in a string") }
            index += 1
        }
        throw failure("unterminated string")
    }

    /// The high bit of each byte of `word` (first byte lowest) that may end a plain string: a
    /// quote, a backslash, a control character, a byte that is not ASCII.
    ///
    /// Bit tricks for "a zero byte" and "a byte below 0x20". A borrow can mark a byte after a
    /// true one, never before it and never miss one, so the lowest mark is the first such byte.
    @inline(__always)
    private static func plainRunStops(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        func zeroBytes(_ value: UInt64) -> UInt64 { (value &- ones) & ~value & highBits }
        let nonASCII = word & highBits
        let control = (word &- (ones &* 0x20)) & ~word & highBits
        let quote = zeroBytes(word ^ (ones &* UInt64(UInt8(ascii: "\""))))
        let backslash = zeroBytes(word ^ (ones &* UInt64(UInt8(ascii: "\\"))))
        return nonASCII | control | quote | backslash
    }

    /// Checks a string without building it (unless it needs decoding to be checked).
    private mutating func skipString() throws(Failure) {
        if try scanPlainString() == nil { _ = try parseDecodedString() }
    }

    private mutating func parseArray(build: Bool) throws(Failure) -> JSONValue {
        try enterContainer()
        var array: [JSONValue] = []
        if current == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(array)
        }
        while true {
            let value = try parseValue(build: build)
            if build { array.append(value) }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                index += 1
                skipWhitespace()
            case UInt8(ascii: "]"):
                index += 1
                depth -= 1
                return .array(array)
            default:
                throw failure("expected ',' or ']' in an array")
            }
        }
    }

    private mutating func parseString() throws(Failure) -> String {
        if let plain = try scanPlainString() { return String(decoding: UnsafeBufferPointer(rebasing: bytes[plain]), as: UTF8.self) }
        return try parseDecodedString()
    }

    /// A string that ``scanPlainString()`` refused (it has escapes or non-ASCII bytes), from its opening quote.
    private mutating func parseDecodedString() throws(Failure) -> String {
        index += 1  // opening quote
        let start = index
        // Not plain ASCII: without escapes, validate the UTF-8 once.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                guard let string = String(validating: slice, as: UTF8.self) else {
                    throw Failure(reason: "invalid UTF-8 in a string", offset: start)
                }
                return string
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw failure("control character in a string") }
            index += 1
        }
        // Slow path: unescape into a byte buffer.
        var utf8 = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while true {
            guard let byte = current else { throw failure("unterminated string") }
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let string = String(validating: utf8, as: UTF8.self) else {
                    throw Failure(reason: "invalid UTF-8 in a string", offset: start)
                }
                return string
            case UInt8(ascii: "\\"):
                guard let escape = current else { throw failure("unterminated escape") }
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"): utf8.append(contentsOf: try parseUnicodeEscape())
                default: throw failure("invalid escape")
                }
            default:
                guard byte >= 0x20 else { throw failure("control character in a string") }
                utf8.append(byte)
            }
        }
    }

    /// `\uXXXX` (the `\u` already consumed), joining surrogate pairs; returns UTF-8 bytes.
    private mutating func parseUnicodeEscape() throws(Failure) -> [UInt8] {
        var scalarValue = try parseHex4()
        if (0xD800...0xDBFF).contains(scalarValue) {
            guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else { throw failure("unpaired surrogate in \\u escape") }
            index += 2
            let low = try parseHex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw failure("unpaired surrogate in \\u escape") }
            scalarValue = 0x10000 + ((scalarValue - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalarValue) {
            throw failure("unpaired surrogate in \\u escape")
        }
        guard let scalar = Unicode.Scalar(scalarValue) else { throw failure("invalid \\u escape") }
        return Array(String(Character(scalar)).utf8)
    }

    private mutating func parseHex4() throws(Failure) -> UInt32 {
        guard bytes.count - index >= 4 else { throw failure("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("invalid hex digit in \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws(Failure) -> JSONValue {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, first.isDigit else { throw failure("invalid number") }
        if first == UInt8(ascii: "0") {
            index += 1
            if let next = current, next.isDigit { throw failure("leading zero in a number") }
        } else {
            while let byte = current, byte.isDigit { index += 1 }
        }
        var isInteger = true
        if current == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard let byte = current, byte.isDigit else { throw failure("invalid number") }
            while let byte = current, byte.isDigit { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let byte = current, byte.isDigit else { throw failure("invalid number") }
            while let byte = current, byte.isDigit { index += 1 }
        }
        if isInteger, let integer = Self.integer(UnsafeBufferPointer(rebasing: bytes[start..<index])) {
            return .integer(integer)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let double = Double(text), double.isFinite else { throw failure("number out of range") }
        return .double(double)
    }
}

extension JSONParser {
    /// The value of an integer's text already checked by ``parseNumber()`` (an optional minus,
    /// then digits), read in place; `nil` when it does not fit in an `Int64` (it is then a double).
    fileprivate static func integer(_ text: UnsafeBufferPointer<UInt8>) -> Int64? {
        let negative = text.first == UInt8(ascii: "-")
        var value: Int64 = 0
        for byte in text.dropFirst(negative ? 1 : 0) {
            // Accumulated as a negative number: Int64.min has no positive counterpart.
            let (shifted, overflowTimes) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowMinus) = shifted.subtractingReportingOverflow(Int64(byte &- UInt8(ascii: "0")))
            guard !overflowTimes, !overflowMinus else { return nil }
            value = next
        }
        if negative { return value }
        return value == .min ? nil : -value
    }
}

extension UInt8 {
    fileprivate var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
}
