import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `--metrics-bind`: Prometheus text over HTTP, counting what the worker answered.
@Suite("metrics endpoint")
struct MetricsEndpointTests {
    @Test("GET /metrics counts replies by action and exposes the batch size and request duration histograms")
    func countsWhatWasSent() async throws {
        let database = try await SQLiteFixture.make("e2e-metrics")
        defer { database.remove() }
        try database.insertUsers(1...7)
        let messages = Messages()

        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
            let url = try #require(worker.metricsURL.flatMap(URL.init(string:)))
            #expect(url.path == "/metrics")
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            for user in 1...7 { #expect(try await client.request(messages.signal(user: user, created: true)).isOK("created")) }
            for user in 1...2 { #expect(try await client.request(messages.signal(user: user, created: false)).isOK("updated")) }
            #expect(try await client.request(messages.ping()).isOK("pong"))
            #expect(try await client.request(messages.signal(user: 3, created: true, sender: "auth.group")).isError("unsupported"))

            let (status, text) = try await Self.get(url)
            #expect(status == 200)
            let samples = PrometheusSamples(text)
            #expect(samples.value("signal_worker_requests_total", ["status": "ok", "action": "created"]) == 7, "\(text)")
            #expect(samples.value("signal_worker_requests_total", ["status": "ok", "action": "updated"]) == 2)
            #expect(samples.value("signal_worker_requests_total", ["status": "ok", "action": "pong"]) == 1)
            #expect(samples.value("signal_worker_requests_total", ["status": "error", "code": "unsupported"]) == 1)
            #expect(text.contains("signal_worker_requests_total{"))
            #expect(text.contains("signal_worker_batch_size"))
            #expect(text.contains("signal_worker_request_duration_seconds"))
            // Nine requests reached the store, so the duration histogram counted nine.
            #expect(samples.value("signal_worker_request_duration_seconds_count", [:]) == 9, "\(text)")

            let (missing, _) = try await Self.get(url.deletingLastPathComponent().appendingPathComponent("nothing-here"))
            #expect(missing == 404)
        }
    }

    /// A GET with a 10 s timeout; returns status and body.
    static func get(_ url: URL) async throws -> (Int, String) {
        var request = URLRequest(url: url)
        request.timeoutInterval = 10
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? -1, String(decoding: data, as: UTF8.self))
    }
}

/// The samples of a Prometheus text exposition, looked up by name and (a subset of) labels.
struct PrometheusSamples {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var samples: [Sample] = []

    init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            let series = line[..<space]
            var name = String(series)
            var labels: [String: String] = [:]
            if let open = series.firstIndex(of: "{"), series.hasSuffix("}") {
                name = String(series[..<open])
                let body = series[series.index(after: open)..<series.index(before: series.endIndex)]
                for pair in body.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { continue }
                    labels[String(parts[0])] = String(parts[1]).trimmingCharacters(in: ["\""])
                }
            }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
    }

    /// The value of the one sample named `name` whose labels include `labels`; `nil` if none or several.
    func value(_ name: String, _ labels: [String: String]) -> Double? {
        let matches = samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }
        return matches.count == 1 ? matches[0].value : nil
    }
}
