import Foundation
import RequestFuzzing
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
