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

    /// A CURVE client's keys: its own pair and the server's public key (a worker's, or a broker's
    /// frontend or backend).
    public struct CurveClient: Sendable, Hashable {
        /// The client's key pair (its public key must be in the server's allowed keys).
        public var clientKeys: CurveKeyPair
        /// The server's public key.
        public var serverKey: CurveKey

        /// Creates the settings.
        public init(clientKeys: CurveKeyPair, serverKey: CurveKey) {
            self.clientKeys = clientKeys
            self.serverKey = serverKey
        }
    }

    /// Sends a ping to `endpoint` from a fresh DEALER (a CURVE client with `curve`) and waits up
    /// to `timeout` for the matching pong.
    public static func ping(_ endpoint: String, timeout: Duration, curve: CurveClient? = nil) throws(WorkerError) -> Result {
        do {
            let context = try Context(ioThreads: 1, defaultLinger: .zero)
            defer { context.terminate() }
            let socket = try Socket(context: context, type: .dealer)
            defer { socket.close() }
            if let curve {
                try socket.set(.curveServerKey, curve.serverKey)
                try socket.set(.curvePublicKey, curve.clientKeys.publicKey)
                try socket.set(.curveSecretKey, curve.clientKeys.secretKey)
            }
            try socket.set(.immediate, true)
            try socket.set(.sendTimeout, timeout)  // with IMMEDIATE and no peer, send would block forever
            try socket.connect(endpoint)
            let id = "ping-\(UUID().uuidString.lowercased())"
            let started = ContinuousClock.now
            // With IMMEDIATE, a send times out when no connection was established (no worker
            // there, or a CURVE handshake refused).
            if !(try sendUnlessTimedOut(socket, Array(#"{"v":1,"id":"\#(id)","type":"ping"}"#.utf8))) {
                throw WorkerError(
                    .socket,
                    "no connection to \(endpoint) within \(timeout): is the worker running there? "
                        + (curve == nil
                            ? "(a worker started with CURVE refuses plaintext clients)"
                            : "(with CURVE: is this client's public key among the worker's allowed clients, and the server key the worker's?)"))
            }
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

    /// Sends `bytes`; `false` if the send timed out.
    private static func sendUnlessTimedOut(_ socket: Socket, _ bytes: [UInt8]) throws(ZeroMQError) -> Bool {
        do {
            try socket.send(bytes, flags: [])
            return true
        } catch {
            guard error.code == .timedOut else { throw error }
            return false
        }
    }
}
