import Foundation
import Synchronization
import ZeroMQ

/// The life of a thread that owns ZeroMQ sockets (libzmq sockets are not thread-safe, so they
/// are created, used and closed on one thread): async code starts it and waits until its
/// sockets listen, and later waits until it has closed them and terminated ``context``.
///
/// Shared by the worker's ``SocketLoop`` and the broker's ``BrokerLoop``; what the thread does
/// in between is theirs.
public final class SocketThread: Sendable {
    /// The context the thread's sockets live in; the thread terminates it before ``finished()``.
    public let context: Context

    private let name: String
    private let exit = Mutex(ExitState())

    private struct ExitState: Sendable {
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    /// Creates the context (one I/O thread; `linger` for every socket in it). `name` is the
    /// thread's name for the operating system (``ThreadName``: ASCII, at most 15 bytes).
    public init(name: String, linger: Duration) throws(WorkerError) {
        self.name = name
        do {
            context = try Context(ioThreads: 1, defaultLinger: linger)
        } catch {
            throw WorkerError(.socket, "cannot create a ZeroMQ context: \(error)")
        }
    }

    /// Runs `main` on a new thread and returns what it reports through `started` (once its
    /// sockets listen), or throws the error it reports instead. `main` must call ``finished()``
    /// when it ends, after reporting.
    public func start<Started: Sendable>(
        _ main: @escaping @Sendable (_ started: @escaping @Sendable (Result<Started, WorkerError>) -> Void) -> Void
    ) async throws(WorkerError) -> Started {
        let result: Result<Started, WorkerError> = await withCheckedContinuation { continuation in
            let thread = Thread { [name] in
                ThreadName.setCurrent(name)
                main { continuation.resume(returning: $0) }
            }
            thread.start()
        }
        return try result.get()
    }

    /// Called by the thread as its last step: its sockets are closed and the context terminated.
    public func finished() {
        let waiter = exit.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits until the thread called ``finished()``.
    public func waitForExit() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = exit.withLock { state -> Bool in
                if state.finished { return true }
                state.waiter = continuation
                return false
            }
            if finished { continuation.resume() }
        }
    }
}
