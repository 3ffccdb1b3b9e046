import ProfileReceiver
import SignalProtocol

/// Turns request frames into replies the way the worker does: decode, route by
/// (signal, sender), validate for the receiver, apply through a store.
///
/// Written for the contract vectors; the worker can reuse it as is (one frame, or a
/// batch of frames applied in one store transaction).
struct RequestProcessor {
    /// The receiver the `post_save` of ``ProfileReceiverConfiguration/senderLabel`` goes to.
    var receiver: ProfileReceiver
    /// The only signal routed to the receiver.
    var signal = "post_save"

    /// A request that is answered without the store, or a message for the receiver.
    enum Routed {
        case reply(Reply)
        case message(ProfileMessage)
    }

    /// Decodes and validates one frame. `decoder` is not thread-safe: one per task.
    func route(_ frame: [UInt8], decoder: RequestDecoder) -> Routed {
        let request: Request
        do {
            request = try decoder.decode(frame)
        } catch {
            return .reply(.error(error.requestID, error.error))
        }
        switch request {
        case .ping(let id):
            return .reply(.ok(id, .pong))
        case .signal(let envelope):
            guard envelope.signal == signal else {
                return .reply(
                    .error(
                        envelope.id,
                        ReplyError(.unsupported, "no receiver for signal \"\(envelope.signal)\"", field: "signal")))
            }
            guard envelope.sender == receiver.configuration.senderLabel else {
                return .reply(
                    .error(
                        envelope.id,
                        ReplyError(
                            .unsupported, "no receiver for \(signal) from sender \"\(envelope.sender)\"", field: "sender")))
            }
            do {
                return .message(try receiver.message(from: envelope))
            } catch {
                return .reply(.error(envelope.id, error))
            }
        }
    }

    /// The reply to one frame; applies it alone in one transaction.
    func reply(to frame: [UInt8], store: some ProfileStore, decoder: RequestDecoder) async -> Reply {
        await replies(to: [frame], store: store, decoder: decoder)[0]
    }

    /// Replies to frames in order; all valid messages are applied as one batch (one transaction).
    func replies(to frames: [[UInt8]], store: some ProfileStore, decoder: RequestDecoder) async -> [Reply] {
        var replies = [Reply?](repeating: nil, count: frames.count)
        var messages: [ProfileMessage] = []
        var positions: [Int] = []
        for (index, frame) in frames.enumerated() {
            switch route(frame, decoder: decoder) {
            case .reply(let reply):
                replies[index] = reply
            case .message(let message):
                messages.append(message)
                positions.append(index)
            }
        }
        let outcomes = await receiver.apply(messages, to: store)
        for (position, (message, outcome)) in zip(positions, zip(messages, outcomes)) {
            replies[position] = Reply(id: message.id, outcome: outcome)
        }
        return replies.map { $0! }
    }
}
