import Foundation
import Synchronization
import Testing
import ZeroMQ

/// The transports every round-trip test runs over.
enum Transport: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case inproc
    case ipc
    case tcp

    var testDescription: String { self.rawValue }
}

/// A unique temporary directory for ipc:// endpoints, removed on deinit.
final class ScratchDirectory {
    let path: String

    init() throws {
        // Short paths: ipc endpoints must fit in sun_path (~107 bytes).
        let path = "/tmp/zmqt-\(UUID().uuidString.prefix(12))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        self.path = path
    }

    /// A fresh ipc:// endpoint inside the directory.
    func ipcEndpoint() -> String {
        "ipc://\(self.path)/\(UUID().uuidString.prefix(8)).ipc"
    }

    deinit {
        try? FileManager.default.removeItem(atPath: self.path)
    }
}

/// A unique inproc:// endpoint.
func uniqueInprocEndpoint(_ label: String = "t") -> String {
    "inproc://\(label)-\(UUID().uuidString)"
}

/// Binds `socket` on an ephemeral endpoint of `transport` and returns the endpoint peers should connect to.
func bindEphemeral(_ socket: Socket, _ transport: Transport, scratch: ScratchDirectory) throws -> String {
    switch transport {
    case .inproc:
        let endpoint = uniqueInprocEndpoint()
        try socket.bind(endpoint)
        return endpoint
    case .ipc:
        try socket.bind(scratch.ipcEndpoint())
        return try socket.lastEndpoint
    case .tcp:
        try socket.bind("tcp://127.0.0.1:*")
        return try socket.lastEndpoint
    }
}

/// Opens a socket whose blocking calls give up after `timeout`, so a failing test cannot hang.
func makeSocket(
    _ context: Context,
    _ type: SocketType,
    timeout: Duration = .seconds(5)
) throws -> Socket {
    let socket = try Socket(context: context, type: type)
    try socket.set(.receiveTimeout, timeout)
    try socket.set(.sendTimeout, timeout)
    return socket
}

/// Bytes of a UTF-8 string.
func bytes(_ text: String) -> [UInt8] {
    Array(text.utf8)
}

/// A value shared with a helper thread.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        self.mutex = Mutex(value)
    }

    var value: Value {
        get { self.mutex.withLock { $0 } }
        set { self.mutex.withLock { $0 = newValue } }
    }
}

/// Runs `body` on a new thread; returns whether it finished within `deadline`, and how long it took.
func runOnThread(
    deadline: Duration,
    _ body: @escaping @Sendable () -> Void
) -> (finished: Bool, elapsed: Duration) {
    let done = DispatchSemaphore(value: 0)
    let start = ContinuousClock.now
    let thread = Thread {
        body()
        done.signal()
    }
    thread.start()
    let seconds = Double(deadline.components.seconds) + Double(deadline.components.attoseconds) / 1e18
    let finished = done.wait(timeout: .now() + seconds) == .success
    return (finished, ContinuousClock.now - start)
}
