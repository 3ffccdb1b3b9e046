import Foundation
import Synchronization
import Testing

/// A client far faster than the worker: everything is answered, nothing is dropped, and the
/// worker's memory stays bounded (its request queue stops reading the socket at
/// `--max-queued-requests`; libzmq's receive high-water mark and TCP hold the rest).
/// The 5-minute version is `worker-benchmark --soak-seconds 300`.
@Suite("overload")
struct OverloadTests {
    static let users = 2_000
    static let updates = 60_000

    @Test("60,000 requests sent at once to a worker on SQLite: all answered, all applied, RSS bounded")
    func floodIsAnsweredWithBoundedMemory() async throws {
        let database = try await SQLiteFixture.make("overload")
        defer { database.remove() }
        try database.insertUsers(1...Self.users)
        let messages = Messages()
        let arguments = WorkerProcess.serveArguments(
            store: database.storeURL, metrics: false, extra: ["--max-queued-requests", "5000"])
        try await withWorker(arguments) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            for user in 1...Self.users { try client.send(messages.signal(user: user, created: true).json) }
            for _ in 1...Self.users {
                guard try await client.receive(timeout: .seconds(30)) != nil else { throw TestFailure("a create got no reply") }
            }

            // A thread of its own: this test's blocking socket calls (and the other tests' in
            // this process) may hold every thread of Swift's cooperative pool for seconds, and a
            // sampler Task would then never run (CI once measured a "peak" of 0).
            let sampler = ResidentMemorySampler(pid: worker.pid, intervalSeconds: 0.02)
            let baseline = residentKiB(of: worker.pid)
            let started = ContinuousClock.now
            // Everything at once: the client's queue is unbounded (HWM 0), the worker's is not.
            for index in 0..<Self.updates {
                let user = index % Self.users + 1
                try client.send(messages.signal(user: user, created: false, data: ["profile_type": "u\(index)"]).json)
            }
            var answered = 0
            var updated = 0
            while answered < Self.updates {
                guard let reply = try await client.receive(timeout: .seconds(60)) else {
                    throw TestFailure("\(Self.updates - answered) of \(Self.updates) requests got no reply")
                }
                answered += 1
                if reply.isOK("updated") { updated += 1 }
            }
            let elapsed = started.duration(to: .now)
            let (peakKiB, samples) = sampler.stop()

            #expect(updated == Self.updates, "every request applied: \(updated) of \(Self.updates)")
            #expect(try database.appliedIDs().count == Self.users + Self.updates)
            // The last update of each user wins: index u + k*users, the largest below `updates`.
            let profiles = try database.profiles()
            let lastIndex = { (user: Int) in (Self.updates - 1) - ((Self.updates - 1 - (user - 1)) % Self.users) }
            #expect((1...Self.users).allSatisfy { profiles[$0]?.profileType == "u\(lastIndex($0))" })
            #expect(samples > 0 && peakKiB > 0 && peakKiB < 200 * 1024, "peak RSS \(peakKiB / 1024) MiB in \(samples) samples")
            print(
                "overload: \(Self.updates) requests sent at once, all answered in \(elapsed); worker RSS \(baseline / 1024) MiB "
                    + "before, peak \(peakKiB / 1024) MiB (\(samples) samples)")
        }
    }
}

/// Samples a process's resident memory on a thread of its own until ``stop()``.
final class ResidentMemorySampler: Sendable {
    private struct State {
        var peakKiB = 0
        var samples = 0
        var running = true
    }

    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)

    init(pid: Int32, intervalSeconds: TimeInterval) {
        let thread = Thread { [self] in
            defer { finished.signal() }
            while true {
                let rss = residentKiB(of: pid)
                let running = state.withLock { state in
                    if rss > 0 {
                        state.peakKiB = max(state.peakKiB, rss)
                        state.samples += 1
                    }
                    return state.running
                }
                guard running else { return }
                Thread.sleep(forTimeInterval: intervalSeconds)
            }
        }
        thread.name = "rss-sampler"
        thread.start()
    }

    /// Stops sampling (after one last sample) and returns the peak in KiB and the number of samples.
    func stop() -> (peakKiB: Int, samples: Int) {
        state.withLock { $0.running = false }
        finished.wait()
        return state.withLock { ($0.peakKiB, $0.samples) }
    }
}

/// `VmRSS` of a process in KiB (0 if it cannot be read).
func residentKiB(of pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
}
