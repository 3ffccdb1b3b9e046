import WorkerOperations
import Logging
import ServiceLifecycle

/// `signal-worker broker` as a `Service`: a ROUTER for clients, a ROUTER for workers, and one
/// thread forwarding between them with per-user sticky routing (``BrokerForwarder``).
///
/// Graceful shutdown (SIGTERM/SIGINT through `ServiceGroup`) stops the thread within about 100 ms;
/// the sockets close with the configured LINGER. The broker keeps no state worth saving: a request
/// or reply in flight when it stops is lost, the client resends it with the same id, and the
/// worker's dedupe makes the resend harmless.
public final class BrokerService: Service, Sendable {
    private let configuration: BrokerConfiguration
    private let logger: Logger
    private let onListening: @Sendable (BrokerEndpoints) -> Void

    /// Creates the service; `onListening` receives the bound endpoints (with `*` ports resolved).
    public init(
        configuration: BrokerConfiguration, logger: Logger,
        onListening: @escaping @Sendable (BrokerEndpoints) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let loop = try BrokerLoop(configuration: configuration, logger: logger)
        let endpoints = try await loop.start()
        logger.info(
            "broker listening",
            metadata: [
                "version": "\(SignalWorkerVersion.current)", "zeromq": "\(RuntimeInfo.zeroMQDescription)",
                "frontend": "\(endpoints.frontend)", "backend": "\(endpoints.backend)",
                "heartbeat_interval": "\(configuration.heartbeatInterval)", "worker_expiry": "\(configuration.workerExpiry)",
                "frontend_curve": "\(configuration.frontendCurve.map { "on, \($0.allowedClients.count) client key(s)" } ?? "off")",
                "backend_curve": "\(configuration.backendCurve.map { "on, \($0.allowedClients.count) worker key(s)" } ?? "off")",
            ])
        onListening(endpoints)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await loop.waitForExit()
            } onGracefulShutdown: {
                loop.requestStop()
            }
        } onCancel: {
            loop.requestStop()
        }
        try loop.throwIfAuthenticationFailed()
        logger.info("broker stopped")
    }
}
