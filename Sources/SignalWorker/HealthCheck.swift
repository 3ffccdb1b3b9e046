import Foundation
import SignalProtocol
import ZeroMQ

/// The client side of a `ping` request: what `signal-worker ping` and load balancers use.
public enum HealthCheck {
    /// The outcome of one ping.
    public struct Result: Sendable {
        /// Round-trip time.
        public var roundTrip: Duration
        /// The reply as received.
        public var reply: String
    }

    /// Sends a ping to `endpoint` from a fresh DEALER and waits up to `timeout` for the matching pong.
    public static func ping(_ endpoint: String, timeout: Duration) throws(WorkerError) -> Result {
        do {
            let context = try Context(ioThreads: 1, defaultLinger: .zero)
            defer { context.terminate() }
            let socket = try Socket(context: context, type: .dealer)
            defer { socket.close() }
            try socket.set(.immediate, true)
            try socket.set(.sendTimeout, timeout)  // with IMMEDIATE and no peer, send would block forever
            try socket.connect(endpoint)
            let id = "ping-\(UUID().uuidString.lowercased())"
            let started = ContinuousClock.now
            try socket.send(Array(#"{"v":1,"id":"\#(id)","type":"ping"}"#.utf8), flags: [])
            let poller = Poller()
            poller.register(socket, for: .readable)
            while true {
                let remaining = timeout - started.duration(to: .now)
                guard remaining > .zero, try !poller.poll(timeout: remaining).isEmpty else {
                    throw WorkerError(.socket, "no reply from \(endpoint) within \(timeout)")
                }
                let frames = try socket.receiveMultipart(flags: .dontWait)
                guard let body = frames.last else { continue }
                let text = String(decoding: body, as: UTF8.self)
                guard text.contains(id) else { continue }  // a late reply to someone else's request
                guard text.contains(#""action":"pong""#) else {
                    throw WorkerError(.socket, "unexpected reply from \(endpoint): \(text)")
                }
                return Result(roundTrip: started.duration(to: .now), reply: text)
            }
        } catch let error as WorkerError {
            throw error
        } catch {
            throw WorkerError(.socket, "ping \(endpoint) failed: \(error)")
        }
    }
}
