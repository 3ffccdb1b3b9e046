/// The release of this build, printed by `signal-worker version` and logged at start-up.
public enum SignalWorkerVersion {
    /// Semantic version of the worker.
    public static let current = "0.1.0"
}
