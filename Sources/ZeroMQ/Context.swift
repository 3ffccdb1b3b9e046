import Synchronization

/// A libzmq context: the container for sockets and their I/O threads. Thread-safe; create one per process.
///
/// Every `Socket` keeps its context alive, so `deinit` (which terminates) only runs once all sockets are gone.
/// Sockets are created with `defaultLinger` (0 unless you choose otherwise), so terminating never waits
/// forever for messages queued to an absent peer.
///
/// ```swift
/// let context = try Context()
/// let socket = try Socket(context: context, type: .router)
/// ```
public final class Context: Sendable {
    private struct State {
        var handle: ContextHandle?
        var isShutDown = false
    }

    private let state: Mutex<State>

    /// The ZMQ_LINGER given to each new socket; `nil` means wait forever (libzmq's own default, not recommended).
    public let defaultLinger: Duration?

    /// Creates a context with `ioThreads` background I/O threads (ZMQ_IO_THREADS) and the linger for new sockets.
    public init(ioThreads: Int = 1, defaultLinger: Duration? = .zero) throws(ZeroMQError) {
        if let defaultLinger, defaultLinger < .zero {
            throw CZMQ.invalidArgument("Context.init", "negative defaultLinger")
        }
        self.state = Mutex(State(handle: try CZMQ.contextNew(ioThreads: ioThreads)))
        self.defaultLinger = defaultLinger
    }

    deinit {
        self.terminate()
    }

    /// True once `shutdown()` or `terminate()` was called; new sockets then fail with `.contextTerminated`.
    public var isShutDown: Bool {
        self.state.withLock { $0.isShutDown || $0.handle == nil }
    }

    /// Interrupts every blocking call on this context's sockets with `.contextTerminated`; never blocks.
    ///
    /// Owners should then close their sockets; call `terminate()` to free the context.
    public func shutdown() {
        self.state.withLock { state in
            guard let handle = state.handle, !state.isShutDown else { return }
            state.isShutDown = true
            CZMQ.contextShutdown(handle)
        }
    }

    /// Interrupts blocking calls, waits until every socket of this context is closed, then frees it. Idempotent.
    ///
    /// Blocks while a socket is still open (closing is the job of the thread that owns it; `Socket.close()`
    /// or its `deinit`), and at most `linger` per closed socket with unsent messages.
    public func terminate() {
        let handle = self.state.withLock { state -> ContextHandle? in
            let handle = state.handle
            state.handle = nil
            state.isShutDown = true
            return handle
        }
        if let handle {
            CZMQ.contextTerminate(handle)
        }
    }

    /// Opens a libzmq socket, atomically with respect to `terminate()`.
    func openSocket(type: SocketType) throws(ZeroMQError) -> SocketHandle {
        try self.state.withLock { (state: inout State) throws(ZeroMQError) -> SocketHandle in
            guard let handle = state.handle else {
                throw CZMQ.contextTerminatedError("zmq_socket")
            }
            return try CZMQ.socketOpen(handle, type: type.rawType)
        }
    }
}
