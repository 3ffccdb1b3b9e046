import DRFTokenReceiver
import ProfileReceiver
import SignalInbox
import SignalProtocol

/// Turns request frames into replies the way the worker does: decode, answer pings, validate
/// with the inbox (routing by (signal, sender) and each receiver's rules), apply through a store.
struct RequestProcessor {
    /// The receivers, behind the same inbox the worker uses.
    var inbox: Inbox

    /// The inbox of the receivers named as `--receivers` names them, adapted to `store`'s schema.
    static func make(receivers names: [String], store: any SignalStore) async throws -> RequestProcessor {
        let receivers: [any PostSaveReceiver] = try names.map { name in
            switch name {
            case "profile": return ProfileReceiver()
            case "drf-token": return DRFTokenReceiver()
            default: throw ContractVector.FormatError(description: "unknown receiver \(name)")
            }
        }
        return RequestProcessor(inbox: try await Inbox(receivers: receivers).adapted(to: store))
    }

    /// The reply to one frame; applies it alone in one transaction.
    func reply(to frame: [UInt8], store: some SignalStore, decoder: RequestDecoder) async -> Reply {
        await replies(to: [frame], store: store, decoder: decoder)[0]
    }

    /// Replies to frames in order; all valid messages are applied as one batch (one transaction).
    func replies(to frames: [[UInt8]], store: some SignalStore, decoder: RequestDecoder) async -> [Reply] {
        var replies = [Reply?](repeating: nil, count: frames.count)
        var messages: [InboxMessage] = []
        var positions: [Int] = []
        for (index, frame) in frames.enumerated() {
            do {
                switch try decoder.decode(frame) {
                case .ping(let id):
                    replies[index] = .ok(id, .pong)
                case .signal(let envelope):
                    do throws(ReplyError) {
                        messages.append(try inbox.prepare(envelope))
                        positions.append(index)
                    } catch {
                        replies[index] = .error(envelope.id, error)
                    }
                }
            } catch {
                replies[index] = .error(error.requestID, error.error)
            }
        }
        let outcomes = await inbox.apply(messages, to: store)
        for (position, (message, outcome)) in zip(positions, zip(messages, outcomes)) {
            replies[position] = Reply(id: message.id, outcome: outcome)
        }
        return replies.map { $0! }
    }
}
