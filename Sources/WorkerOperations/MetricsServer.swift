import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization

/// Serves `GET /metrics` in the Prometheus text format on `--metrics-bind`.
///
/// Hardened against clients that open connections and never finish a request (slowloris):
/// at most ``Limits/maxConnections`` connections are open at once (more are closed as soon as
/// they are accepted), a request's head must arrive within ``Limits/requestHeadTimeout``, a
/// connection that neither reads nor writes for ``Limits/idleTimeout`` is closed, request heads
/// are bounded in size, and the server runs on an event loop thread of its own, so it can
/// neither take more than that thread nor slow down the store's connections.
public final class MetricsServer: Service, Sendable {
    /// What HTTP clients may hold.
    public struct Limits: Sendable, Hashable {
        /// Most connections open at once; more are closed as soon as they are accepted.
        public var maxConnections: Int = 16
        /// Time from accepting a connection until its request line and headers are complete.
        public var requestHeadTimeout: Duration = .seconds(5)
        /// A connection that neither reads nor writes anything for this long is closed.
        public var idleTimeout: Duration = .seconds(5)
        /// Largest request head (request line and headers), in bytes.
        public var maxRequestHeadBytes: Int = 8 * 1024

        /// The defaults.
        public init() {}
    }

    private let host: String
    private let port: Int
    private let limits: Limits
    private let registry: PrometheusCollectorRegistry
    private let logger: Logger
    private let onListening: @Sendable (Int) -> Void

    /// Creates a server for `bind` (`host:port`, or a bare port for 127.0.0.1; port 0 picks a
    /// free one, reported to `onListening`).
    public init(
        bind: String, registry: PrometheusCollectorRegistry, limits: Limits = Limits(), logger: Logger,
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws(WorkerError) {
        guard let (host, port) = Self.parse(bind) else {
            throw WorkerError(.configuration, "--metrics-bind \(bind) is not host:port (e.g. 127.0.0.1:9557)")
        }
        self.host = host
        self.port = port
        self.limits = limits
        self.registry = registry
        self.logger = logger
        self.onListening = onListening
    }

    /// `host:port`, `[v6]:port`, or a bare `port` (loopback).
    static func parse(_ bind: String) -> (host: String, port: Int)? {
        if let port = Int(bind), (0...65_535).contains(port) { return ("127.0.0.1", port) }
        guard let colon = bind.lastIndex(of: ":"), let port = Int(bind[bind.index(after: colon)...]),
            (0...65_535).contains(port)
        else { return nil }
        let host = String(bind[..<colon]).trimmingCharacters(in: ["[", "]"])
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }

    public func run() async throws {
        let registry = self.registry
        let limits = self.limits
        let connections = ConnectionCounter(limit: limits.maxConnections)
        let logger = self.logger
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let decoderLimits = {
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderListSize = limits.maxRequestHeadBytes
            decoderLimits.maxHeaderFieldSize = limits.maxRequestHeadBytes
            decoderLimits.maxHeaderFieldCount = 100
            return decoderLimits
        }()
        if !hostIsLoopback(host) {
            let warning =
                "the metrics endpoint \(host):\(port) is reachable from the network without authentication: anyone who can "
                + "connect can read the counters and hold up to \(limits.maxConnections) connections. Prefer a loopback "
                + "address (the default for a bare port) and a firewall that lets only Prometheus in."
            logger.warning("\(warning)")
        }

        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: Int32(max(8, limits.maxConnections)))
                .childChannelInitializer { channel in
                    let admission = connections.acquire()
                    guard !admission.refused else {
                        // Over the cap: failing the initializer closes the connection at once.
                        if let count = admission.logCount {
                            logger.warning(
                                "metrics endpoint: connection refused, \(limits.maxConnections) already open",
                                metadata: ["refused_since_last_line": "\(count)"])
                        }
                        return channel.eventLoop.makeFailedFuture(ConnectionLimitReached())
                    }
                    channel.closeFuture.whenComplete { _ in connections.release() }
                    return channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHandler(
                            IdleStateHandler(allTimeout: TimeAmount(limits.idleTimeout)))
                        try pipeline.addHandler(RequestHeadDeadline(timeout: TimeAmount(limits.requestHeadTimeout)))
                        try pipeline.configureHTTPServerPipeline(
                            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
                        try pipeline.addHandler(MetricsHTTPHandler(registry: registry))
                    }
                }
                .bind(host: host, port: port).get()
            let boundPort = channel.localAddress?.port ?? port
            logger.info(
                "metrics endpoint listening",
                metadata: [
                    "url": "http://\(host.contains(":") ? "[\(host)]" : host):\(boundPort)/metrics",
                    "max_connections": "\(limits.maxConnections)", "request_head_timeout": "\(limits.requestHeadTimeout)",
                    "idle_timeout": "\(limits.idleTimeout)",
                ])
            onListening(boundPort)
            try? await gracefulShutdown()
            try await channel.close()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }
}

/// How many connections are open, whether one more may be, and when to log a refusal.
private final class ConnectionCounter: Sendable {
    private struct State {
        var open = 0
        var refusedLog = LogThrottle(interval: .seconds(10))
    }

    private let state = Mutex(State())
    private let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// Counts one more connection and returns `nil`, or at the limit returns whether to log the
    /// refusal now (with how many were refused since the last line).
    func acquire() -> (refused: Bool, logCount: Int?) {
        state.withLock { state in
            guard state.open < limit else { return (true, state.refusedLog.occurrence(at: .now)) }
            state.open += 1
            return (false, nil)
        }
    }

    func release() {
        state.withLock { $0.open -= 1 }
    }
}

/// The error that closes a connection over ``MetricsServer/Limits/maxConnections``.
private struct ConnectionLimitReached: Error {}

/// Closes a connection whose request head (request line and headers) has not arrived within
/// `timeout` of its start; once the head is decoded the deadline is off. Bytes trickling in
/// one at a time (slowloris) do not extend it, as they would an idle timeout.
private final class RequestHeadDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    /// The first response bytes mean the head was read: the request is being answered.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        deadline?.cancel()
        deadline = nil
        context.write(data, promise: promise)
    }
}

/// Answers one HTTP request at a time: the registry's text for `/metrics`, 404 otherwise.
private final class MetricsHTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
        if request.method == .GET, path == "/metrics" {
            (status, contentType, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
        } else {
            (status, contentType, body) = (.notFound, "text/plain; charset=utf-8", Array("try GET /metrics\n".utf8))
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in boundContext.value.close(promise: nil) }
    }

    /// Closes the connection when ``IdleStateHandler`` reports it idle.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
