/// A 32-byte CURVE key, created from raw bytes or 40-character Z85 text.
///
/// `description` never shows the key (it may be a secret key); read `z85` or `bytes` explicitly.
public struct CurveKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The length of a raw CURVE key.
    public static let byteCount = 32
    /// The length of a Z85-encoded CURVE key.
    public static let z85Count = 40

    /// The 32 raw key bytes.
    public let bytes: [UInt8]

    /// Wraps 32 raw key bytes; throws `.invalidArgument` for any other length.
    public init(bytes: [UInt8]) throws(ZeroMQError) {
        guard bytes.count == Self.byteCount else {
            throw CZMQ.invalidArgument("CurveKey(bytes:)", "\(bytes.count) bytes, expected \(Self.byteCount)")
        }
        self.bytes = bytes
    }

    /// Decodes 40 characters of Z85 text; throws `.invalidArgument` for any other length or invalid text.
    public init(z85: String) throws(ZeroMQError) {
        guard z85.utf8.count == Self.z85Count else {
            throw CZMQ.invalidArgument("CurveKey(z85:)", "\(z85.utf8.count) characters, expected \(Self.z85Count)")
        }
        self.bytes = try CZMQ.z85Decode(z85)
    }

    init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The key as 40 characters of Z85 text.
    public var z85: String {
        // 32 bytes is a multiple of 4, so encoding cannot fail.
        (try? CZMQ.z85Encode(self.bytes)) ?? ""
    }

    /// A redacted placeholder: keys are never printed.
    public var description: String { "CurveKey(<redacted>)" }

    /// A redacted placeholder: keys are never printed.
    public var debugDescription: String { "CurveKey(<redacted>)" }
}

/// A CURVE public/secret key pair.
public struct CurveKeyPair: Sendable, Hashable {
    /// The public key, shared with peers.
    public let publicKey: CurveKey
    /// The secret key, kept private.
    public let secretKey: CurveKey

    /// Pairs two existing keys (not verified to match).
    public init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Derives the public key from a secret key (`zmq_curve_public`).
    public init(secretKey: CurveKey) throws(ZeroMQError) {
        let publicKey = try CZMQ.curvePublicKey(forSecretKey: secretKey.z85)
        self.publicKey = try CurveKey(z85: publicKey)
        self.secretKey = secretKey
    }

    /// Generates a new key pair (`zmq_curve_keypair`); throws `.notSupported` without CURVE support.
    public static func generate() throws(ZeroMQError) -> CurveKeyPair {
        let (publicKey, secretKey) = try CZMQ.curveKeyPair()
        return CurveKeyPair(publicKey: try CurveKey(z85: publicKey), secretKey: try CurveKey(z85: secretKey))
    }
}
