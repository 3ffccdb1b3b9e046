import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A TCP forwarder on 127.0.0.1 that can be stopped (every connection reset, the port
/// closed) and started again on the same port: a database outage, on demand.
final class TCPProxy: @unchecked Sendable {
    struct SocketError: Error, CustomStringConvertible {
        var call: String
        var code: Int32
        var description: String { "\(call) failed: \(String(cString: strerror(code)))" }
    }

    let targetPort: Int
    /// The listening port (fixed after the first start).
    private(set) var port = 0

    private let lock = NSLock()
    private var listener: Int32 = -1
    private var listenerClosed: DispatchSemaphore?
    private var connections: Set<Int32> = []

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

    /// Starts listening (again) and forwarding.
    func start() throws {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw SocketError(call: "socket", code: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.address(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let code = errno
            close(fd)
            throw SocketError(call: "bind/listen", code: code)
        }
        if port == 0 {
            var actual = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &actual) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            port = Int(UInt16(bigEndian: actual.sin_port))
        }
        let closed = DispatchSemaphore(value: 0)
        lock.withLock {
            listener = fd
            listenerClosed = closed
        }
        let thread = Thread { [self] in acceptLoop(fd, closed: closed) }
        thread.start()
    }

    /// Closes the port and resets every forwarded connection; returns once the port is free.
    func stop() {
        // Under the lock: a connection's sockets are closed under the same lock, so no
        // descriptor here can have been closed and reused meanwhile.
        let (fd, closed) = lock.withLock { () -> (Int32, DispatchSemaphore?) in
            let result = (listener, listenerClosed)
            listener = -1
            listenerClosed = nil
            for connection in connections { shutdown(connection, Int32(SHUT_RDWR)) }
            return result
        }
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }  // wakes accept()
        closed?.wait()
    }

    private func acceptLoop(_ fd: Int32, closed: DispatchSemaphore) {
        defer {
            close(fd)
            closed.signal()
        }
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let stillListening = lock.withLock { listener == fd }
            guard stillListening, let upstream = connectToTarget() else {
                close(client)
                if !stillListening { return }
                continue
            }
            // Registered only while still listening: a stop() that ran meanwhile has already
            // reset the connections it knew, and this one must not outlive it.
            let registered = lock.withLock { () -> Bool in
                guard listener == fd else { return false }
                connections.insert(client)
                connections.insert(upstream)
                return true
            }
            guard registered else {
                close(client)
                close(upstream)
                return
            }
            let pair = Pair(proxy: self, a: client, b: upstream)
            Thread { pair.pump(from: client, to: upstream) }.start()
            Thread { pair.pump(from: upstream, to: client) }.start()
        }
    }

    private func connectToTarget() -> Int32? {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
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

    fileprivate func finished(_ a: Int32, _ b: Int32) {
        lock.withLock {
            connections.remove(a)
            connections.remove(b)
            close(a)
            close(b)
        }
    }

    /// One forwarded connection; the second pump to finish closes both sockets.
    private final class Pair: @unchecked Sendable {
        let proxy: TCPProxy
        let a: Int32
        let b: Int32
        private let lock = NSLock()
        private var running = 2

        init(proxy: TCPProxy, a: Int32, b: Int32) {
            self.proxy = proxy
            self.a = a
            self.b = b
        }

        func pump(from source: Int32, to destination: Int32) {
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            copying: while true {
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
            shutdown(source, Int32(SHUT_RDWR))
            shutdown(destination, Int32(SHUT_RDWR))
            let last = lock.withLock {
                running -= 1
                return running == 0
            }
            if last { proxy.finished(a, b) }
        }
    }
}

/// A TCP port on 127.0.0.1 where nothing listens (bound, then released).
func unusedTCPPort() throws -> Int {
    let proxy = TCPProxy(targetPort: 1)
    try proxy.start()
    let port = proxy.port
    proxy.stop()
    return port
}
