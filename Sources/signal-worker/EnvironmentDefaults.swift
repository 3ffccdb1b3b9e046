import Foundation

/// Option defaults read from `SIGNAL_WORKER_*` environment variables.
enum EnvironmentDefault {
    static func string(_ name: String, _ fallback: String) -> String {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 } ?? fallback
    }

    /// The variable's value, or `nil` when it is unset or empty (for options whose absence means something).
    static func optionalString(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A duration such as `250ms` or `1s` (see ``DurationArgument``); `fallback` when unset or unreadable.
    static func duration(_ name: String, _ fallback: Duration) -> DurationArgument {
        optionalString(name).flatMap(DurationArgument.init(argument:)) ?? DurationArgument(fallback)
    }

    static func int(_ name: String, _ fallback: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) } ?? fallback
    }

    static func flag(_ name: String) -> Bool {
        ["1", "true", "yes", "on"].contains(ProcessInfo.processInfo.environment[name]?.lowercased() ?? "")
    }
}
