import ArgumentParser
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SignalBroker
import SignalWorker
import WorkerOperations
import UnixSignals

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve requests: apply post_save messages to Django's database and reply after each commit.",
        discussion: """
            Stops gracefully on SIGTERM or SIGINT: stops reading, applies and answers every request already \
            read, then exits 0. Exit status 2: the database schema is wrong (run Django's migrations).

            Alone, the worker binds a ROUTER (--bind) that clients connect to. Behind a broker \
            (`signal-worker broker`, several workers), it connects to the broker's backend instead \
            (--connect tcp://BROKER:5558): it announces itself with worker_ready every --heartbeat-interval, \
            and the broker sends each user's messages to one worker. --bind and --connect exclude each \
            other. CURVE with --bind: --curve-secret-key-file and --curve-allowed-clients (the worker admits \
            the listed clients); with --connect: --curve-secret-key-file (the worker's own key, listed by \
            the broker's --backend-curve-allowed-workers) and --curve-server-key-file (the broker's public key).
            """)

    @OptionGroup var storeOptions: StoreOptions

    @Option(
        help: ArgumentHelp(
            "ZeroMQ endpoint the ROUTER socket binds (default \(Self.defaultBind)); clients connect to it. Not with --connect. [env: SIGNAL_WORKER_BIND]",
            valueName: "endpoint"))
    var bind: String?

    @Option(
        help: ArgumentHelp(
            "Work behind `signal-worker broker`: connect a DEALER to the broker's backend (e.g. tcp://broker-host:5558) instead of binding. One broker per worker; not with --bind. [env: SIGNAL_WORKER_BROKER]",
            valueName: "endpoint"))
    var connect: String?

    @Option(
        help: ArgumentHelp(
            "With --connect: how often the worker sends worker_ready to the broker (250ms, 1s, ...). The broker drops a worker after 3 missed; use the broker's --heartbeat-interval. [env: SIGNAL_WORKER_HEARTBEAT_INTERVAL]",
            valueName: "duration"))
    var heartbeatInterval: DurationArgument = EnvironmentDefault.duration("SIGNAL_WORKER_HEARTBEAT_INTERVAL", .seconds(1))

    @Option(help: "Model label whose post_save the profile receiver handles (custom user models). [env: SIGNAL_WORKER_USER_MODEL]")
    var userModel: String = EnvironmentDefault.string("SIGNAL_WORKER_USER_MODEL", "auth.user")

    @Option(help: "UserProfile.profile_type's default, used on create when the data has none. [env: SIGNAL_WORKER_DEFAULT_PROFILE_TYPE]")
    var defaultProfileType: String = EnvironmentDefault.string("SIGNAL_WORKER_DEFAULT_PROFILE_TYPE", "personal")

    @Option(help: "Most requests applied in one transaction (group commit). [env: SIGNAL_WORKER_MAX_BATCH]")
    var maxBatch: Int = EnvironmentDefault.int("SIGNAL_WORKER_MAX_BATCH", 1_000)

    @Option(help: "Most batches applied at once, in separate transactions, never two with a user in common; 0 = the store's choice (2; on SQLite the second batch gathers requests until the first one committed). [env: SIGNAL_WORKER_MAX_CONCURRENT_BATCHES]")
    var maxConcurrentBatches: Int = EnvironmentDefault.int("SIGNAL_WORKER_MAX_CONCURRENT_BATCHES", 0)

    @Option(help: "Milliseconds a batch may wait for more requests; 0 applies at once (lowest latency). [env: SIGNAL_WORKER_MAX_BATCH_WAIT_MS]")
    var maxBatchWaitMs: Int = EnvironmentDefault.int("SIGNAL_WORKER_MAX_BATCH_WAIT_MS", 0)

    @Option(help: "Requests read but not yet applied before the worker stops reading the socket (backpressure: libzmq's queue and TCP hold the rest). [env: SIGNAL_WORKER_MAX_QUEUED_REQUESTS]")
    var maxQueuedRequests: Int = EnvironmentDefault.int("SIGNAL_WORKER_MAX_QUEUED_REQUESTS", 10_000)

    @Option(help: "Largest request frame decoded; larger ones get bad_request. [env: SIGNAL_WORKER_MAX_REQUEST_BYTES]")
    var maxRequestBytes: Int = EnvironmentDefault.int("SIGNAL_WORKER_MAX_REQUEST_BYTES", 64 * 1024)

    @Option(help: "Transport cap (ZMQ_MAXMSGSIZE) per frame: a client sending a bigger frame is disconnected without a reply. Default: --max-request-bytes + 65536, so a frame a little over --max-request-bytes still gets bad_request. [env: SIGNAL_WORKER_MAX_MESSAGE_BYTES]")
    var maxMessageBytes: Int?

    /// `--max-message-bytes`, else its variable, else --max-request-bytes + 64 KiB.
    var effectiveMaxMessageBytes: Int {
        maxMessageBytes ?? EnvironmentDefault.optionalString("SIGNAL_WORKER_MAX_MESSAGE_BYTES").flatMap { Int($0) }
            ?? maxRequestBytes + 64 * 1024
    }

    @Option(help: "Milliseconds the socket may take on shutdown to flush final replies (LINGER). [env: SIGNAL_WORKER_LINGER_MS]")
    var lingerMs: Int = EnvironmentDefault.int("SIGNAL_WORKER_LINGER_MS", 2_000)

    @Option(help: "Milliseconds a message answered store_unavailable holds back the later messages of its object (they get store_unavailable too) unless it is resent and applied first; keeps a retried message from being overtaken and answered stale. 0 disables. [env: SIGNAL_WORKER_RETRY_HOLD_MS]")
    var retryHoldMs: Int = EnvironmentDefault.int("SIGNAL_WORKER_RETRY_HOLD_MS", 120_000)

    @Option(help: "Seconds between two info lines `activity` (requests answered per action and error code, held, queued), logged only when something happened; 0 = none. Each request is logged at debug (--log-level debug). [env: SIGNAL_WORKER_ACTIVITY_LOG_SECONDS]")
    var activityLogSeconds: Int = EnvironmentDefault.int("SIGNAL_WORKER_ACTIVITY_LOG_SECONDS", 60)

    @Option(help: "Hours applied message ids are kept for dedupe. [env: SIGNAL_WORKER_DEDUPE_RETENTION_HOURS]")
    var dedupeRetentionHours: Int = EnvironmentDefault.int("SIGNAL_WORKER_DEDUPE_RETENTION_HOURS", 7 * 24)

    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9557; a bare port binds 127.0.0.1; empty (the default) serves none. No authentication: any other host logs a warning. At most 16 connections, each closed if its request is not complete within 5 s. [env: SIGNAL_WORKER_METRICS_BIND]")
    var metricsBind: String = EnvironmentDefault.string("SIGNAL_WORKER_METRICS_BIND", "")

    @Option(
        help: ArgumentHelp(
            "CURVE: the worker's secret key file (mode 0600; `signal-worker keygen` writes one). With --bind and --curve-allowed-clients, traffic is encrypted and only the listed clients get in; with --connect and --curve-server-key-file, the worker authenticates itself to the broker's backend. [env: SIGNAL_WORKER_CURVE_SECRET_KEY_FILE]",
            valueName: "path"))
    var curveSecretKeyFile: String = EnvironmentDefault.string("SIGNAL_WORKER_CURVE_SECRET_KEY_FILE", "")

    @Option(
        help: ArgumentHelp(
            "CURVE: a directory of the client public keys (*.pub) the worker admits; every other client is refused. [env: SIGNAL_WORKER_CURVE_ALLOWED_CLIENTS]",
            valueName: "directory"))
    var curveAllowedClients: String = EnvironmentDefault.string("SIGNAL_WORKER_CURVE_ALLOWED_CLIENTS", "")

    @Option(
        help: ArgumentHelp(
            "CURVE with --connect: the broker's public key file (the key of its --backend-curve-secret-key-file). [env: SIGNAL_WORKER_CURVE_SERVER_KEY_FILE]",
            valueName: "path"))
    var curveServerKeyFile: String = EnvironmentDefault.string("SIGNAL_WORKER_CURVE_SERVER_KEY_FILE", "")

    @Flag(
        name: .customLong("allow-unauthenticated"),
        help: "Allow --bind on an address reachable from the network without CURVE (refused otherwise): anyone who can connect could write profiles. Only behind a firewall or on a private network. [env: SIGNAL_WORKER_ALLOW_UNAUTHENTICATED=1]"
    )
    var allowUnauthenticatedFlag = false

    /// `--allow-unauthenticated` or its variable (a flag's default cannot be `true`).
    var allowUnauthenticated: Bool {
        allowUnauthenticatedFlag || EnvironmentDefault.flag("SIGNAL_WORKER_ALLOW_UNAUTHENTICATED")
    }

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard maxBatch >= 1 else { throw ValidationError("--max-batch must be at least 1") }
        guard maxQueuedRequests >= maxBatch else {
            throw ValidationError("--max-queued-requests must be at least --max-batch (\(maxBatch))")
        }
        guard (0...16).contains(maxConcurrentBatches) else {
            throw ValidationError("--max-concurrent-batches must be 0 (the store's choice) to 16")
        }
        guard maxBatchWaitMs >= 0, lingerMs >= 0, retryHoldMs >= 0, activityLogSeconds >= 0 else { throw ValidationError("durations must not be negative") }
        guard maxRequestBytes >= 256, effectiveMaxMessageBytes >= maxRequestBytes else {
            throw ValidationError("--max-request-bytes must be ≥ 256 and ≤ --max-message-bytes")
        }
        guard dedupeRetentionHours >= 1 else { throw ValidationError("--dedupe-retention-hours must be at least 1") }
        if try socketMode().connect == nil {
            guard curveSecretKeyFile.isEmpty == curveAllowedClients.isEmpty, curveServerKeyFile.isEmpty else {
                throw ValidationError(
                    "CURVE with --bind needs both --curve-secret-key-file and --curve-allowed-clients "
                        + "(--curve-server-key-file is for --connect)")
            }
        } else {
            guard curveSecretKeyFile.isEmpty == curveServerKeyFile.isEmpty, curveAllowedClients.isEmpty else {
                throw ValidationError(
                    "CURVE with --connect needs both --curve-secret-key-file (this worker's key) and --curve-server-key-file "
                        + "(the broker's public key); the broker admits the clients, not --curve-allowed-clients")
            }
        }
        guard heartbeatInterval.duration >= .milliseconds(10) else {
            throw ValidationError("--heartbeat-interval must be at least 10ms")
        }
    }

    static let defaultBind = "tcp://127.0.0.1:5557"

    /// The endpoint to bind, or the broker to connect to: the command line wins over the variables,
    /// and giving both (at the same level) is an error rather than a guess.
    func socketMode() throws -> (bind: String, connect: String?) {
        switch (bind, connect) {
        case (.some, .some):
            throw ValidationError(
                "--bind and --connect exclude each other: --bind serves clients directly, --connect works behind "
                    + "`signal-worker broker` (give the broker's backend endpoint)")
        case (.some(let bind), nil):
            return (bind, nil)
        case (nil, .some(let connect)):
            return (Self.defaultBind, connect)
        case (nil, nil):
            let bind = EnvironmentDefault.optionalString("SIGNAL_WORKER_BIND")
            let connect = EnvironmentDefault.optionalString("SIGNAL_WORKER_BROKER")
            if bind != nil, connect != nil {
                throw ValidationError(
                    "SIGNAL_WORKER_BIND and SIGNAL_WORKER_BROKER are both set, and they exclude each other: "
                        + "unset one, or choose on the command line with --bind or --connect")
            }
            return (bind ?? Self.defaultBind, connect)
        }
    }

    func makeConfiguration() throws -> WorkerConfiguration {
        var configuration = WorkerConfiguration()
        try storeOptions.apply(to: &configuration)
        (configuration.bind, configuration.connect) = try socketMode()
        configuration.heartbeatInterval = heartbeatInterval.duration
        configuration.userModelLabel = userModel
        configuration.defaultProfileType = defaultProfileType
        configuration.maxBatchSize = maxBatch
        configuration.maxConcurrentBatches = maxConcurrentBatches == 0 ? nil : maxConcurrentBatches
        configuration.maxBatchWait = .milliseconds(maxBatchWaitMs)
        configuration.maxQueuedRequests = maxQueuedRequests
        configuration.maxRequestBytes = maxRequestBytes
        configuration.maxMessageBytes = Int64(effectiveMaxMessageBytes)
        configuration.linger = .milliseconds(lingerMs)
        configuration.dedupeRetention = .seconds(dedupeRetentionHours * 3600)
        configuration.retryHold = .milliseconds(retryHoldMs)
        configuration.activitySummaryInterval = .seconds(activityLogSeconds)
        configuration.metricsBind = metricsBind.isEmpty ? nil : metricsBind
        configuration.allowUnauthenticated = allowUnauthenticated
        if !curveSecretKeyFile.isEmpty, configuration.connect != nil {
            configuration.brokerCurve = HealthCheck.CurveClient(
                clientKeys: try CurveKeyFiles.readKeyPair(secretKeyFile: curveSecretKeyFile),
                serverKey: try CurveKeyFiles.readPublicKey(curveServerKeyFile))
        } else if !curveSecretKeyFile.isEmpty {
            configuration.curve = try CurveServerSecurity.load(
                secretKeyFile: curveSecretKeyFile, allowedClientsDirectory: curveAllowedClients)
            // Test only: not an option, so it is not in --help; it can only make the worker stop.
            configuration.curve?.testOnlyHandlerFaultAtRequest =
                EnvironmentDefault.optionalString("SIGNAL_WORKER_TEST_ONLY_ZAP_FAULT_AT_REQUEST").flatMap { Int($0) }
        }
        return configuration
    }

    func run() async throws {
        let logger = logging.bootstrap()
        let configuration: WorkerConfiguration
        do {
            configuration = try makeConfiguration()
        } catch let error as WorkerError {
            logger.critical("cannot serve: \(error.message)")
            throw ExitCode.failure
        }
        var prometheus: PrometheusCollectorRegistry?
        if configuration.metricsBind != nil {
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            prometheus = registry
        }
        logger.info(
            "signal-worker starting",
            metadata: [
                "version": "\(SignalWorkerVersion.current)", "store": "\(configuration.store)",
                "endpoint": "\(configuration.connect ?? configuration.bind)",
                "mode": "\(configuration.connect == nil ? "bind" : "connect (behind a broker)")",
                "zeromq": "\(RuntimeInfo.zeroMQDescription)",
                "curve": "\(configuration.curve.map { "on, \($0.allowedClients.count) client key(s)" } ?? (configuration.brokerCurve == nil ? "off" : "on, to the broker"))",
            ])
        if configuration.connect == nil, configuration.curve == nil, !endpointIsLocal(configuration.bind),
            configuration.allowUnauthenticated
        {
            let warning =
                "\(configuration.bind) is reachable from the network WITHOUT CURVE (--allow-unauthenticated): anyone who "
                + "can connect can write profiles, and traffic is plaintext. Bind 127.0.0.1 or an ipc:// path, or pass "
                + "--curve-secret-key-file and --curve-allowed-clients (see `signal-worker keygen`)."
            logger.warning("\(warning)")
        }
        do {
            let worker = try WorkerServices(configuration: configuration, logger: logger, prometheus: prometheus)
            defer { worker.close() }
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: worker.services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger))
            try await group.run()
        } catch let error as WorkerError {
            logger.critical("cannot serve: \(error.message)")
            throw error.code == .schema ? ExitCode(2) : ExitCode.failure
        }
    }
}
