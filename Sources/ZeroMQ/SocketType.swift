internal import CZeroMQ

/// The ZeroMQ socket patterns (`zmq_socket` types).
public enum SocketType: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// ZMQ_REQ: strict send/receive alternation to REP or ROUTER peers.
    case req
    /// ZMQ_REP: strict receive/send alternation for REQ or DEALER peers.
    case rep
    /// ZMQ_DEALER: asynchronous, round-robin outgoing, fair-queued incoming.
    case dealer
    /// ZMQ_ROUTER: asynchronous, each message prefixed with the peer's routing id.
    case router
    /// ZMQ_PUSH: outgoing pipeline stage (round-robin).
    case push
    /// ZMQ_PULL: incoming pipeline stage (fair-queued).
    case pull
    /// ZMQ_PUB: publish to every subscriber.
    case pub
    /// ZMQ_SUB: receive published messages matching a `subscribe` prefix.
    case sub
    /// ZMQ_XPUB: PUB that also receives subscription messages.
    case xpub
    /// ZMQ_XSUB: SUB that sends subscriptions as messages.
    case xsub
    /// ZMQ_PAIR: exclusive one-to-one connection.
    case pair
    /// ZMQ_STREAM: raw TCP peers.
    case stream

    /// The libzmq constant for this type.
    var rawType: Int32 {
        switch self {
        case .req: ZMQ_REQ
        case .rep: ZMQ_REP
        case .dealer: ZMQ_DEALER
        case .router: ZMQ_ROUTER
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .xpub: ZMQ_XPUB
        case .xsub: ZMQ_XSUB
        case .pair: ZMQ_PAIR
        case .stream: ZMQ_STREAM
        }
    }

    /// The libzmq name, e.g. `ROUTER`.
    public var description: String {
        switch self {
        case .req: "REQ"
        case .rep: "REP"
        case .dealer: "DEALER"
        case .router: "ROUTER"
        case .push: "PUSH"
        case .pull: "PULL"
        case .pub: "PUB"
        case .sub: "SUB"
        case .xpub: "XPUB"
        case .xsub: "XSUB"
        case .pair: "PAIR"
        case .stream: "STREAM"
        }
    }
}
