import ZeroMQ

/// Facts about the runtime for `version` and the start-up log line.
public enum RuntimeInfo {
    /// `libzmq 4.3.4, curve: yes`.
    public static var zeroMQDescription: String {
        "libzmq \(ZeroMQ.version), curve: \(ZeroMQ.has(.curve) ? "yes" : "no")"
    }
}
