import ZeroMQ

/// A CURVE server's keys and the clients it admits (`--curve-secret-key-file`,
/// `--curve-allowed-clients`); see ``CurveKeyFiles`` for the files.
public struct CurveServerSecurity: Sendable, Hashable {
    /// The worker's key pair; clients need its public key.
    public var serverKeys: CurveKeyPair
    /// The client public keys admitted, by name (the key file's name, for logs).
    public var allowedClients: [String: CurveKey]
    /// TEST ONLY (fault injection, `SIGNAL_WORKER_TEST_ONLY_ZAP_FAULT_AT_REQUEST`): the authentication
    /// handler fails when it receives this authentication request (1-based), so tests can see the
    /// worker stop rather than admit clients unchecked. `nil` in production.
    public var testOnlyHandlerFaultAtRequest: Int?

    /// Creates the settings.
    public init(serverKeys: CurveKeyPair, allowedClients: [String: CurveKey]) {
        self.serverKeys = serverKeys
        self.allowedClients = allowedClients
    }

    /// Reads the worker's secret key file and the allowed clients' `*.pub` files.
    public static func load(secretKeyFile: String, allowedClientsDirectory: String) throws(WorkerError) -> Self {
        Self(
            serverKeys: try CurveKeyFiles.readKeyPair(secretKeyFile: secretKeyFile),
            allowedClients: try CurveKeyFiles.readAllowedClients(directory: allowedClientsDirectory))
    }
}
