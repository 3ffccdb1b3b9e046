/// The wire protocol version this build speaks (docs/PROTOCOL.md).
public enum ProtocolVersion {
    /// The only version understood: requests with another `v` get an `unsupported` reply.
    public static let current = 1
}
