import Foundation
import Logging

/// A swift-log handler writing one JSON object per line to standard error
/// (`--log-format json`): `{"ts":…,"level":…,"label":…,"msg":…,<metadata>}`.
public struct JSONLogHandler: LogHandler {
    /// The logger label.
    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// Creates a handler for `label`.
    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: String] = [:]
        for (key, value) in metadata { object[key] = "\(value)" }
        if let provided = metadataProvider?.get() { for (key, value) in provided { object[key] = "\(value)" } }
        if let extra = event.metadata { for (key, value) in extra { object[key] = "\(value)" } }
        object["ts"] = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        object["level"] = event.level.rawValue
        object["label"] = label
        object["msg"] = "\(event.message)"
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        FileHandle.standardError.write(line)
    }
}
