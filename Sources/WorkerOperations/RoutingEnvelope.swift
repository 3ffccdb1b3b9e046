/// The routing frames in front of a request's body, as a bound ROUTER reads them (and as a
/// worker's DEALER reads them behind the broker): the client's routing id, then the empty
/// delimiter a REQ client adds. A reply goes back with the same envelope.
///
/// docs/PROTOCOL.md, "Transport".
public enum RoutingEnvelope {
    /// How many leading frames of `frames` are the envelope: 2 after a REQ client's delimiter, else 1.
    public static func count(in frames: [[UInt8]]) -> Int {
        frames.count >= 3 && frames[1].isEmpty ? 2 : 1
    }
}
