/// Makes fuzz inputs from seed frames: valid requests bent in the ways hostile or broken
/// clients bend them (truncation, flipped and inserted bytes, splices, hostile values in place
/// of real ones, deep nesting, invalid UTF-8, oversized frames, random JSON).
///
/// Deterministic for a given seed, so a failure is reproducible from the seed and input number.
public struct InputMutator: Sendable {
    /// The frames inputs are made from.
    public var seeds: [[UInt8]]
    /// The decoder's frame limit: some inputs are made just over it.
    public var maxFrameBytes: Int

    /// Creates a mutator; `seeds` must not be empty.
    public init(seeds: [[UInt8]], maxFrameBytes: Int = 64 * 1024) {
        precondition(!seeds.isEmpty, "the mutator needs at least one seed frame")
        self.seeds = seeds
        self.maxFrameBytes = maxFrameBytes
    }

    /// Values that have broken JSON decoders before.
    static let hostileValues: [String] = [
        "1e999999", "-1e-999999", "123456789012345678901234567890", "-0", "0.0000000000000000000001",
        "9223372036854775808", "-9223372036854775809", "NaN", "Infinity", "true", "false", "null", "{}", "[]",
        #""\ud800""#, #""\udfff\ud800""#, #""\u0000""#, #""\uFEFF""#, #""""#, #""2021-02-29""#, #""٢٠٢٠-01-02""#,
        #""0000-00-00""#, #""9999-99-99T99:99""#, "\"" + String(repeating: "x", count: 300) + "\"",
        String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
        String(repeating: "{\"a\":", count: 300) + "1" + String(repeating: "}", count: 300),
    ]

    /// Keys of the protocol, for random objects that look almost right.
    static let keys = [
        "v", "id", "type", "seq", "signal", "sender", "db", "created", "raw", "update_fields", "sent_at", "instance",
        "model", "pk", "fields", "attrs", "_profile_data", "profile_type", "sex", "birthdate",
    ]

    /// Input number `index` of the run seeded with `seed`.
    public func input(_ index: Int, seed: UInt64) -> [UInt8] {
        var random = SplitMix64(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        let base = seeds[random.below(seeds.count)]
        switch random.below(11) {
        case 0: return base
        case 1: return Array(base.prefix(random.below(base.count + 1)))
        case 2: return flipBytes(base, &random)
        case 3: return insertBytes(base, &random)
        case 4: return splice(base, seeds[random.below(seeds.count)], &random)
        case 5, 6: return replaceValue(base, &random)
        case 7: return invalidUTF8(base, &random)
        case 8: return Array(randomJSON(&random, depth: 0).utf8)
        case 9: return oversized(base, &random)
        default: return replaceValue(flipBytes(base, &random), &random)
        }
    }

    private func flipBytes(_ base: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        guard !base.isEmpty else { return [UInt8(truncatingIfNeeded: random.next())] }
        var out = base
        for _ in 0...random.below(8) { out[random.below(out.count)] = UInt8(truncatingIfNeeded: random.next()) }
        return out
    }

    private func insertBytes(_ base: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var out = base
        let interesting: [UInt8] = [0x00, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x80, 0xC0, 0xFF, 0x0A]
        for _ in 0...random.below(4) {
            let position = random.below(out.count + 1)
            out.insert(interesting[random.below(interesting.count)], at: position)
        }
        return out
    }

    private func splice(_ a: [UInt8], _ b: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        Array(a.prefix(random.below(a.count + 1))) + Array(b.suffix(random.below(b.count + 1)))
    }

    /// Replaces the value after a random `":"` with a hostile value.
    private func replaceValue(_ base: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        let colons = base.indices.filter { base[$0] == UInt8(ascii: ":") }
        guard let colon = colons.isEmpty ? nil : colons[random.below(colons.count)] else { return base }
        var end = colon + 1
        var depth = 0
        var inString = false
        // Skip one JSON value (roughly: good enough to hit the real decoder with real shapes).
        while end < base.count {
            let byte = base[end]
            if inString {
                if byte == UInt8(ascii: "\\") { end += 1 } else if byte == UInt8(ascii: "\"") { inString = false }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                depth += 1
            } else if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
                if depth == 0 { break }
                depth -= 1
            } else if byte == UInt8(ascii: ","), depth == 0 {
                break
            }
            end += 1
        }
        let value = Self.hostileValues[random.below(Self.hostileValues.count)]
        return Array(base[...colon]) + Array(value.utf8) + Array(base[min(end, base.count)...])
    }

    private func invalidUTF8(_ base: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        let sequences: [[UInt8]] = [[0xC3, 0x28], [0xE2, 0x82], [0xF0, 0x28, 0x8C, 0x28], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xFF], [0xF8, 0x88, 0x80, 0x80, 0x80]]
        var out = base
        let position = random.below(out.count + 1)
        out.insert(contentsOf: sequences[random.below(sequences.count)], at: position)
        return out
    }

    private func oversized(_ base: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        let target = maxFrameBytes - 2 + random.below(5)
        guard base.count > 1, target > base.count else { return base }
        // A long string value inside an otherwise valid request.
        let padding = #", "padding": ""# + String(repeating: "x", count: max(0, target - base.count - 16)) + "\""
        return Array(base.dropLast()) + Array(padding.utf8) + [UInt8(ascii: "}")]
    }

    private func randomJSON(_ random: inout SplitMix64, depth: Int) -> String {
        let choice = depth > 3 ? random.below(4) : random.below(7)
        switch choice {
        case 0: return Self.hostileValues[random.below(Self.hostileValues.count)]
        case 1: return String(Int64(bitPattern: random.next()) >> Int64(random.below(64)))
        case 2: return "\"" + Self.keys[random.below(Self.keys.count)] + "\""
        case 3: return ["true", "false", "null", "1", "0", "\"1990-01-02\""][random.below(6)]
        case 4:
            return "[" + (0..<random.below(4)).map { _ in randomJSON(&random, depth: depth + 1) }.joined(separator: ",") + "]"
        default:
            var members: [String] = []
            if depth == 0, random.below(2) == 0 { members = [#""v": 1"#, #""id": "fuzz""#] }
            for _ in 0..<random.below(6) {
                members.append("\"\(Self.keys[random.below(Self.keys.count)])\": \(randomJSON(&random, depth: depth + 1))")
            }
            return "{" + members.joined(separator: ", ") + "}"
        }
    }
}

/// SplitMix64: a small, fast, seedable generator (Steele, Lea, Flood 2014).
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound` (`bound` > 0).
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }
}
