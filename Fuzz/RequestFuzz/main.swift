// request-fuzz: runs the RequestFuzzer (decode + routing + receiver validation, as the socket
// thread does) over generated inputs and reports the invariants it checked.
//
//   swift build -c release --product request-fuzz
//   .build/release/request-fuzz --inputs 1000000           # a long run
//   .build/debug/request-fuzz --seconds 30                 # what scripts/test runs
//
// Options: --inputs N | --seconds S (default 100000 inputs), --seed N (default 1),
// --repository PATH (default: the current directory). A broken invariant is saved to
// Fuzz/corpus/found-<seed>-<input>.bin (replayed by the tests from then on) and the exit
// status is 1.
import Foundation
import RequestFuzzing

var inputs: Int? = 100_000
var seconds: Double?
var seed: UInt64 = 1
var repository = FileManager.default.currentDirectoryPath
var arguments = CommandLine.arguments.dropFirst().makeIterator()
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("request-fuzz: \(message)\n".utf8))
    exit(2)
}
while let argument = arguments.next() {
    guard let value = arguments.next() else { fail("\(argument) needs a value") }
    switch argument {
    case "--inputs":
        guard let number = Int(value) else { fail("--inputs takes a number") }
        (inputs, seconds) = (number, nil)
    case "--seconds":
        guard let number = Double(value) else { fail("--seconds takes a number") }
        (inputs, seconds) = (nil, number)
    case "--seed":
        guard let number = UInt64(value) else { fail("--seed takes a number") }
        seed = number
    case "--repository": repository = value
    default: fail("unknown option \(argument) (--inputs N | --seconds S, --seed N, --repository PATH)")
    }
}

let seeds: (vectors: [[UInt8]], corpus: [[UInt8]])
do {
    seeds = try FuzzSeeds.load(repository: repository)
} catch {
    fail("\(error) (run from the repository or pass --repository)")
}
let fuzzer = RequestFuzzer()
let mutator = InputMutator(seeds: seeds.vectors + seeds.corpus)
var report = RequestFuzzer.Report()
for frame in seeds.corpus { fuzzer.check(frame, into: &report) }
let started = ContinuousClock.now
var index = 0
var lastFailures = 0
while true {
    if let inputs, index >= inputs { break }
    if let seconds, index % 1_000 == 0, started.duration(to: .now) >= .seconds(seconds) { break }
    let input = mutator.input(index, seed: seed)
    fuzzer.check(input, into: &report)
    if report.failures.count > lastFailures {
        lastFailures = report.failures.count
        let path = "\(repository)/Fuzz/corpus/found-\(seed)-\(index).bin"
        _ = FileManager.default.createFile(atPath: path, contents: Data(input))
        print("FAILURE at input \(index) (saved to \(path)): \(report.failures.last!)")
    }
    index += 1
}
let elapsed = started.duration(to: .now)
let rate = Double(index) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
print("request-fuzz: \(report.inputs) inputs (\(seeds.corpus.count) corpus files, \(index) generated from \(seeds.vectors.count) vector messages, seed \(seed)) in \(elapsed), \(Int(rate)) inputs/s")
print("  accepted \(report.accepted), pings \(report.pings), errors \(report.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
print("  broken invariants: \(report.failures.count)")
exit(report.failures.isEmpty ? 0 : 1)
