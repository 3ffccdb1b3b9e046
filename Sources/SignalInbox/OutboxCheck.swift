/// One `outbox_check` (docs/PROTOCOL.md, "Outbox check"): is there a row of `object` in the shim's
/// outbox older than the message, that is any row when the message has no `seq`, else a row with
/// a lower `seq`?
public struct OutboxCheck: Sendable, Hashable, CustomStringConvertible {
    /// The object (sender, pk as text): the outbox's `sender` and `object_pk` columns.
    public var object: ObjectKey
    /// The message's `seq`, if it has one.
    public var before: Int64?

    /// Creates a check.
    public init(object: ObjectKey, before: Int64?) {
        self.object = object
        self.before = before
    }

    public var description: String { before.map { "\(object) before seq \($0)" } ?? "\(object)" }
}

extension TableRequirement {
    /// What the worker reads of the shim's outbox (python-bridge's `OutboxMessage`) to answer
    /// `outbox_check`: `seq`, `sender`, `object_pk`. Missing or different: the worker answers
    /// `outbox_check` with `unsupported` and its pong lists no `outbox_check` feature.
    public static func shimOutbox(_ table: String) -> TableRequirement {
        TableRequirement(
            table: table,
            missing: "the shim's outbox table does not exist (is signal_bridge in INSTALLED_APPS and migrated?)",
            columns: [
                .init("seq", .integer, notNull: true),
                .init("sender", .text, notNull: true),
                .init("object_pk", .text, notNull: true),
            ])
    }
}
