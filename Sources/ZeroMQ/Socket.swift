internal import CZeroMQ

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Flags for `send` and `receive` calls.
public struct MessageFlags: OptionSet, Sendable, Hashable {
    /// The libzmq flag bits.
    public let rawValue: Int32

    /// Creates flags from libzmq bits.
    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// ZMQ_DONTWAIT: never block; throw `ZeroMQError` with code `.wouldBlock` if the call cannot complete now.
    public static let dontWait = MessageFlags(rawValue: ZMQ_DONTWAIT)
}

/// A libzmq socket. NOT thread-safe: use each socket from one thread at a time (it is deliberately not `Sendable`).
///
/// Create it on the thread that uses it. The socket keeps its `Context` alive, `close()` is idempotent, and
/// `deinit` closes. Blocking calls honour `receiveTimeout`/`sendTimeout` (throwing `.timedOut`); calls with
/// `.dontWait` throw `.wouldBlock` instead of blocking; after `Context.shutdown()` they throw `.contextTerminated`.
///
/// ```swift
/// let server = try Socket(context: context, type: .router)
/// try server.set(.routerMandatory, true)
/// try server.bind("tcp://127.0.0.1:*")
/// let endpoint = try server.lastEndpoint            // "tcp://127.0.0.1:49731"
/// let request = try server.receiveMultipart()      // [routing id, ..., payload]
/// try server.send(multipart: [request[0], Array("ok".utf8)])
/// ```
public final class Socket {
    /// The context this socket belongs to (kept alive by the socket).
    public let context: Context
    /// The socket's pattern.
    public let type: SocketType

    private var handle: SocketHandle?

    /// The array `receive()` returned last. If the caller has released it by the next `receive()`, its storage
    /// is unique again and is reused (copy-on-write keeps this invisible); otherwise a new array is allocated.
    /// Unchecked exclusivity is safe: a Socket is used by one thread at a time and `receive()` does not re-enter.
    @exclusivity(unchecked) private var recycledFrame: [UInt8] = []

    /// Frames up to this size are kept in `recycledFrame`; larger ones are not pinned by the socket.
    private static let recycledFrameLimit = 1024

    /// Opens a socket of `type` in `context`, with ZMQ_LINGER set to `context.defaultLinger`.
    public init(context: Context, type: SocketType) throws(ZeroMQError) {
        let handle = try context.openSocket(type: type)
        if let linger = context.defaultLinger {
            do {
                let option = SocketOption<Duration?>.linger
                try CZMQ.setOption(handle, option.id, try option.encode(linger), name: option.name)
            } catch {
                CZMQ.socketClose(handle)
                throw error
            }
        }
        self.context = context
        self.type = type
        self.handle = handle
    }

    deinit {
        self.close()
    }

    /// Closes the socket (`zmq_close`); unsent messages linger per `linger`. Idempotent; never blocks.
    public func close() {
        if let handle = self.handle {
            self.handle = nil
            self.recycledFrame = []
            CZMQ.socketClose(handle)
        }
    }

    /// True after `close()`.
    public var isClosed: Bool { self.handle == nil }

    /// The open handle, or the `.socketClosed` error naming `function`.
    @inline(__always)
    func liveHandle(_ function: StaticString) throws(ZeroMQError) -> SocketHandle {
        guard let handle = self.handle else {
            throw CZMQ.socketClosedError(function)
        }
        return handle
    }

    // MARK: - Endpoints

    /// Binds to an endpoint such as `tcp://127.0.0.1:*`, `ipc:///tmp/x.sock` or `inproc://name`.
    public func bind(_ endpoint: String) throws(ZeroMQError) {
        try CZMQ.bind(self.liveHandle("zmq_bind"), endpoint)
    }

    /// Connects to an endpoint; succeeds before the peer exists (libzmq reconnects in the background).
    public func connect(_ endpoint: String) throws(ZeroMQError) {
        try CZMQ.connect(self.liveHandle("zmq_connect"), endpoint)
    }

    /// Stops listening on a bound endpoint (use the resolved `lastEndpoint` for wildcard binds).
    public func unbind(_ endpoint: String) throws(ZeroMQError) {
        try CZMQ.unbind(self.liveHandle("zmq_unbind"), endpoint)
    }

    /// Disconnects from a connected endpoint.
    public func disconnect(_ endpoint: String) throws(ZeroMQError) {
        try CZMQ.disconnect(self.liveHandle("zmq_disconnect"), endpoint)
    }

    /// ZMQ_LAST_ENDPOINT: the resolved endpoint of the last bind/connect, e.g. the real port after `tcp://...:*`.
    public var lastEndpoint: String {
        get throws(ZeroMQError) {
            let raw = try CZMQ.getOption(
                self.liveHandle("zmq_getsockopt"),
                ZMQ_LAST_ENDPOINT,
                .bytes(capacity: 1024),
                name: "ZMQ_LAST_ENDPOINT"
            )
            return String(decoding: raw.bytesValue.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    // MARK: - Options

    /// Sets a typed option (`zmq_setsockopt`), e.g. `try socket.set(.linger, .milliseconds(100))`.
    public func set<Value>(_ option: SocketOption<Value>, _ value: Value) throws(ZeroMQError) {
        let handle = try self.liveHandle("zmq_setsockopt")
        try CZMQ.setOption(handle, option.id, try option.encode(value), name: option.name)
    }

    /// Reads a typed option (`zmq_getsockopt`), e.g. `try socket.get(.receiveHighWaterMark)`.
    public func get<Value>(_ option: SocketOption<Value>) throws(ZeroMQError) -> Value {
        let handle = try self.liveHandle("zmq_getsockopt")
        return option.decode(try CZMQ.getOption(handle, option.id, option.kind, name: option.name))
    }

    /// ZMQ_SUBSCRIBE (SUB sockets): receive messages starting with `prefix`; empty = everything.
    public func subscribe(_ prefix: [UInt8] = []) throws(ZeroMQError) {
        try CZMQ.setOption(self.liveHandle("zmq_setsockopt"), ZMQ_SUBSCRIBE, .bytes(prefix), name: "ZMQ_SUBSCRIBE")
    }

    /// ZMQ_SUBSCRIBE (SUB sockets) with a UTF-8 topic prefix.
    public func subscribe(_ topic: String) throws(ZeroMQError) {
        try self.subscribe(Array(topic.utf8))
    }

    /// ZMQ_UNSUBSCRIBE (SUB sockets): removes one matching `subscribe`.
    public func unsubscribe(_ prefix: [UInt8] = []) throws(ZeroMQError) {
        try CZMQ.setOption(
            self.liveHandle("zmq_setsockopt"),
            ZMQ_UNSUBSCRIBE,
            .bytes(prefix),
            name: "ZMQ_UNSUBSCRIBE"
        )
    }

    /// ZMQ_UNSUBSCRIBE (SUB sockets) with a UTF-8 topic prefix.
    public func unsubscribe(_ topic: String) throws(ZeroMQError) {
        try self.unsubscribe(Array(topic.utf8))
    }

    /// ZMQ_RCVMORE: whether the last received frame has more frames following it.
    public var receiveMore: Bool {
        get throws(ZeroMQError) {
            try CZMQ.getInt32(self.liveHandle("zmq_getsockopt"), ZMQ_RCVMORE, name: "ZMQ_RCVMORE") != 0
        }
    }

    /// ZMQ_EVENTS: whether a receive (`.readable`) or send (`.writable`) would succeed without blocking now.
    public var events: PollEvents {
        get throws(ZeroMQError) {
            let raw = try CZMQ.getInt32(self.liveHandle("zmq_getsockopt"), ZMQ_EVENTS, name: "ZMQ_EVENTS")
            return PollEvents(rawValue: Int16(truncatingIfNeeded: raw))
        }
    }

    /// ZMQ_FD: a file descriptor that becomes readable when `events` may have changed (edge-triggered).
    public var fileDescriptor: Int32 {
        get throws(ZeroMQError) {
            try CZMQ.getInt32(self.liveHandle("zmq_getsockopt"), ZMQ_FD, name: "ZMQ_FD")
        }
    }

    // MARK: - Sending

    /// Sends one frame (`zmq_send`); `more: true` marks more frames of the same message to follow.
    public func send(_ bytes: [UInt8], more: Bool = false, flags: MessageFlags = []) throws(ZeroMQError) {
        let handle = try self.liveHandle("zmq_send")
        try CZMQ.send(handle, bytes, flags: more ? flags.rawValue | ZMQ_SNDMORE : flags.rawValue)
    }

    /// Sends one frame from any contiguous bytes (`Data`, `ArraySlice<UInt8>`, ...).
    public func send(_ bytes: some ContiguousBytes, more: Bool = false, flags: MessageFlags = []) throws(ZeroMQError) {
        let handle = try self.liveHandle("zmq_send")
        try CZMQ.send(handle, contiguous: bytes, flags: more ? flags.rawValue | ZMQ_SNDMORE : flags.rawValue)
    }

    /// Sends one frame holding the UTF-8 bytes of `text`.
    public func send(_ text: String, more: Bool = false, flags: MessageFlags = []) throws(ZeroMQError) {
        let handle = try self.liveHandle("zmq_send")
        try CZMQ.send(handle, utf8: text, flags: more ? flags.rawValue | ZMQ_SNDMORE : flags.rawValue)
    }

    /// Sends a multipart message atomically (at least one frame; empty frames allowed).
    ///
    /// With `.dontWait`, `.wouldBlock` can only come from the first frame: once it is queued, the rest are too.
    public func send(multipart frames: [[UInt8]], flags: MessageFlags = []) throws(ZeroMQError) {
        try CZMQ.sendMultipart(self.liveHandle("zmq_send"), frames, flags: flags.rawValue)
    }

    /// Sends `head` then `last` as one multipart message, as ``send(multipart:flags:)`` does with
    /// `head + [last]`, without building that array: a reply after its routing frames.
    ///
    /// The frames come in a concrete type, not `some Collection`: a generic here is not specialized
    /// in the caller's module, and reading each frame through the `Collection` witness cost a
    /// `malloc` per frame.
    public func send(multipart head: ArraySlice<[UInt8]>, last: [UInt8], flags: MessageFlags = []) throws(ZeroMQError) {
        try CZMQ.sendMultipart(self.liveHandle("zmq_send"), head, last: last, flags: flags.rawValue)
    }

    /// Sends `head` then `last` as one multipart message (see ``send(multipart:last:flags:)``).
    public func send(multipart head: [[UInt8]], last: [UInt8], flags: MessageFlags = []) throws(ZeroMQError) {
        try send(multipart: head[...], last: last, flags: flags)
    }

    /// Sends a multipart message from any collection of contiguous byte buffers (e.g. `[Data]`).
    public func send<Frames: Collection>(
        multipart frames: Frames,
        flags: MessageFlags = []
    ) throws(ZeroMQError) where Frames.Element: ContiguousBytes {
        try CZMQ.sendMultipart(self.liveHandle("zmq_send"), contiguous: frames, flags: flags.rawValue)
    }

    // MARK: - Receiving

    /// Receives one frame (`zmq_msg_recv`), copied once into an array you own; check `receiveMore` for more frames.
    public func receive(flags: MessageFlags = []) throws(ZeroMQError) -> [UInt8] {
        let handle = try self.liveHandle("zmq_msg_recv")
        _ = try CZMQ.receive(handle, into: &self.recycledFrame, flags: flags.rawValue, readMore: false)
        let frame = self.recycledFrame
        if frame.count > Self.recycledFrameLimit {
            self.recycledFrame = []
        }
        return frame
    }

    /// Receives one frame into `buffer`, replacing its contents and reusing its capacity; returns "more frames follow".
    @discardableResult
    public func receive(into buffer: inout [UInt8], flags: MessageFlags = []) throws(ZeroMQError) -> Bool {
        let handle = try self.liveHandle("zmq_msg_recv")
        return try CZMQ.receive(handle, into: &buffer, flags: flags.rawValue)
    }

    /// Receives every frame of the next message.
    ///
    /// With `.dontWait`, `.wouldBlock` can only come from the first frame (messages arrive whole).
    public func receiveMultipart(flags: MessageFlags = []) throws(ZeroMQError) -> [[UInt8]] {
        try CZMQ.receiveMultipart(self.liveHandle("zmq_msg_recv"), flags: flags.rawValue)
    }

    /// Receives every frame of the next message into `frames`, reusing the array and its frames' capacity.
    public func receiveMultipart(into frames: inout [[UInt8]], flags: MessageFlags = []) throws(ZeroMQError) {
        try CZMQ.receiveMultipart(self.liveHandle("zmq_msg_recv"), into: &frames, flags: flags.rawValue)
    }

    /// Receives the messages already queued, without blocking: at most `limit`, fewer when the
    /// queue runs dry or `handle` returns `false` (read no more). Each message's frames are in
    /// `frames` (reused between messages) while `handle` runs. Returns how many were received.
    ///
    /// The loop of a poll-driven reader: after `poll` says readable, take what is there, but a
    /// bounded amount, so the other sockets of the loop get their turn.
    @discardableResult
    public func receiveQueued(
        limit: Int, into frames: inout [[UInt8]], _ handle: ([[UInt8]]) -> Bool
    ) throws(ZeroMQError) -> Int {
        var received = 0
        while received < limit {
            do {
                try receiveMultipart(into: &frames, flags: .dontWait)
            } catch where error.code == .wouldBlock {
                break
            }
            received += 1
            guard handle(frames) else { break }
        }
        return received
    }
}

@available(*, unavailable, message: "libzmq sockets are not thread-safe; create and use a Socket on one thread")
extension Socket: Sendable {}
