internal import CZeroMQ

/// A typed socket option: its libzmq id and how its Swift value maps to libzmq's int, int64 or bytes.
///
/// Use with `Socket.set(_:_:)` and `Socket.get(_:)`:
/// ```swift
/// try socket.set(.linger, .milliseconds(200))
/// try socket.set(.maxMessageSize, 1 << 20)
/// let timeout = try socket.get(.receiveTimeout)   // Duration?, nil = wait forever
/// ```
/// Most options only affect later `bind`/`connect` calls: set them first.
public struct SocketOption<Value>: Sendable, CustomStringConvertible {
    /// The libzmq name, e.g. `ZMQ_LINGER`.
    public let name: String
    let id: Int32
    let kind: RawOptionKind
    let encode: @Sendable (Value) throws(ZeroMQError) -> RawOptionValue
    let decode: @Sendable (RawOptionValue) -> Value

    init(
        _ id: Int32,
        _ name: String,
        kind: RawOptionKind,
        encode: @escaping @Sendable (Value) throws(ZeroMQError) -> RawOptionValue,
        decode: @escaping @Sendable (RawOptionValue) -> Value
    ) {
        self.id = id
        self.name = name
        self.kind = kind
        self.encode = encode
        self.decode = decode
    }

    /// The libzmq name.
    public var description: String { self.name }
}

// MARK: - Durations (milliseconds in libzmq)

extension SocketOption where Value == Duration? {
    /// ZMQ_LINGER: how long `close` keeps unsent messages; `nil` = forever, `.zero` = drop at once.
    public static var linger: Self { .optionalMilliseconds(ZMQ_LINGER, "ZMQ_LINGER") }
    /// ZMQ_RCVTIMEO: blocking receives throw `.timedOut` after this; `nil` = wait forever.
    public static var receiveTimeout: Self { .optionalMilliseconds(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO") }
    /// ZMQ_SNDTIMEO: blocking sends throw `.timedOut` after this; `nil` = wait forever.
    public static var sendTimeout: Self { .optionalMilliseconds(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO") }
    /// ZMQ_RECONNECT_IVL: delay before reconnecting a lost connection; `nil` = never reconnect.
    public static var reconnectInterval: Self { .optionalMilliseconds(ZMQ_RECONNECT_IVL, "ZMQ_RECONNECT_IVL") }

    static func optionalMilliseconds(_ id: Int32, _ name: String) -> Self {
        Self(
            id,
            name,
            kind: .int32,
            encode: { (value: Duration?) throws(ZeroMQError) -> RawOptionValue in
                guard let value else { return .int32(-1) }
                return .int32(try value.zmqMilliseconds(name))
            },
            decode: { raw in
                let milliseconds = raw.int64Value
                return milliseconds < 0 ? nil : .milliseconds(milliseconds)
            }
        )
    }
}

extension SocketOption where Value == Duration {
    /// ZMQ_HEARTBEAT_IVL: send ZMTP PINGs this often; `.zero` disables heartbeats.
    public static var heartbeatInterval: Self { .milliseconds(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL") }
    /// ZMQ_HEARTBEAT_TIMEOUT: drop the connection if no traffic this long after a PING; `.zero` = the interval.
    public static var heartbeatTimeout: Self { .milliseconds(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT") }
    /// ZMQ_HEARTBEAT_TTL: asks the peer to drop us after this silence (100 ms resolution); `.zero` = off.
    public static var heartbeatTTL: Self { .milliseconds(ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL") }
    /// ZMQ_HANDSHAKE_IVL: drop connections whose ZMTP handshake takes longer; `.zero` = no limit (default 30 s).
    public static var handshakeInterval: Self { .milliseconds(ZMQ_HANDSHAKE_IVL, "ZMQ_HANDSHAKE_IVL") }
    /// ZMQ_RECONNECT_IVL_MAX: exponential reconnect back-off cap; `.zero` = no back-off.
    public static var reconnectIntervalMax: Self { .milliseconds(ZMQ_RECONNECT_IVL_MAX, "ZMQ_RECONNECT_IVL_MAX") }
    /// ZMQ_CONNECT_TIMEOUT: TCP connect timeout; `.zero` = the OS default.
    public static var connectTimeout: Self { .milliseconds(ZMQ_CONNECT_TIMEOUT, "ZMQ_CONNECT_TIMEOUT") }

    static func milliseconds(_ id: Int32, _ name: String) -> Self {
        Self(
            id,
            name,
            kind: .int32,
            encode: { (value: Duration) throws(ZeroMQError) -> RawOptionValue in
                .int32(try value.zmqMilliseconds(name))
            },
            decode: { raw in .milliseconds(max(0, raw.int64Value)) }
        )
    }
}

// MARK: - Counts and sizes

extension SocketOption where Value == Int {
    /// ZMQ_SNDHWM: queued outgoing messages per peer before blocking/dropping; 0 = unlimited (default 1000).
    public static var sendHighWaterMark: Self { .int(ZMQ_SNDHWM, "ZMQ_SNDHWM") }
    /// ZMQ_RCVHWM: queued incoming messages per peer; 0 = unlimited (default 1000).
    public static var receiveHighWaterMark: Self { .int(ZMQ_RCVHWM, "ZMQ_RCVHWM") }

    static func int(_ id: Int32, _ name: String) -> Self {
        Self(
            id,
            name,
            kind: .int32,
            encode: { (value: Int) throws(ZeroMQError) -> RawOptionValue in
                guard let int = Int32(exactly: value) else {
                    throw CZMQ.invalidArgument("zmq_setsockopt", "\(name), \(value) out of range")
                }
                return .int32(int)
            },
            decode: { raw in Int(raw.int64Value) }
        )
    }
}

extension SocketOption where Value == Int64? {
    /// ZMQ_MAXMSGSIZE: peers sending a larger message are disconnected; `nil` = no limit.
    public static var maxMessageSize: Self {
        Self(
            ZMQ_MAXMSGSIZE,
            "ZMQ_MAXMSGSIZE",
            kind: .int64,
            encode: { (value: Int64?) throws(ZeroMQError) -> RawOptionValue in
                guard let value else { return .int64(-1) }
                guard value >= 0 else {
                    throw CZMQ.invalidArgument("zmq_setsockopt", "ZMQ_MAXMSGSIZE, negative; use nil for no limit")
                }
                return .int64(value)
            },
            decode: { raw in
                let value = raw.int64Value
                return value < 0 ? nil : value
            }
        )
    }
}

// MARK: - Flags

extension SocketOption where Value == Bool {
    /// ZMQ_ROUTER_MANDATORY: a ROUTER send to an unknown routing id throws `.hostUnreachable` instead of dropping.
    /// Write-only in libzmq 4.3: `get` throws `.invalidArgument`.
    public static var routerMandatory: Self { .bool(ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY") }
    /// ZMQ_ROUTER_HANDOVER: a new connection with a known routing id takes that id over. Write-only in libzmq 4.3.
    public static var routerHandover: Self { .bool(ZMQ_ROUTER_HANDOVER, "ZMQ_ROUTER_HANDOVER") }
    /// ZMQ_IMMEDIATE: queue messages only to completed connections.
    public static var immediate: Self { .bool(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE") }
    /// ZMQ_IPV6: enable IPv6 on TCP endpoints.
    public static var ipv6: Self { .bool(ZMQ_IPV6, "ZMQ_IPV6") }
    /// ZMQ_CURVE_SERVER: act as a CURVE server (also set `curveSecretKey`).
    public static var curveServer: Self { .bool(ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER") }

    static func bool(_ id: Int32, _ name: String) -> Self {
        Self(
            id,
            name,
            kind: .int32,
            encode: { (value: Bool) throws(ZeroMQError) -> RawOptionValue in .int32(value ? 1 : 0) },
            decode: { raw in raw.int64Value != 0 }
        )
    }
}

// MARK: - Bytes and strings

extension SocketOption where Value == [UInt8] {
    /// ZMQ_ROUTING_ID (alias ZMQ_IDENTITY): this socket's id as seen by a ROUTER peer; 1 to 255 bytes.
    public static var routingID: Self {
        Self(
            ZMQ_ROUTING_ID,
            "ZMQ_ROUTING_ID",
            kind: .bytes(capacity: 255),
            encode: { (value: [UInt8]) throws(ZeroMQError) -> RawOptionValue in .bytes(value) },
            decode: { raw in raw.bytesValue }
        )
    }
}

extension SocketOption where Value == String {
    /// ZMQ_ZAP_DOMAIN: the ZAP authentication domain reported to the handler.
    public static var zapDomain: Self {
        Self(
            ZMQ_ZAP_DOMAIN,
            "ZMQ_ZAP_DOMAIN",
            kind: .bytes(capacity: 256),
            encode: { (value: String) throws(ZeroMQError) -> RawOptionValue in .bytes(Array(value.utf8)) },
            decode: { raw in
                String(decoding: raw.bytesValue.prefix { $0 != 0 }, as: UTF8.self)
            }
        )
    }
}

extension SocketOption where Value == CurveKey {
    /// ZMQ_CURVE_PUBLICKEY: this socket's long-term public key (clients).
    public static var curvePublicKey: Self { .curveKey(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY") }
    /// ZMQ_CURVE_SECRETKEY: this socket's long-term secret key (clients and servers).
    public static var curveSecretKey: Self { .curveKey(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY") }
    /// ZMQ_CURVE_SERVERKEY: the server's public key (clients); makes the socket a CURVE client.
    public static var curveServerKey: Self { .curveKey(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY") }

    static func curveKey(_ id: Int32, _ name: String) -> Self {
        Self(
            id,
            name,
            kind: .bytes(capacity: CurveKey.byteCount),
            encode: { (value: CurveKey) throws(ZeroMQError) -> RawOptionValue in .bytes(value.bytes) },
            decode: { raw in CurveKey(unchecked: raw.bytesValue) }
        )
    }
}

// MARK: - Helpers

extension RawOptionValue {
    var int64Value: Int64 {
        switch self {
        case .int32(let value): Int64(value)
        case .int64(let value): value
        case .bytes: 0
        }
    }

    var bytesValue: [UInt8] {
        switch self {
        case .bytes(let value): value
        case .int32, .int64: []
        }
    }
}

extension Duration {
    /// Whole milliseconds for libzmq, rounding a positive sub-millisecond remainder up, capped at Int32.max.
    func zmqMilliseconds(_ name: String) throws(ZeroMQError) -> Int32 {
        guard self >= .zero else {
            throw CZMQ.invalidArgument("zmq_setsockopt", "\(name), negative duration")
        }
        let (seconds, attoseconds) = self.components
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        let (secondsInMilliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow {
            return Int32.max
        }
        let milliseconds = secondsInMilliseconds
            + (attoseconds + attosecondsPerMillisecond - 1) / attosecondsPerMillisecond
        return Int32(clamping: milliseconds)
    }
}
