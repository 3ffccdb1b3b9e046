import Foundation
import RequestFuzzing
import SignalProtocol
import ZeroMQ
import Testing

/// Hostile input before the store: decode + routing + validation never crash, answer only with
/// documented codes, echo the id in valid JSON, and never reach the store. Long runs:
/// `request-fuzz --inputs 1000000` (Fuzz/RequestFuzz); scripts/test runs it for 30 s as well.
@Suite("request fuzzing")
struct RequestFuzzTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test("the corpus (hand-made hostile frames and every input that once failed) keeps every invariant")
    func corpus() throws {
        let seeds = try FuzzSeeds.load(repository: Self.repository)
        #expect(seeds.corpus.count >= 10, "Fuzz/corpus lost its files")
        var report = RequestFuzzer.Report()
        let fuzzer = RequestFuzzer()
        for frame in seeds.corpus + seeds.vectors { fuzzer.check(frame, into: &report) }
        #expect(report.failures.isEmpty, "\(report.failures.prefix(5))")
        #expect(report.errors["bad_request", default: 0] >= 8, "the hostile frames must be refused: \(report.errors)")
    }

    @Test("10,000 generated inputs keep every invariant, and the generator reaches every outcome")
    func generated() throws {
        let seeds = try FuzzSeeds.load(repository: Self.repository)
        let mutator = InputMutator(seeds: seeds.vectors + seeds.corpus)
        let fuzzer = RequestFuzzer()
        var report = RequestFuzzer.Report()
        for index in 0..<10_000 { fuzzer.check(mutator.input(index, seed: 20261125), into: &report) }
        #expect(report.failures.isEmpty, "\(report.failures.prefix(5))")
        // A generator that only makes garbage (or only valid frames) would prove little.
        #expect(report.accepted > 300, "\(report.accepted) accepted")
        #expect(report.pings > 0)
        for code in RequestFuzzer.allowedCodes {
            #expect(report.errors[code, default: 0] > 5, "\(code): \(report.errors)")
        }
    }

    @Test("the comparison with attrs decoded whole notices a decoder that leaves out a path the receiver reads")
    func comparisonCatchesAMissingPath() throws {
        // Guards the guard: the worker's decoder keeps only the receivers' paths of `attrs`; one
        // without `birthdate` must disagree with the whole-attrs decoder, or the runs prove nothing.
        let seeds = try FuzzSeeds.load(repository: Self.repository)
        let mutator = InputMutator(seeds: seeds.vectors + seeds.corpus)
        let fuzzer = RequestFuzzer(
            attributes: AttributeLayout([["_profile_data", "profile_type"], ["_profile_data", "sex"]]))
        var report = RequestFuzzer.Report()
        for index in 0..<2_000 { fuzzer.check(mutator.input(index, seed: 20261206), into: &report) }
        #expect(report.failures.contains { $0.problem.contains("profile receiver read") }, "\(report.failures.prefix(3))")
    }

    @Test("the checker notices a reply that is not JSON, lacks v, or carries another id")
    func checkerCatchesBadReplies() {
        // Guards the guard: if these passed, the runs above would prove nothing.
        #expect(RequestFuzzer.replyProblem(Array("not json".utf8), id: nil) != nil)
        #expect(RequestFuzzer.replyProblem(Array(#"{"id":"a","status":"ok"}"#.utf8), id: "a") != nil)
        #expect(RequestFuzzer.replyProblem(Array(#"{"v":1,"id":"b","status":"ok"}"#.utf8), id: "a") != nil)
        #expect(RequestFuzzer.replyProblem(Array(#"{"v":1,"id":null,"status":"error"}"#.utf8), id: "a") != nil)
        #expect(RequestFuzzer.replyProblem(Array(#"{"v":1,"id":"a","status":"ok"}"#.utf8), id: "a") == nil)
        #expect(!RequestFuzzer.allowedCodes.contains("store_unavailable"))
    }
}

/// Frame counts a hostile client can send, against the real worker.
@Suite("hostile frame counts")
struct HostileFrameTests {
    @Test("an empty frame, 2, 3 and 10 frames: bad_request each, nothing written, the worker keeps serving")
    func frameCounts() async throws {
        let database = try await SQLiteFixture.make("frame-counts")
        defer { database.remove() }
        try database.insertUsers([1])
        let messages = Messages()
        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL, metrics: false)) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            let body = Array(messages.signal(user: 1, created: true).json.utf8)
            for frames in [[[UInt8]()], [body, body], [body, Array("x".utf8), body], Array(repeating: body, count: 10)] {
                try client.socket.send(multipart: frames)
                guard let reply = try await client.receive(timeout: .seconds(10)) else {
                    throw TestFailure("no reply to a message of \(frames.count) frame(s)")
                }
                #expect(reply.isError("bad_request"), "\(frames.count) frame(s): \(reply)")
            }
            #expect(try await client.request(messages.ping()).isOK("pong"))
            #expect(try database.profile(user: 1) == nil)
        }
    }
}
