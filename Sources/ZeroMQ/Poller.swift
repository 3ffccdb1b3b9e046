internal import CZeroMQ

/// Readiness flags for polling (`ZMQ_POLLIN`, `ZMQ_POLLOUT`, `ZMQ_POLLERR`).
public struct PollEvents: OptionSet, Sendable, Hashable {
    /// The libzmq event bits.
    public let rawValue: Int16

    /// Creates events from libzmq bits.
    public init(rawValue: Int16) {
        self.rawValue = rawValue
    }

    /// At least one message (or bytes, for a file descriptor) can be received without blocking.
    public static let readable = PollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// At least one message can be sent without blocking.
    public static let writable = PollEvents(rawValue: Int16(ZMQ_POLLOUT))
    /// An error condition on a file descriptor (never set for ZeroMQ sockets).
    public static let error = PollEvents(rawValue: Int16(ZMQ_POLLERR))
}

/// Waits until any of a set of sockets (and plain file descriptors) is ready (`zmq_poll`).
///
/// Not thread-safe, like the sockets it holds. Register items once, then call `poll(timeout:)` in a loop:
/// ```swift
/// let poller = Poller()
/// let server = poller.register(router, for: .readable)
/// for ready in try poller.poll(timeout: .milliseconds(100)) where ready.index == server { ... }
/// ```
public final class Poller {
    /// One item that `poll(timeout:)` found ready.
    public struct Ready: Sendable, Hashable {
        /// The index returned by `register`.
        public let index: Int
        /// The events that are ready (a subset of the registered ones, plus `.error`).
        public let events: PollEvents

        /// Creates a value, e.g. to compare with `poll` results.
        public init(index: Int, events: PollEvents) {
            self.index = index
            self.events = events
        }
    }

    private var sockets: [Socket?] = []
    private var items = CZMQ.PollItems()

    /// Creates an empty poller.
    public init() {}

    /// The number of registered items.
    public var count: Int { self.items.count }

    /// Registers a socket for `events`; returns its index in `Ready.index`. The poller keeps the socket alive.
    @discardableResult
    public func register(_ socket: Socket, for events: PollEvents = .readable) -> Int {
        self.sockets.append(socket)
        self.items.appendSocket(events: events.rawValue)
        return self.items.count - 1
    }

    /// Registers a plain file descriptor for `events`; returns its index in `Ready.index`.
    @discardableResult
    public func register(fileDescriptor: Int32, for events: PollEvents = .readable) -> Int {
        self.sockets.append(nil)
        self.items.appendFileDescriptor(fileDescriptor, events: events.rawValue)
        return self.items.count - 1
    }

    /// Changes the events watched for the item at `index`.
    public func update(_ index: Int, for events: PollEvents) {
        self.items.setEvents(at: index, events.rawValue)
    }

    /// Removes every item.
    public func removeAll() {
        self.sockets.removeAll(keepingCapacity: true)
        self.items.removeAll()
    }

    /// Waits up to `timeout` (`nil` = forever, `.zero` = just check) and returns the ready items; empty on timeout.
    ///
    /// Throws `.socketClosed` if a registered socket was closed, `.contextTerminated` after `Context.shutdown()`.
    public func poll(timeout: Duration?) throws(ZeroMQError) -> [Ready] {
        for index in self.sockets.indices {
            if let socket = self.sockets[index] {
                self.items.setSocket(at: index, try socket.liveHandle("zmq_poll"))
            }
        }
        let milliseconds: Int
        if let timeout {
            milliseconds = Int(try timeout.zmqMilliseconds("zmq_poll timeout"))
        } else {
            milliseconds = -1
        }
        let readyCount = try self.items.poll(timeoutMilliseconds: milliseconds)
        var ready: [Ready] = []
        if readyCount > 0 {
            ready.reserveCapacity(readyCount)
            for index in 0..<self.items.count {
                let events = self.items.returnedEvents(at: index)
                if events != 0 {
                    ready.append(Ready(index: index, events: PollEvents(rawValue: events)))
                }
            }
        }
        return ready
    }
}

@available(*, unavailable, message: "a Poller holds non-thread-safe sockets; use it on one thread")
extension Poller: Sendable {}
