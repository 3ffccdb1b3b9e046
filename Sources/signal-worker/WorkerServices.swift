import SignalInbox
import SignalBroker
import SignalWorker
import WorkerOperations
import Logging
import Prometheus
import ServiceLifecycle

/// Builds the services of `signal-worker serve` from a configuration, in start order:
/// the store's connections, the dedupe pruner, the metrics endpoint, the worker last
/// (so that on shutdown the worker drains before the store closes).
///
/// Tests build workers here from a ``WorkerConfiguration``, never from argv.
public struct WorkerServices: Sendable {
    /// The services, for a `ServiceGroup`.
    public var services: [any Service]
    /// The opened store (closed by ``close()`` after the group ran).
    public var store: OpenedStore

    /// Opens the store and creates the services; the schema is checked when the worker starts.
    public init(
        configuration: WorkerConfiguration, logger: Logger, prometheus: PrometheusCollectorRegistry? = nil,
        metrics: WorkerMetrics = WorkerMetrics(), onListening: @escaping @Sendable (String) -> Void = { _ in },
        onMetricsListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws(WorkerError) {
        try configuration.checkBindIsAuthenticated()  // before the store: a refused bind is a quick, clear error
        let opened = try OpenedStore.open(configuration, logger: logger)
        var services: [any Service] = []
        if let storeService = opened.service { services.append(storeService) }
        services.append(DedupePruner(store: opened.store, retention: configuration.dedupeRetention, logger: logger))
        if let bind = configuration.metricsBind {
            guard let prometheus else {
                throw WorkerError(.configuration, "--metrics-bind needs a Prometheus registry")
            }
            services.append(
                try MetricsServer(bind: bind, registry: prometheus, logger: logger, onListening: onMetricsListening))
        }
        let store = opened.store
        services.append(
            SignalWorkerService(
                configuration: configuration,
                makeRegistry: {
                    logger.info("checking the schema", metadata: ["store": "\(configuration.store)"])
                    let inbox = try await StorePreparation.prepare(store, configuration: configuration, logger: logger).inbox
                    return ReceiverRegistry(inbox: inbox, store: store)
                }, metrics: metrics, logger: logger, onListening: onListening))
        self.services = services
        self.store = opened
    }

    /// Releases the store after the services stopped.
    public func close() { store.close() }
}
