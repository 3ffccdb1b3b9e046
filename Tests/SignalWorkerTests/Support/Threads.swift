import Foundation

/// Runs blocking `body` (socket loops that poll for seconds) on a thread of its own, not on one of the
/// few threads of Swift's cooperative pool, which the other tests of this process need.
func onThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.name = name
        thread.start()
    }
}
