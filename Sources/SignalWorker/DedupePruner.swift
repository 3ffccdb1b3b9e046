import WorkerOperations
import Logging
import SignalInbox
import ServiceLifecycle

/// Deletes dedupe ids older than the retention window, once at start and then every `interval`.
public struct DedupePruner: Service {
    /// The store to prune.
    public var store: any SignalStore
    /// How long ids are kept.
    public var retention: Duration
    /// Time between prunes.
    public var interval: Duration
    /// Where to report.
    public var logger: Logger

    /// Creates a pruner.
    public init(store: any SignalStore, retention: Duration, interval: Duration = .seconds(3600), logger: Logger) {
        self.store = store
        self.retention = retention
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let retentionSeconds = Double(retention.components.seconds)
        // Give the worker time to check the schema and create its tables first.
        _ = try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(60)) }
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                let removed = try await store.pruneApplied(olderThanSeconds: retentionSeconds)
                if removed > 0 { logger.info("pruned \(removed) dedupe ids older than \(retention)") }
            } catch {
                logger.warning("pruning the dedupe table failed (will retry): \(error)")
            }
            _ = try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
