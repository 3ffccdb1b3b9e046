import SignalInbox
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A TCP server on 127.0.0.1 that is not PostgreSQL: what a client meets when a database host
/// is half there (a hung server, a load balancer without a backend, a port taken by something else).
final class StubTCPServer: @unchecked Sendable {
    enum Behaviour {
        /// Never accepts: the kernel completes the handshake (the listen backlog), the client
        /// sends its startup message, and no answer ever comes.
        case silent
        /// Accepts and closes every connection at once.
        case acceptAndClose
    }

    let port: Int
    private let fd: Int32
    private let stopped = Mutex(false)
    private let acceptLoopEnded = DispatchSemaphore(value: 0)
    private let behaviour: Behaviour

    init(_ behaviour: Behaviour) throws {
        (fd, port) = try TCPProxy.listeningSocketOnFreePort()
        self.behaviour = behaviour
        guard behaviour == .acceptAndClose else { return }
        let thread = Thread { [self] in
            while !stopped.withLock({ $0 }) {
                guard TCPProxy.readable(fd) else { continue }
                let client = accept(fd, nil, nil)
                if client >= 0 { close(client) }
            }
            acceptLoopEnded.signal()
        }
        thread.name = "stub-tcp-server"
        thread.start()
    }

    /// Closes the port (connections still in the backlog are reset).
    func stop() {
        let wasStopped = stopped.withLock { stopped in
            defer { stopped = true }
            return stopped
        }
        guard !wasStopped else { return }
        if behaviour == .acceptAndClose { acceptLoopEnded.wait() }
        close(fd)
    }

    deinit { stop() }
}

/// Whether `task` ends within `limit`; returns after at most `limit` even if it never ends.
func ends<Success: Sendable>(_ task: Task<Success, Never>, within limit: Duration) async -> Bool {
    let ended = Mutex(false)
    Task {
        _ = await task.value
        ended.withLock { $0 = true }
    }
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if ended.withLock({ $0 }) { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return ended.withLock { $0 }
}
