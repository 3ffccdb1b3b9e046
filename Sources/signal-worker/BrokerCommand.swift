import ArgumentParser
import Logging
import ServiceLifecycle
import SignalWorker
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
            SIGINT stops it within about a second, exit status 0. The broker's sockets are plaintext \
            (no CURVE): it refuses to bind them on an address reachable from the network unless \
            --allow-unauthenticated says a firewall or private network keeps strangers out.
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

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard heartbeatInterval.duration >= .milliseconds(10) else {
            throw ValidationError("--heartbeat-interval must be at least 10ms")
        }
        guard maxMessageBytes >= 256 else { throw ValidationError("--max-message-bytes must be at least 256") }
        guard frontend != backend || frontend.hasSuffix(":*") else {
            throw ValidationError("--frontend and --backend must differ")
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
            try configuration.checkBindsAreAuthenticated()
        } catch {
            logger.critical("cannot run the broker: \(error.message)")
            throw ExitCode.failure
        }
        for (role, endpoint) in [("frontend", frontend), ("backend", backend)] where !endpointIsLocal(endpoint) {
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
