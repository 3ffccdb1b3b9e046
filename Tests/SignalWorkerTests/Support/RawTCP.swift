import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A plain blocking TCP connection for tests that speak below ZeroMQ or HTTP libraries: half-sent
/// requests, hand-made ZMTP frames. Sends never raise SIGPIPE; errors come back as `false`.
final class RawTCPConnection {
    private(set) var descriptor: Int32

    /// Connects to `host:port` (IPv4) within `timeout`, or throws.
    init(host: String, port: Int, timeout: Duration = .seconds(10)) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket(): \(String(cString: strerror(errno)))") }
        // Linux applies SO_SNDTIMEO to connect(): a listener that stopped accepting fails the
        // test instead of hanging it.
        var limit = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            close()
            throw TestFailure("connect(\(host):\(port)): \(reason)")
        }
    }

    /// `host` and `port` of a `tcp://host:port` endpoint or a `http://host:port/...` URL.
    static func hostAndPort(_ endpoint: String) -> (String, Int)? {
        guard let schemeEnd = endpoint.range(of: "://") else { return nil }
        let authority = endpoint[schemeEnd.upperBound...].prefix { $0 != "/" }
        guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]) else {
            return nil
        }
        return (String(authority[..<colon]), port)
    }

    deinit { close() }

    /// Closes the connection (idempotent).
    func close() {
        if descriptor >= 0 {
            closeDescriptor(descriptor)
            descriptor = -1
        }
    }

    /// Sends every byte; `false` when the peer is gone (reset, closed).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { sendNoSignal(descriptor, $0.baseAddress, $0.count) }
            if sent < 0, errno == EINTR { continue }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }

    /// Receives exactly `count` bytes, or `nil` if the peer closes first or `timeout` passes.
    func receive(exactly count: Int, timeout: Duration) -> [UInt8]? {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        while received.count < count {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return nil }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(left.components.seconds * 1_000 + 1, 1_000)))
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { continue }
            let wanted = count - received.count
            let got = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, wanted, 0) }
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { return nil }
            received += buffer[0..<got]
        }
        return received
    }

    /// Waits up to `timeout` for the peer to close the connection, discarding what it sends;
    /// `true` when it did (end of file or reset).
    func waitForPeerClose(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return false }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(min(left.components.seconds * 1_000 + left.components.attoseconds / 1_000_000_000_000_000 + 1, 1_000))
            let ready = poll(&poller, 1, milliseconds)
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { return true }
        }
    }
}

private func closeDescriptor(_ descriptor: Int32) {
    _ = close(descriptor)
}

private func sendNoSignal(_ descriptor: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    send(descriptor, bytes, count, Int32(MSG_NOSIGNAL))
    #else
    send(descriptor, bytes, count, 0)
    #endif
}

/// Hand-made ZMTP 3.0 (RFC 23) bytes, for a peer that does what libzmq's own sockets never would.
enum ZMTP {
    /// The 64-byte greeting of a client offering `mechanism` ("NULL", "CURVE").
    static func greeting(mechanism: String) -> [UInt8] {
        var bytes: [UInt8] = [0xFF] + [UInt8](repeating: 0, count: 8) + [0x7F, 3, 0]
        var name = Array(mechanism.utf8)
        name += [UInt8](repeating: 0, count: 20 - name.count)
        bytes += name + [0] + [UInt8](repeating: 0, count: 31)
        return bytes
    }

    /// Sends a NULL-mechanism greeting and READY (a DEALER), then reads the server's greeting and
    /// READY: only then may message frames follow (before, libzmq takes them for a protocol error).
    static func nullHandshake(_ connection: RawTCPConnection, timeout: Duration = .seconds(10)) -> Bool {
        guard connection.send(greeting(mechanism: "NULL") + readyDealer),
            connection.receive(exactly: 64, timeout: timeout) != nil,
            let header = connection.receive(exactly: 2, timeout: timeout), header[0] == 0x04,
            let ready = connection.receive(exactly: Int(header[1]), timeout: timeout)
        else { return false }
        return ready.starts(with: [5] + Array("READY".utf8))
    }

    /// A NULL-mechanism READY command announcing a DEALER.
    static var readyDealer: [UInt8] {
        let body: [UInt8] = [5] + Array("READY".utf8) + [11] + Array("Socket-Type".utf8) + [0, 0, 0, 6] + Array("DEALER".utf8)
        return [0x04, UInt8(body.count)] + body
    }

    /// A command frame with `name` and `size` bytes in all (a malformed handshake command).
    static func command(_ name: String, size: Int) -> [UInt8] {
        var body: [UInt8] = [UInt8(name.utf8.count)] + Array(name.utf8)
        body += [UInt8](repeating: 0x5A, count: max(0, size - body.count))
        return [0x04, UInt8(body.count)] + body
    }

    /// A long message frame of `size` bytes with MORE set: another frame of the message follows.
    static func moreFrame(size: Int) -> [UInt8] {
        var header: [UInt8] = [0x03]  // MORE | LONG
        for shift in stride(from: 56, through: 0, by: -8) { header.append(UInt8(truncatingIfNeeded: UInt64(size) >> UInt64(shift))) }
        return header + [UInt8](repeating: 0x78, count: size)
    }
}
