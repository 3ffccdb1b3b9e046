#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Names the calling thread for the operating system: what `top -H`, `ps -L`, `perf` and
/// `/proc/<pid>/task/<tid>/comm` show.
///
/// By writing `/proc/thread-self/comm` from the thread itself (proc(5); what glibc's
/// `pthread_setname_np` does for another thread; Swift's Glibc module does not export that call),
/// not through Foundation's `Thread.name`. That setter names the thread only once `start()`, in
/// the parent thread, has stored the new thread's handle, and the new thread may already be
/// running: set from its first line, the name was lost now and then (a CI run saw the broker's
/// socket thread under the name it inherited, `oot.default-qos`). Set before `start()`, it never
/// reaches the kernel at all.
public enum ThreadName {
    /// The longest name Linux keeps, in bytes (without the terminating NUL); a longer one is refused.
    public static let maxBytes = 15

    /// Names the current thread; `name` must be ASCII and at most ``maxBytes`` long.
    public static func setCurrent(_ name: String) {
        precondition(name.utf8.count <= maxBytes && name.utf8.allSatisfy { $0 < 0x80 }, "thread name too long: \(name)")
        #if canImport(Glibc)
        let file = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard file >= 0 else { return }  // no /proc: the name is cosmetic, the thread runs on
        defer { close(file) }
        _ = Array(name.utf8).withUnsafeBytes { write(file, $0.baseAddress, $0.count) }
        #elseif canImport(Darwin)
        _ = pthread_setname_np(name)
        #endif
    }
}
