/// A hash that is the same in every process and on every run (FNV-1a over bytes, finished with
/// SplitMix64's mixer), for routing decisions that must not change when the broker restarts.
/// Swift's `Hasher` is seeded per process and cannot be used for this.
public enum StableHash {
    /// FNV-1a's 64-bit offset basis: the state before the first byte.
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    @usableFromInline static let prime: UInt64 = 0x0000_0100_0000_01b3

    /// FNV-1a 64 of `bytes`, continuing from `state` (chain calls to hash several parts).
    /// Inlinable (as the two below): callers in other modules get a version specialized for their
    /// bytes, not one that reads each byte through the `Sequence` witness.
    @inlinable @inline(__always)
    public static func fnv1a(_ bytes: some Sequence<UInt8>, state: UInt64 = offsetBasis) -> UInt64 {
        var hash = state
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* prime
        }
        return hash
    }

    /// SplitMix64's finalizer: a bijection on 64 bits in which every input bit changes about
    /// half of the output bits.
    @inlinable @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// The hash of a byte string: FNV-1a, then mixed.
    @inlinable
    public static func of(_ bytes: some Sequence<UInt8>) -> UInt64 { mix(fnv1a(bytes)) }
}
