/// The paths under a request's `attrs` that a decoder builds, each in its own slot
/// (``RequestDecoder/init(maxFrameBytes:attributes:)``); the other attributes are checked as
/// strictly but not built.
///
/// Every prefix of a path is a path too (`["_profile_data"]` for `["_profile_data", "sex"]`), so
/// a reader can always tell what the object above a member was (absent, an object, or another
/// type).
public struct AttributeLayout: Sendable, Hashable {
    /// The paths, each once, in the order first named, every prefix before its longer paths.
    public let paths: [[String]]

    /// A layout of `paths` and their prefixes. Empty paths are ignored.
    public init(_ paths: [[String]]) {
        var unique: [[String]] = []
        for path in paths {
            for last in path.indices {
                let prefix = Array(path[...last])
                if !unique.contains(prefix) { unique.append(prefix) }
            }
        }
        self.paths = unique
    }

    /// The slot of `path`, if the layout has it.
    ///
    /// A linear scan: a layout holds a few paths of a few short keys, and comparing those
    /// (the last key first: it is where paths under one object differ) costs less than hashing
    /// the path once.
    func index(of path: [String]) -> Int? {
        guard let last = path.last else { return nil }
        for (index, candidate) in paths.enumerated() where candidate.count == path.count && candidate.last == last {
            if candidate == path { return index }
        }
        return nil
    }
}

/// A request's `attrs`: the instance attributes that are not model fields (`_profile_data`),
/// read by path.
///
/// Decoded with an ``AttributeLayout``, only the layout's paths are kept, each in its own slot:
/// an object with paths below it then reads as an empty object (it tells its type; its members
/// are read by their own paths), and a path outside the layout reads as absent: a receiver must
/// declare every path it reads (`PostSaveReceiver.attributes`; `RequestFuzzer` compares the two
/// decoders for the shipped receivers). Made from a dictionary (``init(_:)``, or decoded
/// without a layout) every path can be read, and objects come whole.
public struct SignalAttributes: Sendable, Hashable {
    private enum Storage: Sendable {
        /// Every attribute, built.
        case all([String: JSONValue])
        /// The layout's paths: path `i` is in `values[offset + i]`.
        case selected(AttributeLayout, values: [JSONValue?], offset: Int)
    }

    private let storage: Storage

    /// Attributes as sent (`[:]` when the request had none).
    public init(_ attrs: [String: JSONValue] = [:]) {
        storage = .all(attrs)
    }

    /// The layout's paths, path `i` in `values[offset + i]` (the decoder's slots, shared).
    init(layout: AttributeLayout, values: [JSONValue?], offset: Int) {
        storage = .selected(layout, values: values, offset: offset)
    }

    /// The value at `path` (keys from `attrs` down), `nil` when absent (or when an object on
    /// the way is absent or not an object).
    public func value(at path: [String]) -> JSONValue? {
        switch storage {
        case .all(let attrs):
            guard let first = path.first, var value = attrs[first] else { return nil }
            for key in path.dropFirst() {
                guard case .object(let object) = value, let member = object[key] else { return nil }
                value = member
            }
            return value
        case .selected(let layout, let values, let offset):
            // A path outside the layout was not kept: it reads as absent.
            guard let index = layout.index(of: path) else { return nil }
            return values[offset + index]
        }
    }

    /// The layout's values, in its order (what equality compares for selected attributes).
    private var selectedValues: ArraySlice<JSONValue?>? {
        guard case .selected(let layout, let values, let offset) = storage else { return nil }
        return values[offset..<(offset + layout.paths.count)]
    }

    public static func == (left: SignalAttributes, right: SignalAttributes) -> Bool {
        switch (left.storage, right.storage) {
        case (.all(let one), .all(let other)): one == other
        case (.selected(let one, _, _), .selected(let other, _, _)): one == other && left.selectedValues == right.selectedValues
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch storage {
        case .all(let attrs):
            hasher.combine(attrs)
        case .selected(let layout, _, _):
            hasher.combine(layout)
            for value in selectedValues ?? [] { hasher.combine(value) }
        }
    }

    /// The whole `attrs` object, when the attributes were kept whole (no layout); `nil` otherwise.
    public var all: [String: JSONValue]? {
        if case .all(let attrs) = storage { return attrs }
        return nil
    }
}
