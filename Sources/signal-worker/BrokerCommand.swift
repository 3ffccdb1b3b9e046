import ArgumentParser
import Logging
import ServiceLifecycle
import SignalBroker
import SignalWorker
import WorkerOperations
import UnixSignals

struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Spread requests over several workers, each user's messages always on the same worker.",
        discussion: """
            Clients (the Django shim) connect to --frontend exactly as they would to a worker. Workers \
            connect to --backend, as many as needed, all on the same database:

              signal-worker broker
              signal-worker serve --store postgres://db/app --connect tcp://127.0.0.1:5558

            A worker announces itself with {"v":1,"type":"worker_ready"} when it connects and every \
            heartbeat interval; after 3 missed heartbeats (or when its connection is gone) the broker \
            stops routing to it.

            Ordering: the broker reads each request's (sender, instance.pk) and sends it to the worker \
            that key hashes to (rendezvous hashing over the live workers). While the set of workers \
            stays the same, one user's messages all go to one worker, which applies them in order. \
            When a worker joins or leaves, only about 1/N of the users move. During such a change an \
            older message still being applied by the old worker can meet a newer one on the new \
            worker: the store's per-user seq check answers the older one `stale` rather than letting \
            it overwrite newer data. A request in flight to a worker that died gets no reply; the shim \
            resends it (same id) and dedupe applies it exactly once. Requests without a key (ping) \
            go round-robin.

            No live worker: the broker answers store_unavailable (retryable) at once. SIGTERM or \
            SIGINT stops it within about a second, exit status 0.

            Security: either socket can have CURVE (encryption, and a ZAP handler that admits only the \
            listed public keys): --backend-curve-secret-key-file with --backend-curve-allowed-workers (each \
            worker then runs `serve --connect ... --curve-secret-key-file WORKER.key \
            --curve-server-key-file BROKER.pub`), --frontend-curve-secret-key-file with \
            --frontend-curve-allowed-clients (the shim's CURVE setting, as for a worker). A socket without \
            CURVE on an address reachable from the network is refused unless --allow-unauthenticated says \
            a firewall or private network keeps strangers out.
            """)

    @Option(
        help: ArgumentHelp(
            "Endpoint the ROUTER for clients binds (the shim's ENDPOINT points here). [env: SIGNAL_WORKER_BROKER_FRONTEND]",
            valueName: "endpoint"))
    var frontend: String = EnvironmentDefault.string("SIGNAL_WORKER_BROKER_FRONTEND", "tcp://127.0.0.1:5557")

    @Option(
        help: ArgumentHelp(
            "Endpoint the ROUTER for workers binds (`signal-worker serve --connect` points here). [env: SIGNAL_WORKER_BROKER_BACKEND]",
            valueName: "endpoint"))
    var backend: String = EnvironmentDefault.string("SIGNAL_WORKER_BROKER_BACKEND", "tcp://127.0.0.1:5558")

    @Option(
        help: ArgumentHelp(
            "Heartbeat interval the workers use (250ms, 1s, ...); a worker silent for 3 intervals is dropped. [env: SIGNAL_WORKER_BROKER_HEARTBEAT_INTERVAL]",
            valueName: "duration"))
    var heartbeatInterval: DurationArgument = EnvironmentDefault.duration(
        "SIGNAL_WORKER_BROKER_HEARTBEAT_INTERVAL", .seconds(1))

    @Option(help: "Transport cap (ZMQ_MAXMSGSIZE) per frame on both sockets: a peer sending a bigger frame is disconnected. Keep it at least the workers' --max-message-bytes. [env: SIGNAL_WORKER_BROKER_MAX_MESSAGE_BYTES]")
    var maxMessageBytes: Int = EnvironmentDefault.int("SIGNAL_WORKER_BROKER_MAX_MESSAGE_BYTES", 128 * 1024)

    @Flag(
        name: .customLong("allow-unauthenticated"),
        help: "Allow --frontend or --backend on an address reachable from the network without authentication (refused otherwise): anyone who can connect could send requests (frontend) or take them (backend). Only behind a firewall or on a private network. [env: SIGNAL_WORKER_ALLOW_UNAUTHENTICATED=1]"
    )
    var allowUnauthenticatedFlag = false

    /// `--allow-unauthenticated` or its variable (a flag's default cannot be `true`).
    var allowUnauthenticated: Bool {
        allowUnauthenticatedFlag || EnvironmentDefault.flag("SIGNAL_WORKER_ALLOW_UNAUTHENTICATED")
    }

    @Option(
        help: ArgumentHelp(
            "CURVE on the frontend: the broker's secret key file (mode 0600; `signal-worker keygen`). [env: SIGNAL_WORKER_BROKER_FRONTEND_CURVE_SECRET_KEY_FILE]",
            valueName: "path"))
    var frontendCurveSecretKeyFile: String = EnvironmentDefault.string("SIGNAL_WORKER_BROKER_FRONTEND_CURVE_SECRET_KEY_FILE", "")

    @Option(
        help: ArgumentHelp(
            "CURVE on the frontend: a directory of the client public keys (*.pub) admitted. [env: SIGNAL_WORKER_BROKER_FRONTEND_CURVE_ALLOWED_CLIENTS]",
            valueName: "directory"))
    var frontendCurveAllowedClients: String = EnvironmentDefault.string("SIGNAL_WORKER_BROKER_FRONTEND_CURVE_ALLOWED_CLIENTS", "")

    @Option(
        help: ArgumentHelp(
            "CURVE on the backend: the broker's secret key file (workers need its public key). [env: SIGNAL_WORKER_BROKER_BACKEND_CURVE_SECRET_KEY_FILE]",
            valueName: "path"))
    var backendCurveSecretKeyFile: String = EnvironmentDefault.string("SIGNAL_WORKER_BROKER_BACKEND_CURVE_SECRET_KEY_FILE", "")

    @Option(
        help: ArgumentHelp(
            "CURVE on the backend: a directory of the worker public keys (*.pub) admitted; any other worker gets no requests. [env: SIGNAL_WORKER_BROKER_BACKEND_CURVE_ALLOWED_WORKERS]",
            valueName: "directory"))
    var backendCurveAllowedWorkers: String = EnvironmentDefault.string("SIGNAL_WORKER_BROKER_BACKEND_CURVE_ALLOWED_WORKERS", "")

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard heartbeatInterval.duration >= .milliseconds(10) else {
            throw ValidationError("--heartbeat-interval must be at least 10ms")
        }
        guard maxMessageBytes >= 256 else { throw ValidationError("--max-message-bytes must be at least 256") }
        guard frontend != backend || frontend.hasSuffix(":*") else {
            throw ValidationError("--frontend and --backend must differ")
        }
        guard frontendCurveSecretKeyFile.isEmpty == frontendCurveAllowedClients.isEmpty else {
            throw ValidationError("CURVE on the frontend needs both --frontend-curve-secret-key-file and --frontend-curve-allowed-clients")
        }
        guard backendCurveSecretKeyFile.isEmpty == backendCurveAllowedWorkers.isEmpty else {
            throw ValidationError("CURVE on the backend needs both --backend-curve-secret-key-file and --backend-curve-allowed-workers")
        }
    }

    func run() async throws {
        let logger = logging.bootstrap()
        var configuration = BrokerConfiguration()
        configuration.frontend = frontend
        configuration.backend = backend
        configuration.heartbeatInterval = heartbeatInterval.duration
        configuration.maxMessageBytes = Int64(maxMessageBytes)
        configuration.allowUnauthenticated = allowUnauthenticated
        do {
            // Test only: not an option, so it is not in --help; it can only make the broker stop.
            let fault = EnvironmentDefault.optionalString("SIGNAL_WORKER_TEST_ONLY_ZAP_FAULT_AT_REQUEST").flatMap { Int($0) }
            if !frontendCurveSecretKeyFile.isEmpty {
                configuration.frontendCurve = try CurveServerSecurity.load(
                    secretKeyFile: frontendCurveSecretKeyFile, allowedClientsDirectory: frontendCurveAllowedClients)
                configuration.frontendCurve?.testOnlyHandlerFaultAtRequest = fault
            }
            if !backendCurveSecretKeyFile.isEmpty {
                configuration.backendCurve = try CurveServerSecurity.load(
                    secretKeyFile: backendCurveSecretKeyFile, allowedClientsDirectory: backendCurveAllowedWorkers)
                configuration.backendCurve?.testOnlyHandlerFaultAtRequest = fault
            }
            try configuration.checkBindsAreAuthenticated()
        } catch {
            logger.critical("cannot run the broker: \(error.message)")
            throw ExitCode.failure
        }
        for (role, endpoint, curve) in [
            ("frontend", frontend, configuration.frontendCurve), ("backend", backend, configuration.backendCurve),
        ] where curve == nil && !endpointIsLocal(endpoint) {
            logger.warning(
                "the broker's \(role) \(endpoint) is reachable from the network and has no CURVE (--allow-unauthenticated): anyone who can connect can send (frontend) or take (backend) requests. Keep it on a private network.")
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: BrokerService(configuration: configuration, logger: logger))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch let error as WorkerError {
            logger.critical("cannot run the broker: \(error.message)")
            throw ExitCode.failure
        }
    }
}
