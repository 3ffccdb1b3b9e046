import WorkerOperations

extension BrokerConfiguration {
    /// Throws when the broker's `role` socket ("frontend" or "backend") would be reachable from the
    /// network without CURVE and ``allowUnauthenticated`` is off.
    public func checkBindIsAuthenticated(role: String) throws(WorkerError) {
        let frontend = role == "frontend"
        try BindPolicy.check(
            frontend ? self.frontend : backend, role: "the broker's --\(role)",
            curve: (frontend ? frontendCurve : backendCurve) != nil, allowUnauthenticated: allowUnauthenticated,
            curveOptions: frontend
                ? "--frontend-curve-secret-key-file and --frontend-curve-allowed-clients"
                : "--backend-curve-secret-key-file and --backend-curve-allowed-workers",
            exposure: frontend
                ? "without authentication anyone who can connect could send requests that workers apply"
                : "without authentication anyone who can connect could pose as a worker and take requests")
    }

    /// ``checkBindIsAuthenticated(role:)`` for both sockets.
    public func checkBindsAreAuthenticated() throws(WorkerError) {
        try checkBindIsAuthenticated(role: "frontend")
        try checkBindIsAuthenticated(role: "backend")
    }
}
