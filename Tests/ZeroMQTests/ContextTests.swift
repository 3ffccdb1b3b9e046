import Foundation
import Testing
import ZeroMQ

@Suite("Context lifecycle never hangs")
struct ContextTests {
    @Test("terminate with live sockets, a blocked receiver and messages queued for an absent peer finishes fast")
    func terminateWithLiveSocketsAndPendingMessages() throws {
        let context = try Context()
        let scratch = try ScratchDirectory()
        let absentPeer = scratch.ipcEndpoint()

        // A receiver blocked forever (no timeout) on another thread.
        let receiverEndpoint = uniqueInprocEndpoint()
        let receiverReady = DispatchSemaphore(value: 0)
        let receiverOutcome = Locked<ZeroMQError.Code?>(nil)
        let receiverThread = Thread {
            do {
                let pull = try Socket(context: context, type: .pull)
                try pull.bind(receiverEndpoint)
                receiverReady.signal()
                _ = try pull.receive()
            } catch let error as ZeroMQError {
                receiverOutcome.value = error.code
            } catch {}
            receiverReady.signal()
        }
        receiverThread.start()
        #expect(receiverReady.wait(timeout: .now() + 2) == .success)

        // Messages queued for a peer that never comes up.
        let push = try Socket(context: context, type: .push)
        try push.set(.sendHighWaterMark, 100)
        try push.connect(absentPeer)
        var queued = 0
        while (try? push.send(bytes("pending"), flags: .dontWait)) != nil {
            queued += 1
        }
        #expect(queued >= 100)

        // Terminate from another thread while this thread blocks in send on the full pipe.
        let start = ContinuousClock.now
        let terminated = DispatchSemaphore(value: 0)
        Thread {
            context.terminate()
            terminated.signal()
        }.start()
        try push.set(.sendTimeout, .seconds(10))
        let error = try #require(throws: ZeroMQError.self) { try push.send(bytes("blocked")) }
        #expect(error.code == .contextTerminated)
        push.close()

        #expect(terminated.wait(timeout: .now() + 5) == .success)
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(receiverOutcome.value == .contextTerminated)
        #expect(context.isShutDown)
        let late = try #require(throws: ZeroMQError.self) { try Socket(context: context, type: .pull) }
        #expect(late.code == .contextTerminated)
    }

    @Test("dropping a context and its sockets with unsent messages does not hang")
    func deinitWithPendingMessages() throws {
        let scratch = try ScratchDirectory()
        let endpoint = scratch.ipcEndpoint()
        let queued = Locked(0)
        let outcome = runOnThread(deadline: .seconds(5)) {
            guard let context = try? Context(), let push = try? Socket(context: context, type: .push) else { return }
            try? push.connect(endpoint)
            while (try? push.send(bytes("pending"), flags: .dontWait)) != nil {
                queued.value += 1
            }
            // push and context are released here: Socket.deinit closes, Context.deinit terminates.
        }
        #expect(outcome.finished)
        #expect(outcome.elapsed < .seconds(2))
        #expect(queued.value >= 1000)
    }

    @Test("shutdown interrupts a blocking receive with .contextTerminated")
    func shutdownInterruptsBlockingReceive() throws {
        let context = try Context()
        let endpoint = uniqueInprocEndpoint()
        let ready = DispatchSemaphore(value: 0)
        let outcome = Locked<ZeroMQError.Code?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Thread {
            do {
                let socket = try Socket(context: context, type: .rep)
                try socket.bind(endpoint)
                ready.signal()
                _ = try socket.receive()
            } catch let error as ZeroMQError {
                outcome.value = error.code
            } catch {}
            finished.signal()
        }.start()
        #expect(ready.wait(timeout: .now() + 2) == .success)
        Thread.sleep(forTimeInterval: 0.05)
        context.shutdown()
        #expect(context.isShutDown)
        #expect(finished.wait(timeout: .now() + 2) == .success)
        #expect(outcome.value == .contextTerminated)
        let error = try #require(throws: ZeroMQError.self) { try Socket(context: context, type: .req) }
        #expect(error.code == .contextTerminated)
        let (finishedTerminate, elapsed) = runOnThread(deadline: .seconds(5)) { context.terminate() }
        #expect(finishedTerminate)
        #expect(elapsed < .seconds(2))
    }

    @Test("sockets start with the context's bounded linger")
    func defaultLinger() throws {
        let context = try Context(ioThreads: 2, defaultLinger: .milliseconds(250))
        #expect(context.defaultLinger == .milliseconds(250))
        let socket = try Socket(context: context, type: .dealer)
        #expect(try socket.get(.linger) == .milliseconds(250))
        let zeroContext = try Context()
        #expect(try Socket(context: zeroContext, type: .dealer).get(.linger) == .zero)
        #expect(throws: ZeroMQError.self) { try Context(ioThreads: -1) }
    }
}
