import WorkerOperations

extension WorkerConfiguration {
    /// Throws when ``bind`` would be reachable from the network without CURVE and
    /// ``allowUnauthenticated`` is off. Connecting to a broker (``connect``) binds nothing.
    public func checkBindIsAuthenticated() throws(WorkerError) {
        guard connect == nil else { return }
        try BindPolicy.check(
            bind, role: "the worker's --bind", curve: curve != nil, allowUnauthenticated: allowUnauthenticated,
            curveOptions: "--curve-secret-key-file and --curve-allowed-clients",
            exposure: "without CURVE anyone who can connect could write profiles, and traffic would be plaintext")
    }
}
