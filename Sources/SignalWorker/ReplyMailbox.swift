import SignalProtocol
#if canImport(Glibc)
import WorkerOperations
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A reply ready to go out: the routing frames and the reply, which the socket thread encodes as
/// it sends it (the apply loop, the worker's busiest thread, only hands it over).
struct OutgoingReply: Sendable {
    /// Routing frames of the request (routing id, and a REQ client's empty delimiter).
    var envelope: [[UInt8]]
    /// The v1 reply.
    var reply: Reply
}

/// The hand-back from the apply loop to the socket thread, which alone may touch the socket.
///
/// Posting wakes the socket thread through a pipe that its poller watches, so a reply
/// leaves as soon as its transaction committed (no polling interval adds latency).
final class ReplyMailbox: Sendable {
    private struct State {
        var replies: [OutgoingReply] = []
        var signalled = false
    }

    private let state = Mutex(State())
    /// Read end, watched by the socket thread's poller.
    let wakeDescriptor: Int32
    private let writeDescriptor: Int32

    /// Creates the mailbox and its wake-up pipe.
    init() throws(WorkerError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw WorkerError(.socket, "cannot create the wake-up pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        wakeDescriptor = fds[0]
        writeDescriptor = fds[1]
    }

    deinit {
        close(wakeDescriptor)
        close(writeDescriptor)
    }

    /// Queues replies and wakes the socket thread.
    func post(_ replies: [OutgoingReply]) {
        guard !replies.isEmpty else { return }
        let mustSignal = state.withLock { state -> Bool in
            // Handed over whole when nothing waits (the usual case): no copy of each reply.
            if state.replies.isEmpty { state.replies = replies } else { state.replies += replies }
            defer { state.signalled = true }
            return !state.signalled
        }
        if mustSignal { wake() }
    }

    /// Wakes the socket thread without a reply (to notice a state change such as shutdown).
    func wake() {
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)  // a full pipe already means "awake": ignoring EAGAIN is right
    }

    /// Takes every queued reply; called by the socket thread when the pipe is readable.
    func takeAll() -> [OutgoingReply] {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(wakeDescriptor, &buffer, buffer.count) > 0 {}
        return state.withLock { state in
            state.signalled = false
            var taken: [OutgoingReply] = []
            swap(&taken, &state.replies)
            return taken
        }
    }
}
