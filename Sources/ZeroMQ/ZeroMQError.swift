/// An error reported by libzmq (or by this wrapper on libzmq's behalf), with the errno and the call that failed.
///
/// `description` names the operation, the libzmq message and the errno; it never contains message payloads
/// or key material. `debugDescription` spells out every field.
public struct ZeroMQError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// A stable, matchable classification of a ZeroMQ error.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case wouldBlock
            case timedOut
            case contextTerminated
            case invalidState
            case hostUnreachable
            case socketClosed
            case invalidArgument
            case protocolNotSupported
            case addressInUse
            case addressNotAvailable
            case notSupported
            case other
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// A `.dontWait` call could not complete right now (EAGAIN with `ZMQ_DONTWAIT`).
        public static let wouldBlock = Code(.wouldBlock)
        /// A blocking call hit its `receiveTimeout`/`sendTimeout` (EAGAIN without `ZMQ_DONTWAIT`).
        public static let timedOut = Code(.timedOut)
        /// The socket's context was shut down or terminated (ETERM); close the socket.
        public static let contextTerminated = Code(.contextTerminated)
        /// The operation is not valid in the socket's current state (EFSM), e.g. a REQ socket sending twice.
        public static let invalidState = Code(.invalidState)
        /// The message cannot be routed (EHOSTUNREACH), e.g. a ROUTER with `routerMandatory` and an unknown routing id.
        public static let hostUnreachable = Code(.hostUnreachable)
        /// The socket was already closed (ENOTSOCK).
        public static let socketClosed = Code(.socketClosed)
        /// An argument or option value was rejected (EINVAL).
        public static let invalidArgument = Code(.invalidArgument)
        /// The endpoint's transport is unknown or not compiled in (EPROTONOSUPPORT).
        public static let protocolNotSupported = Code(.protocolNotSupported)
        /// The endpoint is already bound (EADDRINUSE).
        public static let addressInUse = Code(.addressInUse)
        /// The endpoint's address is not local or not available (EADDRNOTAVAIL).
        public static let addressNotAvailable = Code(.addressNotAvailable)
        /// The operation is not supported by this socket type or build (ENOTSUP).
        public static let notSupported = Code(.notSupported)
        /// Any other errno; inspect `ZeroMQError.errno`.
        public static let other = Code(.other)

        /// The code's name, e.g. `timedOut`.
        public var description: String {
            switch self.base {
            case .wouldBlock: "wouldBlock"
            case .timedOut: "timedOut"
            case .contextTerminated: "contextTerminated"
            case .invalidState: "invalidState"
            case .hostUnreachable: "hostUnreachable"
            case .socketClosed: "socketClosed"
            case .invalidArgument: "invalidArgument"
            case .protocolNotSupported: "protocolNotSupported"
            case .addressInUse: "addressInUse"
            case .addressNotAvailable: "addressNotAvailable"
            case .notSupported: "notSupported"
            case .other: "other"
            }
        }
    }

    /// The classification of this error.
    public let code: Code
    /// The errno reported by `zmq_errno()` (or set by the wrapper, e.g. ENOTSOCK for a closed socket).
    public let errno: Int32
    /// The failed call, e.g. `zmq_bind(tcp://127.0.0.1:*)` or `zmq_setsockopt(ZMQ_LINGER)`.
    public let operation: String

    /// The libzmq text for `errno` (`zmq_strerror`).
    public var message: String {
        CZMQ.errorMessage(self.errno)
    }

    /// Creates an error; `code` is normally derived from `errno` by the call helper.
    init(code: Code, errno: Int32, operation: String) {
        self.code = code
        self.errno = errno
        self.operation = operation
    }

    /// Operation, libzmq message, code and errno; never payloads.
    public var description: String {
        "\(self.operation) failed: \(self.message) (\(self.code), errno \(self.errno))"
    }

    /// Every field, for logs and debugging.
    public var debugDescription: String {
        "ZeroMQError(code: .\(self.code), errno: \(self.errno), operation: \"\(self.operation)\", message: \"\(self.message)\")"
    }
}
