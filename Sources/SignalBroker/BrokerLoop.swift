import WorkerOperations
import Foundation
import Logging
import Synchronization
import ZeroMQ

/// The endpoints a broker listens on, with `*` ports resolved.
public struct BrokerEndpoints: Sendable, Hashable {
    /// Where clients connect.
    public var frontend: String
    /// Where workers connect.
    public var backend: String
}

/// The thread that owns the broker's two ROUTER sockets (libzmq sockets are not thread-safe): it
/// creates and binds them, runs one `zmq_poll` loop over both, and closes them when asked to stop.
final class BrokerLoop: Sendable {
    private enum Phase: Sendable, Equatable {
        case starting, running, stopRequested
        /// The CURVE authentication handler stopped (the cause): close the sockets at once.
        case authenticationFailed(String)
    }

    private let configuration: BrokerConfiguration
    private let logger: Logger
    private let thread: SocketThread
    private let phase = Mutex(Phase.starting)

    /// The ZAP domains of the two sockets.
    private static let zapDomains = (frontend: "broker-frontend", backend: "broker-backend")

    /// The longest a poll waits, so a stop request is seen within it.
    private static let pollTimeout: Duration = .milliseconds(100)

    init(configuration: BrokerConfiguration, logger: Logger) throws(WorkerError) {
        self.configuration = configuration
        self.logger = logger
        thread = try SocketThread(name: "broker-socket", linger: configuration.linger)
    }

    /// Starts the thread; returns the bound endpoints once both sockets listen.
    func start() async throws(WorkerError) -> BrokerEndpoints {
        try await thread.start { [self] started in threadMain(started: started) }
    }

    /// Stops forwarding; the thread closes the sockets and ends within a poll timeout.
    func requestStop() {
        phase.withLock { phase in
            if phase == .starting || phase == .running { phase = .stopRequested }
        }
    }

    /// Waits until the thread closed the sockets.
    func waitForExit() async {
        await thread.waitForExit()
    }

    /// Throws if the sockets were closed because the CURVE authentication handler stopped.
    func throwIfAuthenticationFailed() throws(WorkerError) {
        guard case .authenticationFailed(let cause) = phase.withLock({ $0 }) else { return }
        throw WorkerError(
            .socket,
            "stopped the broker: the CURVE authentication handler failed (\(cause)); without it libzmq would admit "
                + "any CURVE peer unchecked")
    }

    // MARK: - The thread

    private func threadMain(started: (Result<BrokerEndpoints, WorkerError>) -> Void) {
        var sockets: [Socket] = []
        let endpoints: BrokerEndpoints
        var authenticator: ZAPAuthenticator?
        do throws(WorkerError) {
            authenticator = try startAuthenticator()
            let (frontend, frontendEndpoint) = try bind(configuration.frontend, role: "frontend")
            sockets.append(frontend)
            let (backend, backendEndpoint) = try bind(configuration.backend, role: "backend")
            sockets.append(backend)
            endpoints = BrokerEndpoints(frontend: frontendEndpoint, backend: backendEndpoint)
        } catch {
            for socket in sockets { socket.close() }
            authenticator?.release()
            thread.context.terminate()
            started(.failure(error))
            thread.finished()
            return
        }
        phase.withLock { if $0 == .starting { $0 = .running } }
        started(.success(endpoints))

        run(
            BrokerForwarder(frontend: sockets[0], backend: sockets[1], configuration: configuration, logger: logger),
            frontend: sockets[0], backend: sockets[1])

        for socket in sockets { socket.close() }  // LINGER bounds the flush of what is queued
        // Only now may a failed authentication handler unbind: the sockets it guarded are closed.
        authenticator?.release()
        thread.context.terminate()
        thread.finished()
    }

    /// The CURVE authentication handler of the sockets that have CURVE, listening before they
    /// bind; `nil` when neither has.
    private func startAuthenticator() throws(WorkerError) -> ZAPAuthenticator? {
        var domains: [String: [String: CurveKey]] = [:]
        if let curve = configuration.frontendCurve { domains[Self.zapDomains.frontend] = curve.allowedClients }
        if let curve = configuration.backendCurve { domains[Self.zapDomains.backend] = curve.allowedClients }
        guard !domains.isEmpty else { return nil }
        let authenticator = ZAPAuthenticator(
            context: thread.context, domains: domains,
            faultAtRequest: configuration.backendCurve?.testOnlyHandlerFaultAtRequest
                ?? configuration.frontendCurve?.testOnlyHandlerFaultAtRequest,
            logger: logger)
        try authenticator.start { [self] cause in
            phase.withLock { $0 = .authenticationFailed(cause) }
        }
        return authenticator
    }

    /// A ROUTER bound to `endpoint`, and the endpoint with a `*` port resolved; the backend also sends ZMTP heartbeats, so a worker whose host
    /// vanished without closing its connection is noticed by libzmq too.
    private func bind(_ endpoint: String, role: String) throws(WorkerError) -> (Socket, String) {
        try configuration.checkBindIsAuthenticated(role: role)
        do {
            let socket = try Socket(context: thread.context, type: .router)
            try socket.set(.routerMandatory, true)
            try socket.set(.maxMessageSize, configuration.maxMessageBytes)
            try socket.set(.receiveHighWaterMark, configuration.receiveHighWaterMark)
            try socket.set(.sendHighWaterMark, configuration.highWaterMark)
            try socket.set(.linger, configuration.linger)
            if let curve = role == "backend" ? configuration.backendCurve : configuration.frontendCurve {
                try socket.set(.curveServer, true)
                try socket.set(.curveSecretKey, curve.serverKeys.secretKey)
                try socket.set(.zapDomain, role == "backend" ? Self.zapDomains.backend : Self.zapDomains.frontend)
            }
            if role == "backend" {
                // A worker that reconnects keeps its routing id, and with it its users.
                try socket.set(.routerHandover, true)
                try socket.set(.heartbeatInterval, configuration.heartbeatInterval)
                try socket.set(.heartbeatTimeout, configuration.workerExpiry)
            }
            try socket.bind(endpoint)
            return (socket, try socket.lastEndpoint)
        } catch {
            throw WorkerError(.socket, "cannot listen on \(endpoint) (\(role)): \(error)")
        }
    }

    private func run(_ forwarder: BrokerForwarder, frontend: Socket, backend: Socket) {
        let poller = Poller()
        let frontendIndex = poller.register(frontend, for: .readable)
        let backendIndex = poller.register(backend, for: .readable)
        let expiryCheck = min(configuration.heartbeatInterval / 4, .milliseconds(250))
        var nextExpiryCheck = ContinuousClock.now + expiryCheck

        while true {
            let current = phase.withLock { $0 }
            if case .authenticationFailed(let cause) = current {
                logger.error(
                    "closing the broker's sockets: the CURVE authentication handler stopped (\(cause)); no peer may connect unchecked"
                )
                return
            }
            guard current == .running else { return }
            let ready: [Poller.Ready]
            do {
                let untilCheck = ContinuousClock.now.duration(to: nextExpiryCheck)
                ready = try poller.poll(timeout: max(.zero, min(Self.pollTimeout, untilCheck)))
            } catch {
                logger.error("poll failed, stopping the broker: \(error)")
                return
            }
            // The backend first: a new worker's worker_ready counts before requests read in the same turn.
            if ready.contains(where: { $0.index == backendIndex }) { forwarder.drainBackend() }
            if ready.contains(where: { $0.index == frontendIndex }) { forwarder.drainFrontend() }
            let now = ContinuousClock.now
            if now >= nextExpiryCheck {
                forwarder.expireWorkers(now: now)
                nextExpiryCheck = now + expiryCheck
            }
        }
    }
}
