// zeromq-benchmark: inproc PUSH/PULL throughput of the ZeroMQ wrapper versus the same loop written
// directly against libzmq's C API, in alternating rounds of one run.
//
//   Benchmarks/build zeromq-benchmark
//   .build/release/zeromq-benchmark [--messages N] [--rounds N] [--size BYTES] [--output PATH]
//   (--help lists every option)

import ArgumentParser
import CZeroMQ
import Foundation
import ZeroMQ

// MARK: - Arguments

/// The variants a round can time: raw is libzmq's C API, receive and into the wrapper.
enum Variant: String, CaseIterable {
    case raw, receive, into

    /// A comma-separated list of variants (`--only raw,into`).
    static func list(_ text: String) throws -> Set<Variant> {
        let variants = try text.split(separator: ",").map { name in
            guard let variant = Variant(rawValue: String(name)) else {
                throw ValidationError("--only takes a comma-separated subset of raw,receive,into; not \(name)")
            }
            return variant
        }
        guard !variants.isEmpty else { throw ValidationError("--only needs at least one variant") }
        return Set(variants)
    }
}

struct Arguments: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zeromq-benchmark",
        abstract: "inproc PUSH/PULL throughput of the ZeroMQ wrapper against the same loop on the C API, in alternating rounds.")

    @Option(help: "Messages per round.")
    var messages = 1_000_000

    @Option(help: "Timed rounds per variant, alternating.")
    var rounds = 7

    @Option(help: "Payload size in bytes.")
    var size = 32

    @Option(name: .customLong("hwm"), help: "Send and receive high-water marks.")
    var highWaterMark = 100_000

    @Option(help: "Markdown report.")
    var output = "Benchmarks/results/zeromq.md"

    @Option(
        name: .customLong("only"), help: "A comma-separated subset of raw,receive,into (default all; for profiling).",
        transform: Variant.list)
    var only: Set<Variant>?

    /// The variants to run: `--only`, or all.
    var variants: Set<String> { Set((only ?? Set(Variant.allCases)).map(\.rawValue)) }

    func validate() throws {
        guard messages > 0, rounds > 0, size > 0, highWaterMark > 0 else {
            throw ValidationError("--messages, --rounds, --size and --hwm must be positive")
        }
    }
}

// MARK: - Rounds

/// A raw libzmq pointer handed to the sender thread (contexts are thread-safe).
struct RawContext: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
}

/// Starts `body` on a new thread and returns a semaphore signalled when it ends.
func startThread(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.stackSize = 1 << 20
    thread.start()
    return done
}

func check(_ rc: Int32, _ what: String) {
    if rc < 0 {
        fatalError("\(what) failed: \(String(cString: zmq_strerror(zmq_errno())))")
    }
}

/// The baseline: the same PUSH/PULL loop in plain C calls (zmq_send / zmq_msg_recv).
func rawCRound(_ arguments: Arguments, round: Int) -> Duration {
    let messages = arguments.messages
    let size = arguments.size
    var hwm = Int32(arguments.highWaterMark)
    let context = RawContext(pointer: zmq_ctx_new()!)
    let endpoint = "inproc://bench-raw-\(round)"
    let pull = zmq_socket(context.pointer, ZMQ_PULL)!
    check(zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, MemoryLayout<Int32>.size), "ZMQ_RCVHWM")
    check(zmq_bind(pull, endpoint), "zmq_bind")

    let start = ContinuousClock.now
    let senderDone = startThread {
        var hwm = Int32(arguments.highWaterMark)
        let push = zmq_socket(context.pointer, ZMQ_PUSH)!
        check(zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, MemoryLayout<Int32>.size), "ZMQ_SNDHWM")
        check(zmq_connect(push, endpoint), "zmq_connect")
        let payload = [UInt8](repeating: 0x5A, count: size)
        payload.withUnsafeBytes { buffer in
            for _ in 0..<messages {
                check(zmq_send(push, buffer.baseAddress, buffer.count, 0), "zmq_send")
            }
        }
        zmq_close(push)
    }

    var received = 0
    var checksum = 0
    var message = zmq_msg_t()
    zmq_msg_init(&message)
    for _ in 0..<messages {
        check(zmq_msg_recv(&message, pull, 0), "zmq_msg_recv")
        let length = zmq_msg_size(&message)
        checksum &+= Int(zmq_msg_data(&message)!.load(as: UInt8.self)) &+ length
        received += 1
    }
    zmq_msg_close(&message)
    let elapsed = ContinuousClock.now - start
    senderDone.wait()
    precondition(received == messages && checksum == messages * (size + 0x5A))
    zmq_close(pull)
    zmq_ctx_term(context.pointer)
    return elapsed
}

enum WrapperReceive: String {
    /// `socket.receive()`: one new [UInt8] per message.
    case allocating = "receive()"
    /// `socket.receive(into:)`: reuses one buffer.
    case reusing = "receive(into:)"
}

/// The wrapper: the same loop through Context/Socket.
func wrapperRound(_ arguments: Arguments, round: Int, mode: WrapperReceive) throws -> Duration {
    let messages = arguments.messages
    let size = arguments.size
    let hwm = arguments.highWaterMark
    let context = try Context()
    let endpoint = "inproc://bench-wrapper-\(mode)-\(round)"
    let pull = try Socket(context: context, type: .pull)
    try pull.set(.receiveHighWaterMark, hwm)
    try pull.bind(endpoint)

    let start = ContinuousClock.now
    let senderDone = startThread {
        do {
            let push = try Socket(context: context, type: .push)
            try push.set(.sendHighWaterMark, hwm)
            try push.connect(endpoint)
            let payload = [UInt8](repeating: 0x5A, count: size)
            for _ in 0..<messages {
                try push.send(payload)
            }
            push.close()
        } catch {
            fatalError("sender: \(error)")
        }
    }

    var received = 0
    var checksum = 0
    switch mode {
    case .allocating:
        for _ in 0..<messages {
            let bytes = try pull.receive()
            checksum &+= Int(bytes[0]) &+ bytes.count
            received += 1
        }
    case .reusing:
        var buffer: [UInt8] = []
        buffer.reserveCapacity(size)
        for _ in 0..<messages {
            try pull.receive(into: &buffer)
            checksum &+= Int(buffer[0]) &+ buffer.count
            received += 1
        }
    }
    let elapsed = ContinuousClock.now - start
    senderDone.wait()
    precondition(received == messages && checksum == messages * (size + 0x5A))
    pull.close()
    context.terminate()
    return elapsed
}

// MARK: - Per-call cost (single thread, queued messages)

/// CPU time consumed so far by the calling thread (immune to other processes taking the CPU).
func threadCPUTime() -> Duration {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return .seconds(Int64(time.tv_sec)) + .nanoseconds(Int64(time.tv_nsec))
}

/// Nanoseconds of thread CPU time per call for each operation of one round.
struct PerCallRound {
    var rawSend = 0.0
    var rawReceive = 0.0
    var rawReceiveCopy = 0.0
    var wrapperSend = 0.0
    var wrapperReceive = 0.0
    var wrapperReceiveInto = 0.0
}

/// Sends `count` messages into an unbounded inproc pipe, then drains it, timing each phase on one thread:
/// the cost of the calls themselves, without the scheduling noise of the streaming test.
func perCallRound(_ arguments: Arguments, count: Int, round: Int) throws -> PerCallRound {
    var result = PerCallRound()
    let size = arguments.size
    let payload = [UInt8](repeating: 0x5A, count: size)
    func perCall(_ start: Duration) -> Double {
        let elapsed = threadCPUTime() - start
        return elapsed.seconds * 1e9 / Double(count)
    }

    // Raw C.
    do {
        var unlimited: Int32 = 0
        let context = zmq_ctx_new()!
        let pull = zmq_socket(context, ZMQ_PULL)!
        let push = zmq_socket(context, ZMQ_PUSH)!
        check(zmq_setsockopt(pull, ZMQ_RCVHWM, &unlimited, MemoryLayout<Int32>.size), "ZMQ_RCVHWM")
        check(zmq_setsockopt(push, ZMQ_SNDHWM, &unlimited, MemoryLayout<Int32>.size), "ZMQ_SNDHWM")
        check(zmq_bind(pull, "inproc://percall-raw-\(round)"), "zmq_bind")
        check(zmq_connect(push, "inproc://percall-raw-\(round)"), "zmq_connect")
        var start = threadCPUTime()
        payload.withUnsafeBytes { buffer in
            for _ in 0..<count {
                check(zmq_send(push, buffer.baseAddress, buffer.count, 0), "zmq_send")
            }
        }
        result.rawSend = perCall(start)
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        var total = 0
        start = threadCPUTime()
        for _ in 0..<count {
            check(zmq_msg_recv(&message, pull, 0), "zmq_msg_recv")
            total &+= Int(zmq_msg_data(&message)!.load(as: UInt8.self)) &+ zmq_msg_size(&message)
        }
        result.rawReceive = perCall(start)

        // Reference: the same receive plus the copy any owning API must make.
        payload.withUnsafeBytes { buffer in
            for _ in 0..<count {
                check(zmq_send(push, buffer.baseAddress, buffer.count, 0), "zmq_send")
            }
        }
        var copy = [UInt8](repeating: 0, count: max(size, 1))
        start = threadCPUTime()
        copy.withUnsafeMutableBytes { target in
            for _ in 0..<count {
                check(zmq_msg_recv(&message, pull, 0), "zmq_msg_recv")
                let length = zmq_msg_size(&message)
                memcpy(target.baseAddress!, zmq_msg_data(&message)!, min(length, target.count))
                total &+= Int(target[0]) &+ length
            }
        }
        result.rawReceiveCopy = perCall(start)
        zmq_msg_close(&message)
        precondition(total == 2 * count * (size + 0x5A))
        zmq_close(push)
        zmq_close(pull)
        zmq_ctx_term(context)
    }

    // Wrapper.
    do {
        let context = try Context()
        let pull = try Socket(context: context, type: .pull)
        let push = try Socket(context: context, type: .push)
        try pull.set(.receiveHighWaterMark, 0)
        try push.set(.sendHighWaterMark, 0)
        try pull.bind("inproc://percall-wrapper-\(round)")
        try push.connect("inproc://percall-wrapper-\(round)")
        var start = threadCPUTime()
        for _ in 0..<count {
            try push.send(payload)
        }
        result.wrapperSend = perCall(start)
        var total = 0
        start = threadCPUTime()
        for _ in 0..<count {
            let bytes = try pull.receive()
            total &+= Int(bytes[0]) &+ bytes.count
        }
        result.wrapperReceive = perCall(start)
        for _ in 0..<count {
            try push.send(payload)
        }
        var buffer: [UInt8] = []
        start = threadCPUTime()
        for _ in 0..<count {
            try pull.receive(into: &buffer)
            total &+= Int(buffer[0]) &+ buffer.count
        }
        result.wrapperReceiveInto = perCall(start)
        precondition(total == 2 * count * (size + 0x5A))
    }
    return result
}

// MARK: - Statistics and report

struct Series {
    let name: String
    var times: [Duration] = []

    func rates(_ messages: Int) -> [Double] {
        self.times.map { Double(messages) / $0.seconds }.sorted()
    }

    func best(_ messages: Int) -> Double { self.rates(messages).last ?? 0 }

    func median(_ messages: Int) -> Double {
        let rates = self.rates(messages)
        guard !rates.isEmpty else { return 0 }
        let middle = rates.count / 2
        return rates.count % 2 == 1 ? rates[middle] : (rates[middle - 1] + rates[middle]) / 2
    }
}

extension Duration {
    var seconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }
}

func formatRate(_ rate: Double) -> String {
    let rounded = Int(rate.rounded())
    var digits = String(rounded)
    var index = digits.count - 3
    while index > 0 {
        digits.insert(",", at: digits.index(digits.startIndex, offsetBy: index))
        index -= 3
    }
    return digits
}

func formatPercent(_ value: Double) -> String {
    String(format: "%+.1f%%", value * 100)
}

/// How much slower `series` is than `baseline`: time ratio minus one (positive = wrapper costs more).
func overhead(_ series: Double, _ baseline: Double) -> Double {
    baseline / series - 1
}

// MARK: - Main

let arguments = Arguments.parseOrExit()
let version = ZeroMQ.version
let loadAtStart = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
    .map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "unknown"
print("zeromq-benchmark: libzmq \(version), \(arguments.messages) messages of \(arguments.size) bytes, "
    + "\(arguments.rounds) alternating rounds, HWM \(arguments.highWaterMark)")

// Warm up every path once (page faults, lazy symbol binding, allocator).
var warmup = arguments
warmup.messages = max(1, arguments.messages / 10)
let runsRaw = arguments.variants.contains("raw")
let runsReceive = arguments.variants.contains("receive")
let runsInto = arguments.variants.contains("into")
if runsRaw { _ = rawCRound(warmup, round: -1) }
if runsReceive { _ = try wrapperRound(warmup, round: -1, mode: .allocating) }
if runsInto { _ = try wrapperRound(warmup, round: -1, mode: .reusing) }

var raw = Series(name: "raw C (zmq_send / zmq_msg_recv)")
var allocating = Series(name: "wrapper, send([UInt8]) / receive()")
var reusing = Series(name: "wrapper, send([UInt8]) / receive(into:)")
for round in 0..<arguments.rounds {
    var line = "round \(round + 1):"
    if runsRaw {
        raw.times.append(rawCRound(arguments, round: round))
        line += " raw \(formatRate(Double(arguments.messages) / raw.times.last!.seconds)) msg/s"
    }
    if runsReceive {
        allocating.times.append(try wrapperRound(arguments, round: round, mode: .allocating))
        line += " wrapper receive() \(formatRate(Double(arguments.messages) / allocating.times.last!.seconds)) msg/s"
    }
    if runsInto {
        reusing.times.append(try wrapperRound(arguments, round: round, mode: .reusing))
        line += " wrapper receive(into:) \(formatRate(Double(arguments.messages) / reusing.times.last!.seconds)) msg/s"
    }
    print(line)
}

// Many short rounds: the best of them is the least disturbed by other processes.
let perCallCount = min(arguments.messages, 100_000)
let perCallRoundCount = max(3 * arguments.rounds, 9)
_ = try perCallRound(arguments, count: max(1, perCallCount / 10), round: -1)
var perCallRounds: [PerCallRound] = []
for round in 0..<perCallRoundCount {
    perCallRounds.append(try perCallRound(arguments, count: perCallCount, round: round))
}

/// The lowest and the median of one per-call measurement over all rounds.
func perCallStats(
    _ rounds: [PerCallRound],
    _ key: KeyPath<PerCallRound, Double>
) -> (best: Double, median: Double) {
    let values = rounds.map { $0[keyPath: key] }.sorted()
    guard !values.isEmpty else { return (0, 0) }
    let middle = values.count / 2
    let median = values.count % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2
    return (values[0], median)
}

let messages = arguments.messages
var lines: [String] = []
lines.append("# ZeroMQ wrapper benchmark")
lines.append("")
lines.append("inproc PUSH/PULL, \(messages) messages of \(arguments.size) bytes per round, sender on a background")
lines.append("Thread, receiver on the main thread, SNDHWM/RCVHWM \(arguments.highWaterMark). \(arguments.rounds) rounds per")
lines.append("variant, alternating raw / wrapper / wrapper, after one warm-up round each. Time runs from starting")
lines.append("the sender to receiving the last message.")
lines.append("")
lines.append("- Date: \(ISO8601DateFormatter().string(from: Date()))")
lines.append("- libzmq: \(version)")
lines.append("- CPUs: \(ProcessInfo.processInfo.activeProcessorCount); load average at start: \(loadAtStart)")
lines.append("- Build: `Benchmarks/build zeromq-benchmark` (the benchmark package, Benchmarks/Package.swift)")
lines.append("")
lines.append("| Variant | Best msg/s | Median msg/s | Overhead vs raw (best) | Overhead vs raw (median) |")
lines.append("| --- | ---: | ---: | ---: | ---: |")
let measured = [raw, allocating, reusing].filter { !$0.times.isEmpty }
for series in measured {
    let isRaw = series.name == raw.name || raw.times.isEmpty
    let bestOverhead = isRaw ? "—" : formatPercent(overhead(series.best(messages), raw.best(messages)))
    let medianOverhead = isRaw ? "—" : formatPercent(overhead(series.median(messages), raw.median(messages)))
    lines.append(
        "| \(series.name) | \(formatRate(series.best(messages))) | \(formatRate(series.median(messages))) "
            + "| \(bestOverhead) | \(medianOverhead) |"
    )
}
lines.append("")
lines.append("Overhead = raw rate / wrapper rate − 1 (positive: the wrapper is slower). Target: < +10%.")
lines.append("")
lines.append("All rounds (msg/s):")
lines.append("")
for series in measured {
    let rates = series.times.map { formatRate(Double(messages) / $0.seconds) }
    lines.append("- \(series.name): \(rates.joined(separator: ", "))")
}
lines.append("")
lines.append("## Per-call cost")
lines.append("")
lines.append("One thread sends \(perCallCount) messages into an unbounded inproc pipe, then drains it; thread CPU time")
lines.append("per call (ns), best and median of \(perCallRoundCount) rounds. This isolates the wrapper's own cost from")
lines.append("the scheduling noise of the two-thread stream above (on a shared 2-core machine that noise is large).")
lines.append("")
lines.append("| Operation | Raw C ns (best / median) | Wrapper ns (best / median) | Overhead (best / median) |")
lines.append("| --- | ---: | ---: | ---: |")
let perCallRows: [(String, KeyPath<PerCallRound, Double>, KeyPath<PerCallRound, Double>)] = [
    ("send 32 B: zmq_send vs send([UInt8])", \.rawSend, \.wrapperSend),
    ("receive: zmq_msg_recv vs receive() -> [UInt8]", \.rawReceive, \.wrapperReceive),
    ("receive: zmq_msg_recv vs receive(into:)", \.rawReceive, \.wrapperReceiveInto),
    ("receive: zmq_msg_recv + memcpy vs receive() -> [UInt8]", \.rawReceiveCopy, \.wrapperReceive),
]
for (name, rawKey, wrapperKey) in perCallRows {
    let rawStats = perCallStats(perCallRounds, rawKey)
    let wrapperStats = perCallStats(perCallRounds, wrapperKey)
    let bestOverhead = formatPercent(wrapperStats.best / rawStats.best - 1)
    let medianOverhead = formatPercent(wrapperStats.median / rawStats.median - 1)
    lines.append(
        "| \(name) | \(String(format: "%.1f / %.1f", rawStats.best, rawStats.median)) "
            + "| \(String(format: "%.1f / %.1f", wrapperStats.best, wrapperStats.median)) "
            + "| \(bestOverhead) / \(medianOverhead) |"
    )
}
lines.append("")
let report = lines.joined(separator: "\n")
print("")
print(report)

let outputURL = URL(fileURLWithPath: arguments.output)
do {
    try FileManager.default.createDirectory(
        at: outputURL.deletingLastPathComponent(),
        withIntermediateDirectories: true
    )
    try Data(report.utf8).write(to: outputURL)
    print("wrote \(arguments.output)")
} catch {
    FileHandle.standardError.write(Data("zeromq-benchmark: cannot write \(arguments.output): \(error)\n".utf8))
    exit(1)
}
