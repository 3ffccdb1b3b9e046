import Foundation

/// Names the calling thread for the operating system: what `top -H`, `ps -L`, `perf` and
/// `/proc/<pid>/task/<tid>/comm` show.
///
/// Foundation's `Thread.name`, set before `start()`, does not reach the kernel on Linux: the
/// worker's own threads showed the name of the dispatch thread that started them
/// (`com.apple.root.default-qos`, cut to its last 15 bytes). Set from the thread itself, it does.
public enum ThreadName {
    /// The longest name Linux keeps, in bytes (without the terminating NUL); a longer one is refused.
    public static let maxBytes = 15

    /// Names the current thread; `name` must be ASCII and at most ``maxBytes`` long.
    public static func setCurrent(_ name: String) {
        precondition(name.utf8.count <= maxBytes && name.utf8.allSatisfy { $0 < 0x80 }, "thread name too long: \(name)")
        Thread.current.name = name
    }
}
