import SignalProtocol

/// Exactly once and in order, for every receiver: the generic layer between the worker's queue
/// and the store.
///
/// The inbox validates an envelope with each receiver connected to its (`post_save`, sender), in
/// connection order, and applies batches through a ``SignalStore``: in one transaction, a message
/// whose id was applied before is `duplicate`, one whose `seq` is not newer than its object's last
/// is `stale`, and the others go to their receivers, all of which must accept it (all or nothing
/// per message). Messages of different senders and receivers share the batch's transaction.
public struct Inbox: Sendable {
    /// The (signal, sender) pairs the inbox handles.
    public struct Key: Sendable, Hashable, CustomStringConvertible {
        /// Signal name (`post_save`).
        public var signal: String
        /// Sender model label (`auth.user`).
        public var sender: String

        /// Creates a key.
        public init(signal: String, sender: String) {
            self.signal = signal
            self.sender = sender
        }

        public var description: String { "(\(signal), \(sender))" }
    }

    private let receivers: [ErasedReceiver]
    /// Receiver indexes per key, in connection order.
    private let chains: [[Int]]
    private let chainIndex: [Key: Int]
    /// The key of the only chain, when there is one.
    private let onlyKey: Key?
    /// Whether the store can answer `outbox_check` (the shim's outbox table is there).
    public let checksOutbox: Bool

    /// An inbox running `receivers`, each for `post_save` of its sender; receivers of the same
    /// sender run in the order given (Django's connection order).
    public init(receivers: [any PostSaveReceiver]) {
        self.init(erased: receivers.map(\.erased), checksOutbox: false)
    }

    private init(erased: [ErasedReceiver], checksOutbox: Bool) {
        receivers = erased
        self.checksOutbox = checksOutbox
        var chains: [[Int]] = []
        var chainIndex: [Key: Int] = [:]
        for (index, receiver) in erased.enumerated() {
            let key = Key(signal: "post_save", sender: receiver.sender)
            if let chain = chainIndex[key] {
                chains[chain].append(index)
            } else {
                chainIndex[key] = chains.count
                chains.append([index])
            }
        }
        self.chains = chains
        self.chainIndex = chainIndex
        onlyKey = chainIndex.count == 1 ? chainIndex.first?.key : nil
    }

    /// The handled (signal, sender) pairs and their receivers' names, for the start-up log.
    public var routes: [(key: Key, receivers: [String])] {
        chainIndex.sorted { $0.value < $1.value }.map { key, chain in (key, chains[chain].map { receivers[$0].name }) }
    }

    /// The receivers' names, in order.
    public var receiverNames: [String] { receivers.map(\.name) }

    /// The paths of `attrs` the receivers read, for the request decoder; `nil` when one of them
    /// reads the whole object (``AttributeSelection/all``).
    public var attributeLayout: AttributeLayout? {
        var paths: [[String]] = []
        for receiver in receivers {
            guard case .paths(let read) = receiver.attributes else { return nil }
            paths += read
        }
        return AttributeLayout(paths)
    }

    /// The tables all receivers need, each table once.
    public var tables: [TableRequirement] { receivers.flatMap(\.tables).merged }

    /// The inbox with every receiver adapted to what the database enforces.
    public func adapted(to facts: SchemaFacts) -> Inbox {
        Inbox(erased: receivers.map { $0.adapted(facts) }, checksOutbox: checksOutbox)
    }

    /// The inbox answering `outbox_check` (`enabled`: the store found the shim's outbox table) or
    /// refusing it as `unsupported`.
    public func checkingOutbox(_ enabled: Bool) -> Inbox {
        Inbox(erased: receivers, checksOutbox: enabled)
    }

    /// The receivers' Django-compatible DDL (`--create-schema`), in order, each statement once.
    public func djangoCompatibleDDL(_ dialect: SQLDialect) -> [String] {
        var seen = Set<String>()
        return receivers.flatMap { $0.djangoCompatibleDDL(dialect) }.filter { seen.insert($0).inserted }
    }

    // MARK: - Validation

    /// The chain of (signal, sender); with one chain (the usual case) two string comparisons
    /// instead of hashing both strings for every message.
    private func chain(signal: String, sender: String) -> Int? {
        if let only = onlyKey {
            return only.signal == signal && only.sender == sender ? 0 : nil
        }
        return chainIndex[Key(signal: signal, sender: sender)]
    }

    /// Validates an envelope with the receivers of its (signal, sender), in connection order; the
    /// first refusal is the reply, attributed to its receiver.
    public func prepare(_ envelope: SignalEnvelope) throws(ReplyError) -> InboxMessage {
        if envelope.checksOutbox, !checksOutbox {
            throw ReplyError(
                .unsupported,
                "this worker cannot check the outbox: its database has no outbox table (see --outbox-table); "
                    + "send the message without outbox_check", field: "outbox_check")
        }
        guard let chain = chain(signal: envelope.signal, sender: envelope.sender) else {
            throw ReplyError(
                .unsupported,
                "no receiver for signal \(envelope.signal) from sender \(envelope.sender); this worker handles "
                    + routes.map(\.key.description).joined(separator: ", "),
                field: "sender")
        }
        let parts: MessageParts
        if chains[chain].count == 1 {
            // One receiver (the usual case): its part alone, no array to allocate per message.
            parts = .one(try validated(envelope, by: chains[chain][0]))
        } else {
            var several: [any AnyObject & Sendable] = []
            several.reserveCapacity(chains[chain].count)
            for index in chains[chain] { several.append(try validated(envelope, by: index)) }
            parts = .several(several)
        }
        return InboxMessage(
            id: envelope.id, sequence: envelope.sequence, durable: envelope.durable, checksOutbox: envelope.checksOutbox,
            object: ObjectKey(envelope), chain: chain, parts: parts)
    }

    /// Receiver `index`'s validated part of `envelope`; its refusal names it.
    private func validated(_ envelope: SignalEnvelope, by index: Int) throws(ReplyError) -> any AnyObject & Sendable {
        do {
            return try receivers[index].message(envelope)
        } catch {
            throw error.from(receiver: receivers[index].name)
        }
    }

    // MARK: - Applying

    /// Applies a batch through `store`: one transaction, one outcome per message.
    ///
    /// When the database refuses the batch (a row changed under the worker, a constraint the
    /// receivers did not foresee), each message is retried alone so that one bad message does not
    /// fail the others; once a message of an object fails retryably there, the object's later
    /// messages are not applied but answered with the retryable error too (they must not overtake
    /// it: docs/PROTOCOL.md, "Exactly once and ordering"). A store that cannot be reached gives
    /// every message `store_unavailable`.
    public func apply(_ messages: [InboxMessage], to store: some SignalStore) async -> [Reply.Outcome] {
        guard !messages.isEmpty else { return [] }
        do {
            return try await store.apply(batch(messages, dialect: store.dialect)).outcomes
        } catch where error.code == .rejected && messages.count > 1 {
            var outcomes: [Reply.Outcome] = []
            outcomes.reserveCapacity(messages.count)
            var failedRetryably: [ObjectKey: InboxMessage] = [:]  // object -> its first message that failed
            for message in messages {
                if let earlier = failedRetryably[message.object] {
                    outcomes.append(.error(Self.heldBehind(earlier)))
                    continue
                }
                let outcome = await apply([message], to: store)
                if outcome.first?.isRetryableError == true { failedRetryably[message.object] = message }
                outcomes += outcome
            }
            return outcomes
        } catch where error.code == .rejected {
            return [.error(ReplyError(.invalidValue, "the database refused the change: \(error.message)"))]
        } catch {
            let reply = ReplyError(.storeUnavailable, "the store is unavailable: \(error.message)")
            return Array(repeating: .error(reply), count: messages.count)
        }
    }

    /// The retryable error of a message not applied because `earlier`, a message of the same
    /// object in its batch, failed retryably.
    static func heldBehind(_ earlier: InboxMessage) -> ReplyError {
        let which = earlier.sequence.map { "seq \($0), id \(earlier.id)" } ?? "id \(earlier.id)"
        return ReplyError(
            .storeUnavailable,
            "not applied: an earlier message of \(earlier.object) in the same batch (\(which)) failed with a "
                + "retryable error; send both again, the earlier one first")
    }

    /// The entry's index, set to `next` if it has none yet (`-1`).
    private static func claim(_ entry: inout Int, next: Int) -> Int {
        if entry < 0 { entry = next }
        return entry
    }

    /// The store's view of a batch: ids, objects, the receivers' reads and the planning function.
    func batch(_ messages: [InboxMessage], dialect: SQLDialect) -> StoreBatch {
        var ids: [String] = []
        var objects: [ObjectKey] = []
        var seenIDs = Set<String>(minimumCapacity: messages.count)
        var objectIndexes = [ObjectKey: Int](minimumCapacity: messages.count)
        var objectOfMessage: [Int] = []
        objectOfMessage.reserveCapacity(messages.count)
        // Each receiver's messages, in batch order, and where each message's part is in them.
        var partsByReceiver = [[any AnyObject & Sendable]](repeating: [], count: receivers.count)
        var localIndexes: [Int] = []  // per message, its part's index in each of its receivers' lists
        localIndexes.reserveCapacity(messages.count)
        for message in messages {
            if seenIDs.insert(message.id).inserted { ids.append(message.id) }
            // One lookup: a new object's entry is created with the next index.
            let index = Self.claim(&objectIndexes[message.object, default: -1], next: objects.count)
            objectOfMessage.append(index)
            if index == objects.count { objects.append(message.object) }
            switch message.parts {
            case .one(let part):
                let receiver = chains[message.chain][0]
                localIndexes.append(partsByReceiver[receiver].count)
                partsByReceiver[receiver].append(part)
            case .several(let parts):
                for (part, receiver) in zip(parts, chains[message.chain]) {
                    localIndexes.append(partsByReceiver[receiver].count)
                    partsByReceiver[receiver].append(part)
                }
            }
        }
        let involved = receivers.indices.filter { !partsByReceiver[$0].isEmpty }
        var reads: [BatchStatement] = []
        var parts: [ReceiverBatch] = []
        for receiver in involved {
            let part = receivers[receiver].batch(partsByReceiver[receiver], dialect)
            reads += part.reads
            parts.append(part)
        }
        let plan = BatchPlanning(
            names: receivers.map(\.name), chains: chains, involved: involved, parts: parts, localIndexes: localIndexes,
            messages: messages, objects: objects, objectOfMessage: objectOfMessage,
            idsRepeat: ids.count < messages.count, dialect: dialect)
        var checks: [OutboxCheck] = []
        if checksOutbox {
            var seenChecks = Set<OutboxCheck>()
            for message in messages where message.checksOutbox {
                let check = OutboxCheck(object: message.object, before: message.sequence)
                if seenChecks.insert(check).inserted { checks.append(check) }
            }
        }
        return StoreBatch(
            messageIDs: ids, objects: objects, mayCommitWithoutSync: messages.allSatisfy { !$0.durable },
            outboxChecks: checks, reads: reads, plan: { state, rows throws(StoreError) in try plan.run(state, rows) })
    }
}

/// A message validated by an ``Inbox``: its header and each receiver's part.
public struct InboxMessage: Sendable {
    /// The message id (dedupe).
    public var id: String
    /// The outbox sequence, if any (order per object).
    public var sequence: Int64?
    /// Whether its commit must be durable (`durable`, docs/PROTOCOL.md "Durability").
    public var durable: Bool
    /// Whether it asked for an outbox check (`outbox_check`, docs/PROTOCOL.md "Outbox check").
    public var checksOutbox: Bool
    /// The object it is about.
    public var object: ObjectKey
    /// Which receiver chain handles it.
    let chain: Int
    /// Each receiver's validated message, in chain order.
    let parts: MessageParts
}

/// The receivers' validated parts of one message, in chain order.
enum MessageParts: Sendable {
    /// A chain of one receiver (the usual case).
    case one(any AnyObject & Sendable)
    /// A chain of several.
    case several([any AnyObject & Sendable])
}

/// The planning of one batch, once the store has read the inbox state and the receivers' rows.
private struct BatchPlanning: Sendable {
    /// Every receiver's name, by receiver index.
    let names: [String]
    let chains: [[Int]]
    /// The receivers with messages in the batch, and their parts of it (reads, planner), in order.
    let involved: [Int]
    let parts: [ReceiverBatch]
    /// Each message's part index in each of its chain's receivers, message after message.
    let localIndexes: [Int]
    let messages: [InboxMessage]
    /// The batch's objects, each once, and the index in it of each message's object: the planning
    /// loop keeps per-object state in arrays instead of hashing (sender, pk) for every message.
    let objects: [ObjectKey]
    let objectOfMessage: [Int]
    /// Whether an id occurs twice in the batch; when not, only the dedupe table's ids can make a
    /// message a duplicate, and the loop need not remember the batch's ids.
    let idsRepeat: Bool
    let dialect: SQLDialect

    /// The `behind` error of a message whose outbox check found an older row of its object.
    static func behind(_ object: ObjectKey, sequence: Int64?) -> ReplyError {
        let older = sequence.map { "a message older than seq \($0)" } ?? "a message"
        return ReplyError(
            .behind,
            "the outbox holds \(older) of \(object): nothing was written; send the older messages first, then this one "
                + "again", field: "outbox_check")
    }

    func run(_ state: InboxState, _ rows: [[SQLRow]]) throws(StoreError) -> InboxPlan {
        // Each involved receiver's planner, by receiver index.
        var planners = [ReceiverPlanner?](repeating: nil, count: names.count)
        var offset = 0
        for (receiver, part) in zip(involved, parts) {
            let count = part.reads.count
            planners[receiver] = try part.planner(Array(rows[offset..<(offset + count)]))
            offset += count
        }

        // A message of one receiver is answered `.applied([that receiver's action])`: one array per
        // (receiver, action), shared by the batch's replies, instead of one allocated per message.
        var oneReceiverOutcomes: [[Reply.Outcome?]] = names.map { _ in Array(repeating: nil, count: ReplyAction.slotCount) }
        var plan = InboxPlan()
        plan.outcomes.reserveCapacity(messages.count)
        plan.applied.reserveCapacity(messages.count)
        var seen = state.appliedMessageIDs
        var lastSequences = objects.map { state.lastSequences[$0] }
        var newSequences = [Int64?](repeating: nil, count: objects.count)
        var local = 0  // the current message's first entry in localIndexes
        for position in messages.indices {
            // Fields read one by one: copying the whole message would retain and release each of them.
            let chain = chains[messages[position].chain]
            let first = local
            local += chain.count
            let object = objectOfMessage[position]
            let id = messages[position].id
            if !seen.isEmpty, seen.contains(id) {
                plan.outcomes.append(.ok(.duplicate))
                continue
            }
            let sequence = messages[position].sequence
            if let sequence, let last = lastSequences[object], sequence <= last {
                plan.outcomes.append(.stale(lastSequence: last))
                if idsRepeat { seen.insert(id) }
                plan.applied.append(id)
                continue
            }
            if !state.behind.isEmpty, messages[position].checksOutbox,
                state.behind.contains(OutboxCheck(object: objects[object], before: sequence))
            {
                // An older message of the object waits in the shim's outbox: not now, not recorded.
                plan.outcomes.append(.error(Self.behind(objects[object], sequence: sequence)))
                continue
            }
            let outcome: (Reply.Outcome, changes: Bool)
            if chain.count == 1 {
                // One receiver (the usual case): its verdict is the message's, recorded at once.
                let receiver = chain[0]
                switch planners[receiver].unsafelyUnwrapped.decideAndKeep(localIndexes[first]) {
                case .accepted(let action, let changed):
                    outcome = (Self.applied(action, by: receiver, names: names, cache: &oneReceiverOutcomes), changed)
                case .refused(let error):
                    outcome = (.error(error.from(receiver: names[receiver])), false)
                }
            } else {
                outcome = decideTogether(chain, first: first, planners)
            }
            plan.outcomes.append(outcome.0)
            guard case .applied = outcome.0 else { continue }
            if idsRepeat { seen.insert(id) }
            plan.applied.append(id)
            // Only a message that changed a row advances its object's sequence: an update skipped
            // because the row does not exist yet must not make a late `created` message stale.
            if outcome.changes, let sequence {
                newSequences[object] = sequence
                lastSequences[object] = sequence
            }
        }
        for receiver in involved { plan.writes += planners[receiver].unsafelyUnwrapped.writes(dialect) }
        plan.sequences = zip(objects, newSequences).compactMap { object, sequence in
            sequence.map { SequenceRecord(object: object, sequence: $0) }
        }
        return plan
    }

    /// `.applied([ReceiverAction(receiver's name, action)])`, made once per (receiver, action) in `cache`.
    private static func applied(
        _ action: ReplyAction, by receiver: Int, names: [String], cache: inout [[Reply.Outcome?]]
    ) -> Reply.Outcome {
        if let made = cache[receiver][action.slot] { return made }
        let made = Reply.Outcome.applied([ReceiverAction(names[receiver], action)])
        cache[receiver][action.slot] = made
        return made
    }

    /// One message through a chain of several receivers, all or nothing: the first refusal is the
    /// outcome and no receiver records its change; otherwise every receiver records its change.
    private func decideTogether(_ chain: [Int], first: Int, _ planners: [ReceiverPlanner?]) -> (Reply.Outcome, changes: Bool) {
        var actions: [ReceiverAction] = []
        actions.reserveCapacity(chain.count)
        var changes = false
        for (step, receiver) in chain.enumerated() {
            switch planners[receiver].unsafelyUnwrapped.decide(localIndexes[first + step]) {
            case .accepted(let action, let changed):
                actions.append(ReceiverAction(names[receiver], action))
                changes = changes || changed
            case .refused(let error):
                for receiver in chain { planners[receiver].unsafelyUnwrapped.dropPending() }
                return (.error(error.from(receiver: names[receiver])), false)
            }
        }
        for receiver in chain { planners[receiver].unsafelyUnwrapped.keepPending() }
        return (.applied(actions), changes)
    }
}

extension ReplyAction {
    /// The action's index in a per-action table (`allCases` would build an array at each use).
    fileprivate var slot: Int {
        switch self {
        case .created: 0
        case .updated: 1
        case .skipped: 2
        case .duplicate: 3
        case .stale: 4
        case .pong: 5
        }
    }

    /// The number of slots: one per action, so that a new action cannot outgrow the table.
    fileprivate static let slotCount = allCases.count
}
