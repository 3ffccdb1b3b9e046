import NIOCore

/// Runs a task's jobs on a NIO event loop: the task executor a batch prefers, set to the loop
/// of the connection it uses.
///
/// postgres-nio completes every query on its connection's event loop. A task on the global
/// concurrent executor that awaits several queries in a row therefore crosses threads twice per
/// query: the reply wakes a pool thread to resume the task, and the next query wakes the event
/// loop to write it. With this executor preferred (SE-0417), nonisolated async code (the store's,
/// postgres-nio's, `EventLoopFuture.get()`) runs on the event loop itself, so a reply resumes the
/// batch on the thread that read it and the next query is written without a wake-up.
/// The batch's own CPU work (decoding rows, the receiver's plan) runs on the loop as well: for
/// a batch of 1,000 messages a few milliseconds, during which that loop's other connections
/// wait. Measured with one request at a time, the whole change (with one task per batch, see
/// `PostgresSignalStore.withConnection`) took a round trip from about 2.1 to 1.8 ms.
final class EventLoopTaskExecutor: TaskExecutor {
    private let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
