import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `--metrics-bind` against clients that open connections and never finish a request: the
/// endpoint caps its connections and closes slow ones, so ZeroMQ clients are still served
/// promptly, the worker stays idle, and it never runs out of file descriptors.
@Suite("metrics endpoint under a slowloris")
struct MetricsSlowlorisTests {
    static let connections = 300

    @Test("300 half-open HTTP connections: pings still answer within 50 ms, the worker's CPU stays low, and the connections are closed")
    func halfOpenConnectionsAreBounded() async throws {
        let database = try await SQLiteFixture.make("slowloris-db")
        defer { database.remove() }
        // A descriptor limit below the attack's size: without a cap, the worker would run out
        // (and accept loops spin on EMFILE).
        let worker = try await WorkerProcess.start(WorkerProcess.serveArguments(store: database.storeURL), openFilesLimit: 256)
        defer { worker.child.killNow() }
        let metricsURL = try #require(worker.metricsURL)
        let (host, port) = try #require(RawTCPConnection.hostAndPort(metricsURL))

        // One thread holds the connections and pings (raw sockets and ZeroMQ sockets stay on it).
        let pid = worker.pid
        let endpoint = worker.endpoint
        let (roundTrips, cores, stillOpen) = try await onThread("slowloris") { () throws -> ([Duration], Double, Int) in
            let half = try (0..<Self.connections).map { _ in
                let connection = try RawTCPConnection(host: host, port: port)
                _ = connection.send(Array("GET /metr".utf8))  // a request line that never ends
                return connection
            }
            defer { for connection in half { connection.close() } }

            let cpuBefore = try cpuSeconds(of: pid)
            let started = ContinuousClock.now
            let client = try TestClient(endpoint)
            defer { client.close() }
            var roundTrips: [Duration] = []
            // Pings spread over about two seconds, the CPU window.
            while roundTrips.count < 5 || started.duration(to: .now) < .seconds(2) {
                let sent = ContinuousClock.now
                guard try client.blockingRequest(Messages().ping(), timeout: .seconds(5)).isOK("pong") else {
                    throw TestFailure("a ping was not answered pong")
                }
                roundTrips.append(sent.duration(to: .now))
                Thread.sleep(forTimeInterval: 0.1)
            }
            let cores = (try cpuSeconds(of: pid) - cpuBefore) / seconds(started.duration(to: .now))

            // Every half-open connection is closed: at once past the cap, after the request-head
            // timeout (5 s) within it.
            let stillOpen = half.filter { !$0.waitForPeerClose(timeout: .seconds(30)) }.count
            return (roundTrips, cores, stillOpen)
        }
        let median = roundTrips.sorted()[roundTrips.count / 2]
        print("slowloris: \(Self.connections) half-open connections; ping median \(median) of \(roundTrips.count); worker CPU \(cores) cores")
        #expect(median < .milliseconds(50), "ping round trips \(roundTrips)")
        #expect(cores < 0.2, "the worker used \(cores) cores while \(Self.connections) connections stalled")
        #expect(stillOpen == 0, "\(stillOpen) of \(Self.connections) half-open connections still open after 30 s")
        #expect(worker.logs.contains { $0.level == "warning" && $0.message.contains("metrics endpoint: connection refused") })

        // Afterwards, Prometheus gets its page.
        let (status, text) = try await MetricsEndpointTests.get(try #require(URL(string: metricsURL)))
        #expect(status == 200)
        #expect(text.contains("signal_worker_requests_total"))
        await worker.child.terminate(within: .seconds(10))
    }

    @Test("a bare port binds loopback; a non-loopback metrics address is logged as exposed")
    func metricsBindDefaultsToLoopback() async throws {
        let database = try await SQLiteFixture.make("metrics-loopback-db")
        defer { database.remove() }
        let base = WorkerProcess.serveArguments(store: database.storeURL, metrics: false)
        try await withWorker(base + ["--metrics-bind", "0"]) { worker in
            #expect(worker.metricsURL?.hasPrefix("http://127.0.0.1:") == true, "\(worker.metricsURL ?? "-")")
            #expect(!worker.logs.contains { $0.message.contains("reachable from the network without authentication") })
        }
        try await withWorker(base + ["--metrics-bind", "0.0.0.0:0"]) { worker in
            #expect(worker.logs.contains { $0.level == "warning" && $0.message.contains("reachable from the network without authentication") })
        }
    }
}

/// User plus system CPU time of a process so far (`/proc/PID/stat` fields 14 and 15).
func cpuSeconds(of pid: Int32) throws -> Double {
    let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    guard let close = stat.lastIndex(of: ")") else { throw TestFailure("unreadable /proc/\(pid)/stat") }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime 14, stime 15.
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
        throw TestFailure("unreadable /proc/\(pid)/stat: \(stat)")
    }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// A duration in seconds.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
