/// The members of a JSON object that a reader needs, named before parsing by their path from
/// the root object (`["id"]`, `["instance", "pk"]`).
///
/// Parsing with a layout (``JSONMembers/init(parsing:layout:)``) puts each named member's value
/// in its own numbered slot and checks every other member as strictly as the rest of the text
/// without building it. A decoder that knows its fields thus pays neither a dictionary per
/// object (hashing every key, growing the table) nor the members it ignores; duplicate keys
/// still resolve the way a dictionary does: the last one wins.
public struct JSONMemberLayout: Sendable {
    /// One member a reader wants.
    public struct Member: Sendable, Hashable {
        /// Keys from the root object down to the member; at least one.
        public var path: [String]
        /// `false` to check the value without building it: its slot then holds only its shape
        /// (an empty object or array, an empty string, or the scalar itself), enough to tell its type.
        public var isBuilt: Bool

        /// Names one member.
        public init(_ path: [String], isBuilt: Bool = true) {
            precondition(!path.isEmpty, "a member needs at least one key")
            self.path = path
            self.isBuilt = isBuilt
        }
    }

    /// One object level: the keys wanted there and what to do with each.
    final class Level: Sendable {
        /// The slot of each key's value; `nil` for a key wanted only for the members below it.
        let slots: [Int?]
        /// Whether each key's value is built (see ``Member/isBuilt``).
        let isBuilt: [Bool]
        /// The level below each key, for keys whose own members are wanted.
        let children: [Level?]
        /// Every slot below each key: cleared when the key repeats, so the last one wins whole.
        let slotsBelow: [[Int]]
        /// The keys' bytes end to end, and where each key is in them (one buffer to look keys up in).
        private let keyBytes: [UInt8]
        private let keyRanges: [Range<Int>]

        init(keys: [[UInt8]], slots: [Int?], isBuilt: [Bool], children: [Level?]) {
            self.slots = slots
            self.isBuilt = isBuilt
            self.children = children
            self.slotsBelow = children.map { $0?.allSlots ?? [] }
            keyBytes = keys.flatMap { $0 }
            var ranges: [Range<Int>] = []
            var end = 0
            for key in keys {
                ranges.append(end..<(end + key.count))
                end += key.count
            }
            keyRanges = ranges
        }

        var allSlots: [Int] {
            zip(slots, slotsBelow).flatMap { slot, below in (slot.map { [$0] } ?? []) + below }
        }

        /// The index of the key whose UTF-8 bytes are `key`, if it is wanted here.
        ///
        /// Keys are a few bytes long: compared in place, byte by byte, once the length matches
        /// (a call to `memcmp` per candidate cost more than the comparison itself).
        func index(of key: UnsafeBufferPointer<UInt8>) -> Int? {
            keyBytes.withUnsafeBufferPointer { table in
                for (position, range) in keyRanges.enumerated() where range.count == key.count {
                    var offset = 0
                    while offset < key.count, table[range.lowerBound &+ offset] == key[offset] { offset &+= 1 }
                    if offset == key.count { return position }
                }
                return nil
            }
        }
    }

    /// The root object's level.
    let root: Level
    /// How many slots a parse fills: one per member, numbered in the order given.
    public let slotCount: Int

    /// A layout whose slot `i` holds the value of `members[i]`.
    ///
    /// A member with members of its own below it (`["instance"]` beside `["instance", "pk"]`) is
    /// not built when it is an object: its slot holds an empty object, and its members are in
    /// their own slots. When it is anything else, its slot holds the value and those below stay empty.
    public init(_ members: [Member]) {
        precondition(Set(members.map(\.path)).count == members.count, "each member is named once")
        root = Self.level(members.enumerated().map { (slot: $0.offset, member: $0.element) }, depth: 0)
        slotCount = members.count
    }

    private static func level(_ members: [(slot: Int, member: Member)], depth: Int) -> Level {
        var keys: [String] = []
        for entry in members where !keys.contains(entry.member.path[depth]) { keys.append(entry.member.path[depth]) }
        var slots: [Int?] = []
        var isBuilt: [Bool] = []
        var children: [Level?] = []
        for key in keys {
            let here = members.filter { $0.member.path[depth] == key }
            let own = here.first { $0.member.path.count == depth + 1 }
            let below = here.filter { $0.member.path.count > depth + 1 }
            slots.append(own?.slot)
            isBuilt.append(own?.member.isBuilt ?? true)
            children.append(below.isEmpty ? nil : level(below, depth: depth + 1))
        }
        return Level(keys: keys.map { Array($0.utf8) }, slots: slots, isBuilt: isBuilt, children: children)
    }
}

/// The values of a ``JSONMemberLayout``'s members in one JSON text, by slot; `nil` where the
/// member is absent.
public struct JSONMembers: Sendable, Hashable {
    /// One value per member of the layout, in its order.
    public var values: [JSONValue?]

    /// The value of the layout's member number `slot`.
    public subscript(slot: Int) -> JSONValue? { values[slot] }

    /// Parses one JSON text with the protocol's strict parser and keeps the layout's members;
    /// `nil` when the bytes are not JSON or not a JSON object.
    public init?(parsing bytes: [UInt8], layout: JSONMemberLayout) {
        guard case .members(let members)? = try? JSONParser.parse(bytes, layout: layout) else { return nil }
        self = members
    }

    init(values: [JSONValue?]) {
        self.values = values
    }
}
