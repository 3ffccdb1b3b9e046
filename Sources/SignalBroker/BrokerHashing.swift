import WorkerOperations
import SignalInbox

/// Rendezvous (highest-random-weight) hashing: a key goes to the member with the highest
/// `weight(key, member)`. While the members stay the same a key always lands on the same one;
/// when one joins, only the keys it now wins move (about 1/N); when one leaves, only its keys move.
public enum RendezvousHash {
    /// The weight of `member` (its ``StableHash/of(_:)``) for `key` (a ``StableHash`` value).
    @inline(__always)
    public static func weight(key: UInt64, member: UInt64) -> UInt64 {
        StableHash.mix(key ^ member)
    }

    /// The index of the member with the highest weight for `key`; `nil` when there is none.
    /// Ties (astronomically rare) go to the lower member hash, so the choice never depends on order.
    public static func winner(key: UInt64, members: some Collection<UInt64>) -> Int? {
        var best: (index: Int, weight: UInt64, member: UInt64)?
        for (index, member) in members.enumerated() {
            let weight = self.weight(key: key, member: member)
            if let current = best, weight < current.weight || (weight == current.weight && member >= current.member) {
                continue
            }
            best = (index, weight, member)
        }
        return best?.index
    }
}
