import WorkerOperations
import SignalInbox

/// The broker's live workers: who is there, when each was last heard, and which one a request goes to.
///
/// A value type without I/O (the broker's socket thread owns one), so membership and routing are
/// unit-tested without sockets. Keyed requests go to the rendezvous winner among the live workers;
/// requests without a key go round-robin.
struct BrokerWorkerSet: Sendable {
    /// One live worker.
    struct Worker: Sendable, Hashable {
        /// Its routing id on the backend ROUTER.
        let id: [UInt8]
        /// ``StableHash/of(_:)`` of the id: its identity for rendezvous hashing.
        let hash: UInt64
        /// When it last sent `worker_ready` or a reply.
        var lastSeen: ContinuousClock.Instant
    }

    private(set) var workers: [Worker] = []
    private var hashes: [UInt64] = []
    private var nextRoundRobin = 0

    /// How many workers are live.
    var count: Int { workers.count }

    /// Whether no worker is live.
    var isEmpty: Bool { workers.isEmpty }

    /// A `worker_ready` from `id`: adds it or refreshes it; `true` when it joined just now.
    mutating func ready(_ id: [UInt8], at now: ContinuousClock.Instant) -> Bool {
        if let index = index(of: id) {
            workers[index].lastSeen = now
            return false
        }
        let hash = StableHash.of(id)
        workers.append(Worker(id: id, hash: hash, lastSeen: now))
        hashes.append(hash)
        return true
    }

    /// Traffic other than `worker_ready` from `id` (a reply): refreshes it if it is live, never adds it
    /// (a worker that said `worker_leaving` still sends its last replies).
    mutating func heard(_ id: [UInt8], at now: ContinuousClock.Instant) {
        if let index = index(of: id) { workers[index].lastSeen = now }
    }

    /// Removes `id`; `true` when it was live.
    @discardableResult
    mutating func remove(_ id: [UInt8]) -> Bool {
        guard let index = index(of: id) else { return false }
        workers.remove(at: index)
        hashes.remove(at: index)
        return true
    }

    /// Removes the workers not heard from within `expiry` before `now`; returns their ids.
    mutating func expire(now: ContinuousClock.Instant, after expiry: Duration) -> [[UInt8]] {
        let expired = workers.filter { $0.lastSeen.duration(to: now) > expiry }.map(\.id)
        for id in expired { remove(id) }
        return expired
    }

    /// The worker a request with `key` goes to: the rendezvous winner among the live workers.
    func owner(of key: UInt64) -> [UInt8]? {
        RendezvousHash.winner(key: key, members: hashes).map { workers[$0].id }
    }

    /// The next worker in turn, for requests without a key.
    mutating func roundRobin() -> [UInt8]? {
        guard !workers.isEmpty else { return nil }
        if nextRoundRobin >= workers.count { nextRoundRobin = 0 }
        defer { nextRoundRobin += 1 }
        return workers[nextRoundRobin].id
    }

    private func index(of id: [UInt8]) -> Int? {
        workers.firstIndex { $0.id == id }
    }
}
