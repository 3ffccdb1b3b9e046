/// Library-wide facts and helpers: the libzmq version, its capabilities, CURVE keys and Z85.
///
/// Note: this enum shares the module's name, so write `ZeroMQ.version`, but refer to the module's types
/// unqualified (`Socket`, not `ZeroMQ.Socket`).
public enum ZeroMQ {
    /// A libzmq version (`zmq_version`).
    public struct Version: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// The major version, 4 for libzmq 4.x.
        public let major: Int
        /// The minor version.
        public let minor: Int
        /// The patch version.
        public let patch: Int

        /// Creates a version value, e.g. for comparisons.
        public init(major: Int, minor: Int, patch: Int) {
            self.major = major
            self.minor = minor
            self.patch = patch
        }

        /// Orders by major, minor, then patch.
        public static func < (lhs: Version, rhs: Version) -> Bool {
            (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
        }

        /// `major.minor.patch`.
        public var description: String { "\(self.major).\(self.minor).\(self.patch)" }
    }

    /// An optional libzmq feature that `zmq_has` can report.
    public struct Capability: Sendable, Hashable, CustomStringConvertible {
        /// The name passed to `zmq_has`, e.g. `curve`.
        public let name: String

        /// A capability by `zmq_has` name.
        public init(_ name: String) {
            self.name = name
        }

        /// The ipc:// transport.
        public static let ipc = Capability("ipc")
        /// The pgm:// transport.
        public static let pgm = Capability("pgm")
        /// The tipc:// transport.
        public static let tipc = Capability("tipc")
        /// The norm:// transport.
        public static let norm = Capability("norm")
        /// The CURVE security mechanism.
        public static let curve = Capability("curve")
        /// The GSSAPI security mechanism.
        public static let gssapi = Capability("gssapi")
        /// The draft API.
        public static let draft = Capability("draft")

        /// The `zmq_has` name.
        public var description: String { self.name }
    }

    /// The version of the libzmq loaded at run time.
    public static var version: Version {
        let (major, minor, patch) = CZMQ.version()
        return Version(major: major, minor: minor, patch: patch)
    }

    /// Whether libzmq was built with `capability` (`zmq_has`).
    public static func has(_ capability: Capability) -> Bool {
        CZMQ.has(capability.name)
    }

    /// Whether libzmq was built with the named capability (`zmq_has`), e.g. `"curve"`.
    public static func has(_ name: String) -> Bool {
        CZMQ.has(name)
    }

    /// Generates a CURVE key pair (`zmq_curve_keypair`); same as `CurveKeyPair.generate()`.
    public static func curveKeyPair() throws(ZeroMQError) -> CurveKeyPair {
        try CurveKeyPair.generate()
    }

    /// Z85-encodes bytes (`zmq_z85_encode`); the count must be a multiple of 4.
    public static func z85Encode(_ bytes: [UInt8]) throws(ZeroMQError) -> String {
        try CZMQ.z85Encode(bytes)
    }

    /// Decodes Z85 text (`zmq_z85_decode`); the length must be a multiple of 5.
    public static func z85Decode(_ text: String) throws(ZeroMQError) -> [UInt8] {
        try CZMQ.z85Decode(text)
    }
}
