#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether a ZeroMQ endpoint can only be reached from this machine (`ipc://`, `inproc://`,
/// TCP on `localhost`, `lo`, an address in 127.0.0.0/8 or `::1`); anything else — `*`,
/// `0.0.0.0`, another address, an interface or a host name — is taken as exposed to the network.
public func endpointIsLocal(_ endpoint: String) -> Bool {
    if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
    guard endpoint.hasPrefix("tcp://") else { return false }
    let address = endpoint.dropFirst("tcp://".count)
    let host: Substring
    if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
        host = address[address.index(after: address.startIndex)..<close]
    } else {
        host = address.split(separator: ":", maxSplits: 1).first ?? ""
    }
    return hostIsLoopback(String(host))
}

/// Whether `host` names the loopback interface: `localhost`, `lo`, an IPv4 literal in
/// 127.0.0.0/8 or the IPv6 literal `::1`. A host *name* such as `127.example.com` is not.
public func hostIsLoopback(_ host: String) -> Bool {
    if host == "localhost" || host == "lo" { return true }
    var ipv4 = in_addr()
    if inet_pton(AF_INET, host, &ipv4) == 1 {
        return UInt32(bigEndian: ipv4.s_addr) >> 24 == 127
    }
    var ipv6 = in6_addr()
    if inet_pton(AF_INET6, host, &ipv6) == 1 {
        let bytes = withUnsafeBytes(of: ipv6) { Array($0) }
        return bytes == [UInt8](repeating: 0, count: 15) + [1]
    }
    return false
}

/// Safe by default: a socket reachable from the network accepts peers only with CURVE, unless
/// the operator opted out by name (`--allow-unauthenticated`).
public enum BindPolicy {
    /// The flag and variable that allow an unauthenticated network bind.
    public static let optOut = "--allow-unauthenticated (SIGNAL_WORKER_ALLOW_UNAUTHENTICATED=1)"

    /// Throws when `endpoint` is reachable from the network, has no CURVE and was not allowed.
    ///
    /// - Parameters:
    ///   - role: what binds, for the message ("the worker's --bind", "the broker's --frontend").
    ///   - curveOptions: the options that turn CURVE on for this socket, or `nil` when it has none.
    ///   - exposure: who could do what if strangers connected.
    public static func check(
        _ endpoint: String, role: String, curve: Bool, allowUnauthenticated: Bool, curveOptions: String?,
        exposure: String
    ) throws(WorkerError) {
        guard !curve, !allowUnauthenticated, !endpointIsLocal(endpoint) else { return }
        let remedy =
            curveOptions.map { "turn on CURVE (\($0); `signal-worker keygen` writes the keys), or " } ?? ""
        throw WorkerError(
            .configuration,
            "refusing to bind \(role) \(endpoint) without authentication: it is reachable from the network and "
                + "\(exposure). Bind a loopback address (tcp://127.0.0.1:PORT) or an ipc:// path, \(remedy)pass "
                + "\(optOut) if a firewall or a private network already keeps strangers out.")
    }
}
