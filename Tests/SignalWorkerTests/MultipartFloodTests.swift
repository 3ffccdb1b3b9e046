import Foundation
import SignalBroker
import SignalWorker
import WorkerOperations
import Testing
import ZeroMQ

/// `ZMQ_MAXMSGSIZE` bounds a frame, not a message: libzmq keeps the frames of a multipart message
/// that never ends in the connection's pipe, outside the high-water mark (which counts complete
/// messages). Only authentication keeps strangers from doing that: with CURVE, a peer without an
/// allowed key never gets past the handshake, so no message frame of it is read.
///
/// libzmq's own sockets never send a frame of an unfinished message, so the flood is written by
/// hand (ZMTP 3.0 over a plain TCP connection), as an attacker would.
@Suite("multipart flood", .enabled(if: ZeroMQ.has(.curve), "libzmq was built without CURVE"))
struct MultipartFloodTests {
    /// Frames of 120 KiB (under the default 128 KiB cap), sent with MORE and never finished.
    static let frameBytes = 120 * 1024
    static let frames = 400  // 47 MiB

    @Test("with CURVE, an unauthenticated peer's unfinished multipart flood leaves the worker's RSS within 20 MiB of idle; on a plaintext worker the same flood is buffered")
    func floodWithoutAnAllowedKeyIsNotBuffered() async throws {
        let keys = try await CurveSecurityTests.Keys.make("flood")
        defer { try? FileManager.default.removeItem(at: keys.directory) }
        let database = try await SQLiteFixture.make("flood-db")
        defer { database.remove() }
        let frame = ZMTP.moreFrame(size: Self.frameBytes)

        // The control: a plaintext worker on loopback admits the peer, and libzmq buffers its
        // unfinished message (the residual risk docs/DEPLOYMENT.md describes for admitted peers).
        // How long the flood takes to arrive here, now, sets how long it is watched below.
        let arrival = try await withWorker(WorkerProcess.serveArguments(store: database.storeURL, metrics: false)) {
            worker -> Duration in
            let idleKiB = residentKiB(of: worker.pid)
            let started = ContinuousClock.now
            let (host, port) = try #require(RawTCPConnection.hostAndPort(worker.endpoint))
            let grownKiB = try await onThread("flood-plaintext") { () throws -> Int in
                let connection = try RawTCPConnection(host: host, port: port)
                defer { connection.close() }
                guard ZMTP.nullHandshake(connection) else { throw TestFailure("the ZMTP handshake with the worker failed") }
                for index in 0..<Self.frames where !connection.send(frame) {
                    throw TestFailure("the worker hung up after \(index) frames: \(String(cString: strerror(errno)))")
                }
                var grownKiB = 0
                while grownKiB < 30 * 1024, started.duration(to: .now) < .seconds(60) {
                    Thread.sleep(forTimeInterval: 0.02)
                    grownKiB = residentKiB(of: worker.pid) - idleKiB
                }
                return grownKiB
            }
            #expect(grownKiB >= 30 * 1024, "a 47 MiB unfinished message grew a plaintext worker by only \(grownKiB / 1024) MiB")
            print("multipart flood: plaintext worker grew by \(grownKiB / 1024) MiB in \(started.duration(to: .now))")
            return started.duration(to: .now)
        }

        try await withWorker(CurveSecurityTests().serveArguments(database, keys)) { worker in
            let server = try keys.workerPublicKey()
            let trusted = try TestClient(worker.endpoint, curve: (try keys.pair("clients/django.key"), server))
            defer { trusted.close() }
            #expect(try await trusted.request(Messages().ping()).isOK("pong"))
            let idleKiB = residentKiB(of: worker.pid)
            #expect(idleKiB > 0)
            let sampler = ResidentMemorySampler(pid: worker.pid, intervalSeconds: 0.02)

            // A peer with an unknown key, through libzmq: refused by the authentication handler.
            let stranger = try TestClient(worker.endpoint, curve: (try keys.pair("stranger.key"), server))
            defer { stranger.close() }
            for _ in 0..<Self.frames { try stranger.socket.send([UInt8](repeating: 0x78, count: Self.frameBytes), more: true) }
            try await waitUntil("the unknown key is refused", logsOf: worker.child) {
                $0.contains { $0.message.contains("refused a connection: unknown client public key") }
            }

            // Raw peers that flood anyway: one offering NULL (the worker answers with CURVE), one
            // offering CURVE with a HELLO it cannot have made right (it holds no allowed key).
            let (host, port) = try #require(RawTCPConnection.hostAndPort(worker.endpoint))
            let plaintextHandshake = try await onThread("flood-null") { () throws -> (handshook: Bool, hungUp: Bool) in
                let connection = try RawTCPConnection(host: host, port: port)
                defer { connection.close() }
                let handshook = ZMTP.nullHandshake(connection)
                for _ in 0..<Self.frames where !connection.send(frame) { break }
                return (handshook, connection.waitForPeerClose(timeout: .seconds(30)))
            }
            #expect(!plaintextHandshake.handshook, "a CURVE worker completed a NULL handshake")
            #expect(plaintextHandshake.hungUp, "the worker kept the NULL flood's connection open")
            let curveHungUp = try await onThread("flood-curve") { () throws -> Bool in
                let connection = try RawTCPConnection(host: host, port: port)
                defer { connection.close() }
                guard connection.send(ZMTP.greeting(mechanism: "CURVE")),
                    connection.receive(exactly: 64, timeout: .seconds(10)) != nil,
                    connection.send(ZMTP.command("HELLO", size: 200))
                else { return true }
                for _ in 0..<Self.frames where !connection.send(frame) { break }
                return connection.waitForPeerClose(timeout: .seconds(30))
            }
            #expect(curveHungUp, "the worker kept the CURVE flood's connection open")
            // Had the worker read it, the flood would have grown it within `arrival` (measured
            // above); watch twice as long before taking the peak.
            try await Task.sleep(for: max(.seconds(1), arrival * 2))
            let (peakKiB, samples) = sampler.stop()
            #expect(samples > 0)
            #expect(
                peakKiB - idleKiB < 20 * 1024,
                "an unauthenticated flood grew the worker from \(idleKiB / 1024) to \(peakKiB / 1024) MiB")
            print("multipart flood: CURVE worker, RSS \(idleKiB / 1024) MiB idle, peak \(peakKiB / 1024) MiB")
            #expect(try await trusted.request(Messages().ping()).isOK("pong"), "the allowed client is still served")
        }
    }
}
