import SignalInbox
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A TCP forwarder on 127.0.0.1 that can be stopped (every connection closed, the port
/// closed) and started again on the same port: a database outage, on demand.
///
/// No thread here ever blocks without a bound: the accept loop and the pumps poll every
/// 50 ms and look at a stop flag, instead of relying on `shutdown()` to wake a blocked
/// `accept()` or `read()` (which not every kernel or sandbox does for a listening socket),
/// and `stop()` waits at most 10 s for them. Two CI runs hung for good in a test that
/// stopped this proxy; a stop that cannot return is now a thrown error.
final class TCPProxy: @unchecked Sendable {
    struct SocketError: Error, CustomStringConvertible {
        var call: String
        var code: Int32
        var description: String { "\(call) failed: \(String(cString: strerror(code)))" }
    }

    struct StopTimeout: Error, CustomStringConvertible {
        var description: String { "the proxy's threads did not end within 10 s of stop()" }
    }

    let targetPort: Int
    /// The listening port (fixed after the first start).
    private(set) var port = 0

    private static let pollMilliseconds: Int32 = 50

    private let lock = NSLock()
    /// Incremented by every `stop()`: a thread of an older generation ends.
    private var generation = 0
    private var running = false
    /// Threads of the current generation still running (the accept loop and two per connection).
    private var threads = 0
    private let threadsEnded = NSCondition()
    /// While set, the pumps forward nothing and close nothing: every connection goes silent.
    private var frozen = false

    init(targetPort: Int) {
        self.targetPort = targetPort
    }

    private static func address(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private static func makeSocket() -> Int32 {
        #if canImport(Glibc)
            socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            socket(AF_INET, SOCK_STREAM, 0)
        #endif
    }

    /// Ports the first `start()` picks from: below Linux's ephemeral range (32768-60999).
    /// A port from that range, released by `stop()`, can be handed to another socket as its
    /// local port, and the next `start()` then fails to bind it (EADDRINUSE); a CI run hung in
    /// the test's clean-up after such a failure. A port below it is only ever bound on purpose.
    private static let candidatePorts = 20_000..<32_000

    /// Starts listening (again, on the same port) and forwarding.
    func start() throws {
        let fd: Int32
        if port == 0 {
            (fd, port) = try Self.listeningSocketOnFreePort()
        } else {
            fd = try Self.listeningSocket(port: port)
        }
        let current = lock.withLock { () -> Int in
            running = true
            return generation
        }
        spawn("tcp-proxy-accept", generation: current) { [self] in acceptLoop(fd, generation: current) }
    }

    /// A socket listening on 127.0.0.1 on a free port from ``candidatePorts``.
    static func listeningSocketOnFreePort() throws -> (fd: Int32, port: Int) {
        var lastError = SocketError(call: "bind", code: 0)
        for _ in 0..<100 {
            let candidate = Int.random(in: candidatePorts)
            do {
                return (try listeningSocket(port: candidate), candidate)
            } catch let error as SocketError {
                lastError = error
            }
        }
        throw lastError
    }

    /// A socket listening on 127.0.0.1:`port`.
    static func listeningSocket(port: Int) throws -> Int32 {
        let fd = makeSocket()
        guard fd >= 0 else { throw SocketError(call: "socket", code: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = address(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let code = errno
            close(fd)
            throw SocketError(call: "bind/listen on port \(port)", code: code)
        }
        return fd
    }

    /// Closes the port and every forwarded connection; returns once all of this proxy's
    /// threads ended (so the port is free), or throws after 10 s.
    func stop() throws {
        let wasRunning = lock.withLock { () -> Bool in
            defer {
                generation += 1
                running = false
            }
            return running
        }
        guard wasRunning else { return }
        threadsEnded.lock()
        defer { threadsEnded.unlock() }
        let deadline = Date().addingTimeInterval(10)
        while lock.withLock({ threads }) > 0 {
            guard threadsEnded.wait(until: deadline) else { throw StopTimeout() }
        }
    }

    /// Every forwarded connection goes silent (bytes are held, nothing is closed) until ``thaw()``:
    /// a server or network that stops answering in the middle of a transaction.
    func freeze() { lock.withLock { frozen = true } }

    /// Forwarding resumes.
    func thaw() { lock.withLock { frozen = false } }

    private var isFrozen: Bool { lock.withLock { frozen } }

    private func isCurrent(_ generation: Int) -> Bool {
        lock.withLock { running && self.generation == generation }
    }

    /// Starts a counted thread; a thread of a generation that already ended does not start.
    private func spawn(_ name: String, generation: Int, _ body: @escaping @Sendable () -> Void) {
        lock.withLock { threads += 1 }
        let thread = Thread { [self] in
            body()
            threadsEnded.lock()
            lock.withLock { threads -= 1 }
            threadsEnded.broadcast()
            threadsEnded.unlock()
        }
        thread.name = name
        thread.start()
    }

    /// Waits up to one poll interval for `fd` to be readable; `false` on a timeout.
    static func readable(_ fd: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, pollMilliseconds) > 0
    }

    private func acceptLoop(_ fd: Int32, generation: Int) {
        defer { close(fd) }
        while isCurrent(generation) {
            guard Self.readable(fd) else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }  // EINTR, ECONNABORTED, ...: poll again
            guard isCurrent(generation), let upstream = connectToTarget() else {
                close(client)
                continue
            }
            let pair = Pair(a: client, b: upstream)
            spawn("tcp-proxy-pump", generation: generation) { [self] in
                pair.pump(from: client, to: upstream, paused: { isFrozen }) { isCurrent(generation) }
            }
            spawn("tcp-proxy-pump", generation: generation) { [self] in
                pair.pump(from: upstream, to: client, paused: { isFrozen }) { isCurrent(generation) }
            }
        }
    }

    private func connectToTarget() -> Int32? {
        let fd = Self.makeSocket()
        guard fd >= 0 else { return nil }
        var address = Self.address(port: targetPort)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// One forwarded connection; the second pump to finish closes both sockets.
    private final class Pair: @unchecked Sendable {
        let a: Int32
        let b: Int32
        private let lock = NSLock()
        private var running = 2

        init(a: Int32, b: Int32) {
            self.a = a
            self.b = b
            // A peer that stops reading fails a send after 5 s instead of blocking it for good.
            var limit = timeval(tv_sec: 5, tv_usec: 0)
            for fd in [a, b] { setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size)) }
        }

        /// Copies `source` to `destination` until either side closes or `keepGoing` says stop;
        /// reads nothing while `paused` says so.
        func pump(from source: Int32, to destination: Int32, paused: () -> Bool, while keepGoing: () -> Bool) {
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            copying: while keepGoing() {
                if paused() {
                    usleep(UInt32(TCPProxy.pollMilliseconds) * 1000)
                    continue
                }
                guard TCPProxy.readable(source) else { continue }
                let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                var offset = 0
                while offset < count {
                    let written = buffer.withUnsafeBytes {
                        send(destination, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL))
                    }
                    if written < 0, errno == EINTR { continue }
                    if written <= 0 { break copying }
                    offset += written
                }
            }
            // Wakes the other pump at once where the kernel does; its poll notices otherwise.
            shutdown(source, Int32(SHUT_RDWR))
            shutdown(destination, Int32(SHUT_RDWR))
            let last = lock.withLock {
                running -= 1
                return running == 0
            }
            if last {
                close(a)
                close(b)
            }
        }
    }
}

/// A TCP port on 127.0.0.1 where nothing listens (bound, then released).
func unusedTCPPort() throws -> Int {
    let proxy = TCPProxy(targetPort: 1)
    try proxy.start()
    let port = proxy.port
    try proxy.stop()
    return port
}
