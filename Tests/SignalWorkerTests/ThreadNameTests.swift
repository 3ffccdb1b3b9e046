import Foundation
import Testing
import WorkerOperations

/// ``ThreadName``: what `top -H`, `perf` and the end-to-end tests' `/proc/<pid>/task/*/comm` read.
@Suite("Thread names reach the kernel")
struct ThreadNameTests {
    /// The calling thread's name as the kernel keeps it.
    private static func kernelName() -> String {
        let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return comm.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Foundation's `Thread.name` setter, which ``ThreadName`` used before, lost the name when the new
    /// thread ran before `start()` had stored its handle. That race needs the starting thread to lose
    /// its core at one exact moment (it showed once, in a loaded CI run); this test did not provoke it
    /// in 1,200 tries, so it checks the naming itself, on fresh threads, from their first line.
    @Test("a new thread that names itself on its first line carries the name at once")
    func namedFromTheFirstLine() async {
        for attempt in 0..<100 {
            let name = "named-\(attempt)"
            let seen = await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
                Thread {
                    ThreadName.setCurrent(name)
                    continuation.resume(returning: Self.kernelName())
                }.start()
            }
            #expect(seen == name)
        }
    }
}
