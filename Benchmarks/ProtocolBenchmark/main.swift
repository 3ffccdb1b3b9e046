// Measures request decoding (SignalProtocol) and validation (ProfileReceiver) per core,
// beside a plain Foundation JSONDecoder of the same bytes into a minimal Codable struct
// (the floor any Codable-based decoder pays), in the same run.
//
//   Benchmarks/build protocol-benchmark
//   .build/release/protocol-benchmark [--count N] [--output Benchmarks/results/protocol.md]
import ArgumentParser
import Foundation
import ProfileReceiver
import SignalInbox
import SignalProtocol

struct Arguments: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protocol-benchmark",
        abstract: "Request decoding and validation per core, beside a plain Foundation JSONDecoder of the same bytes.")

    @Option(help: "Envelopes decoded per measurement.")
    var count = 200_000

    @Option(help: "Markdown report.")
    var output = "Benchmarks/results/protocol.md"

    func validate() throws {
        guard count > 0 else { throw ValidationError("--count must be positive") }
    }
}

/// The smallest Codable view of the same envelope: what JSONDecoder costs without our checks.
struct MinimalEnvelope: Decodable {
    struct Instance: Decodable { var model: String; var pk: Int }
    var v: Int
    var id: String
    var seq: Int?
    var signal: String
    var sender: String
    var created: Bool
    var instance: Instance
}

func envelope(_ index: Int) -> [UInt8] {
    let json = """
        {"v":1,"id":"0193a5e0-7c00-7000-8000-\(String(format: "%012x", index))","seq":\(index),"signal":"post_save",\
        "sender":"auth.user","db":"default","created":\(index % 2 == 0),"raw":false,"update_fields":null,\
        "sent_at":"2026-11-25T13:00:00.123456Z","instance":{"model":"auth.user","pk":\(index),\
        "fields":{"username":"user\(index)","email":"user\(index)@example.com","first_name":"Ann","last_name":"Smith",\
        "is_staff":false,"is_active":true,"date_joined":"2026-11-25T13:00:00Z"}},\
        "attrs":{"_profile_data":{"profile_type":"business","sex":"F","birthdate":"1990-01-02"}}}
        """
    return Array(json.utf8)
}

func measure(_ label: String, rounds: Int = 3, _ body: () -> Int) -> Double {
    var best = 0.0
    for _ in 0..<rounds {
        let start = ContinuousClock.now
        let count = body()
        let elapsed = start.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        best = max(best, Double(count) / seconds)
    }
    print("\(label): \(Int(best)) per second")
    return best
}

let arguments = Arguments.parseOrExit()
let frames = (0..<1_000).map(envelope)
let requestDecoder = RequestDecoder()
let receiver = ProfileReceiver()
/// The worker's decoder: of `attrs`, only the paths its receivers read (docs/RECEIVERS.md, "Attributes").
let workerDecoder = RequestDecoder(attributes: Inbox(receivers: [receiver]).attributeLayout)
let jsonDecoder = JSONDecoder()

let baseline = measure("JSONDecoder, minimal Codable struct") {
    var decoded = 0
    for index in 0..<arguments.count {
        if (try? jsonDecoder.decode(MinimalEnvelope.self, from: Data(frames[index % frames.count]))) != nil { decoded += 1 }
    }
    return decoded
}
let decoding = measure("RequestDecoder (full envelope, field errors, null/absent)") {
    var decoded = 0
    for index in 0..<arguments.count {
        if (try? requestDecoder.decode(frames[index % frames.count])) != nil { decoded += 1 }
    }
    return decoded
}
/// Decodes every frame with `decoder` and validates it for the profile receiver.
func decodeAndValidate(_ decoder: RequestDecoder) -> Int {
    var valid = 0
    for index in 0..<arguments.count {
        guard case .signal(let envelope)? = try? decoder.decode(frames[index % frames.count]) else { continue }
        if (try? receiver.message(from: envelope)) != nil { valid += 1 }
    }
    return valid
}
let validated = measure("RequestDecoder + ProfileReceiver.message(from:)") { decodeAndValidate(requestDecoder) }
let selected = measure("RequestDecoder with the receiver's attribute paths + ProfileReceiver.message(from:)") {
    decodeAndValidate(workerDecoder)
}
let replies = measure("Reply.encoded()") {
    var bytes = 0
    for index in 0..<arguments.count { bytes += Reply.ok("0193a5e0-7c00-7000-8000-\(index)", .created).encoded().count }
    return bytes > 0 ? arguments.count : 0
}

let report = """
    # Protocol benchmark

    One core, release build, \(arguments.count) requests per round, best of 3 rounds, same run.
    Request: a full v1 envelope of \(frames[0].count) bytes (user fields + `_profile_data`).

    | what | per second | vs. JSONDecoder floor |
    | --- | ---: | ---: |
    | JSONDecoder into a minimal Codable struct (floor) | \(Int(baseline)) | 1.00 |
    | RequestDecoder | \(Int(decoding)) | \(String(format: "%.2f", decoding / baseline)) |
    | RequestDecoder + ProfileReceiver validation | \(Int(validated)) | \(String(format: "%.2f", validated / baseline)) |
    | the same, `attrs` decoded as the worker does (only the receiver's paths) | \(Int(selected)) | \(String(format: "%.2f", selected / baseline)) |
    | Reply encoding | \(Int(replies)) | |

    """
try FileManager.default.createDirectory(
    atPath: (arguments.output as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
try report.write(toFile: arguments.output, atomically: true, encoding: .utf8)
print("wrote \(arguments.output)")
