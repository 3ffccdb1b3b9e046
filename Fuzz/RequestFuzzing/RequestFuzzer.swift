import Foundation
import DRFTokenReceiver
import ProfileReceiver
import SignalInbox
import SignalProtocol
import SignalBroker
import SignalWorker
import WorkerOperations

/// A property-based fuzzer for what the worker does with a frame before any store is involved:
/// `RequestDecoder.decode` and `Inbox.prepare` (routing plus the validation of every receiver of
/// the worker, profile and drf-token), exactly as the socket thread calls them.
///
/// Every input must end in an accepted message or in an error reply with a documented code, and
/// the reply must be valid JSON echoing the id. The worker's decoder builds only the receivers'
/// paths of `attrs` (``SignalProtocol/AttributeLayout``); a second decoder builds `attrs` whole,
/// and both must end in the same reply and the same validated profile message. (Validation has no store to reach: `Inbox.prepare`
/// takes none.) A crash is a
/// failure too: the process dies with the input in the log (``FuzzFailure`` keeps the bytes).
public struct RequestFuzzer: Sendable {
    /// What one run found.
    public struct Report: Sendable {
        /// Inputs tried.
        public var inputs = 0
        /// Inputs that became a message for the receiver.
        public var accepted = 0
        /// Pings.
        public var pings = 0
        /// Error replies by code.
        public var errors: [String: Int] = [:]
        /// Broken invariants, with the input that broke each.
        public var failures: [FuzzFailure] = []

        /// An empty report.
        public init() {}
    }

    private let decoder: RequestDecoder
    /// `attrs` built whole: what the worker's decoder must agree with.
    private let wholeAttributesDecoder: RequestDecoder
    private let inbox: Inbox
    private let profile = ProfileReceiver()

    /// A fuzzer with the worker's default frame limit and both receivers the worker ships.
    public init(maxFrameBytes: Int = 64 * 1024) {
        self.init(maxFrameBytes: maxFrameBytes, attributes: nil)
    }

    /// A fuzzer whose worker decoder keeps `attributes` instead of the receivers' paths (`nil`:
    /// theirs); for the test that proves the comparison notices a path left out.
    public init(maxFrameBytes: Int = 64 * 1024, attributes: AttributeLayout?) {
        inbox = Inbox(receivers: [profile, DRFTokenReceiver()])
        decoder = RequestDecoder(maxFrameBytes: maxFrameBytes, attributes: attributes ?? inbox.attributeLayout)
        wholeAttributesDecoder = RequestDecoder(maxFrameBytes: maxFrameBytes)
    }

    /// The error codes a frame can get before it reaches the store (docs/PROTOCOL.md).
    public static let allowedCodes: Set<String> = ["bad_request", "unsupported", "invalid_value"]

    /// What the worker does with one input before the store: the reply (a stand-in `ok` for an
    /// accepted message), the id it echoes, and the envelope when the frame decoded to a signal.
    private struct Answer {
        var reply: Reply
        var requestID: String?
        var envelope: SignalEnvelope?
        var accepted = false
    }

    /// Decodes `input` with `decoder` and prepares it, as the socket thread does.
    private func answer(_ input: [UInt8], decodedBy decoder: RequestDecoder) -> Answer {
        do {
            switch try decoder.decode(input) {
            case .ping(let id):
                return Answer(reply: .ok(id, .pong), requestID: id)
            case .signal(let envelope):
                do {
                    _ = try inbox.prepare(envelope)
                    // Stands in for the store's answer.
                    return Answer(reply: .ok(envelope.id, .created), requestID: envelope.id, envelope: envelope, accepted: true)
                } catch {
                    return Answer(reply: .error(envelope.id, error), requestID: envelope.id, envelope: envelope)
                }
            }
        } catch {
            return Answer(reply: .error(error.requestID, error.error), requestID: error.requestID)
        }
    }

    /// Runs one input through decode and prepare and records what broke an invariant in `report`.
    public func check(_ input: [UInt8], into report: inout Report) {
        report.inputs += 1
        let answer = answer(input, decodedBy: decoder)
        if answer.accepted { report.accepted += 1 }
        if answer.reply.outcome == .ok(.pong) { report.pings += 1 }
        if case .error(let error) = answer.reply.outcome {
            report.errors[error.code.rawValue, default: 0] += 1
            if !Self.allowedCodes.contains(error.code.rawValue) {
                report.failures.append(FuzzFailure(input: input, problem: "error code \(error.code) before the store"))
            }
        }
        if let problem = Self.replyProblem(answer.reply.encoded(), id: answer.requestID) {
            report.failures.append(FuzzFailure(input: input, problem: problem))
        }
        if let problem = attributeDisagreement(input, worker: answer) {
            report.failures.append(FuzzFailure(input: input, problem: problem))
        }
    }

    /// How the whole-`attrs` decoder disagrees with the worker's `answer` to `input`, or `nil`:
    /// the reply (the stand-in ok, or the error) and the profile receiver's validated message
    /// must match.
    private func attributeDisagreement(_ input: [UInt8], worker: Answer) -> String? {
        let whole = answer(input, decodedBy: wholeAttributesDecoder)
        guard whole.reply == worker.reply else {
            return "the worker's decoder answered \(worker.reply), attrs whole \(whole.reply)"
        }
        guard let wholeEnvelope = whole.envelope else { return nil }
        guard let envelope = worker.envelope else { return "the worker's decoder refused what the whole-attrs decoder read" }
        let expected = Result { () throws(ReplyError) in try profile.message(from: wholeEnvelope) }
        let read = Result { () throws(ReplyError) in try profile.message(from: envelope) }
        guard read == expected else {
            return "the profile receiver read \(read) from the worker's decoder, \(expected) from attrs whole"
        }
        return nil
    }

    /// Why an encoded reply is not a valid v1 reply to `id`, or `nil`. Read with the
    /// protocol's strict parser (Foundation's `JSONSerialization` drops U+FEFF inside strings,
    /// which Python's `json`, the shim's reader, keeps).
    public static func replyProblem(_ bytes: [UInt8], id: String?) -> String? {
        guard case .object(let object)? = JSONValue(parsing: bytes) else {
            return "the reply is not a JSON object: \(String(decoding: bytes, as: UTF8.self))"
        }
        guard object["v"] == .integer(1) else { return "the reply has no \"v\": 1" }
        let expected: JSONValue = id.map { .string($0) } ?? .null
        guard object["id"] == expected else {
            return "the reply's id \(String(describing: object["id"])) is not the request's \(id.debugDescription)"
        }
        return nil
    }
}

/// An input that broke an invariant.
public struct FuzzFailure: Sendable, CustomStringConvertible {
    /// The frame.
    public var input: [UInt8]
    /// What went wrong.
    public var problem: String

    public var description: String {
        let preview = String(decoding: input.prefix(200), as: UTF8.self)
        return "\(problem) (\(input.count) bytes: \(preview.debugDescription))"
    }
}
