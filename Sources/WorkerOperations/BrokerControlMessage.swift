import SignalProtocol

/// The control messages a worker sends to the broker's backend (docs/PROTOCOL.md, "Broker and
/// several workers"): one JSON frame, with no routing frames before it, so the broker tells them
/// from replies (which carry the client's routing frames) by their frame count.
public enum BrokerControlMessage: String, Sendable, Hashable, CaseIterable {
    /// "I am here and take requests": sent on connect and every heartbeat interval.
    case workerReady = "worker_ready"
    /// "Send me nothing more": sent once when the worker starts its graceful shutdown.
    case workerLeaving = "worker_leaving"

    /// The frame on the wire, e.g. `{"v":1,"type":"worker_ready"}`.
    public var frame: [UInt8] { Array(#"{"v":\#(ProtocolVersion.current),"type":"\#(rawValue)"}"#.utf8) }

    /// Reads a control frame; `nil` when it is not one of ours (wrong JSON, version or type).
    public init?(frame: [UInt8]) {
        guard case .object(let object)? = JSONValue(parsing: frame),
            case .integer(let version)? = object["v"], version == Int64(ProtocolVersion.current),
            case .string(let type)? = object["type"]
        else { return nil }
        self.init(rawValue: type)
    }
}
