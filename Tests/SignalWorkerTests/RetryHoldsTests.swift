import SignalInbox
import SignalProtocol
import SignalBroker
import SignalWorker
import WorkerOperations
import Testing

/// The retry hold as a state machine, without sockets (docs/PROTOCOL.md, "Exactly once and ordering").
@Suite("RetryHolds: a message that failed retryably is not overtaken by a later one of its object")
struct RetryHoldsTests {
    let user1 = ObjectKey(sender: "auth.user", pk: "1")
    let user2 = ObjectKey(sender: "auth.user", pk: "2")
    let start = ContinuousClock.now
    let unavailable = Reply.Outcome.error(ReplyError(.storeUnavailable, "database is locked"))

    func message(_ id: String, seq: Int64?, _ object: ObjectKey) -> RetryHolds.Message {
        RetryHolds.Message(id: id, sequence: seq, object: object)
    }

    @Test("after a retryable failure, later messages of the object are held until the failed one is applied")
    func laterMessagesWaitForTheFailedOne() {
        var holds = RetryHolds(holdTime: .seconds(60))
        let five = message("m5", seq: 5, user1)
        let six = message("m6", seq: 6, user1)
        #expect(holds.admit(five, now: start) == nil)
        holds.record(five, outcome: unavailable, now: start)

        let held = holds.admit(six, now: start + .seconds(1))
        #expect(held?.code == .storeUnavailable)
        #expect(held?.message.contains("seq 5, id m5") == true, "\(String(describing: held))")
        // Another object, and an older message of the same object, are not held.
        #expect(holds.admit(message("x", seq: 9, user2), now: start) == nil)
        #expect(holds.admit(message("m4", seq: 4, user1), now: start) == nil)

        // The failed message itself passes; once applied, the hold is gone.
        #expect(holds.admit(five, now: start + .seconds(2)) == nil)
        holds.record(five, outcome: .ok(.updated), now: start + .seconds(2))
        #expect(holds.admit(six, now: start + .seconds(2)) == nil)
        #expect(holds.count == 0)
    }

    @Test("without seq every later arrival of the object is held; a final error or stale ends the hold")
    func withoutSequenceAndOtherEndings() {
        var holds = RetryHolds(holdTime: .seconds(60))
        let first = message("a", seq: nil, user1)
        holds.record(first, outcome: unavailable, now: start)
        #expect(holds.admit(message("b", seq: nil, user1), now: start) != nil)
        #expect(holds.admit(message("c", seq: 1, user1), now: start) != nil)
        holds.record(first, outcome: .error(ReplyError(.invalidValue, "bad date")), now: start)
        #expect(holds.admit(message("b", seq: nil, user1), now: start) == nil)

        let seven = message("m7", seq: 7, user2)
        holds.record(seven, outcome: unavailable, now: start)
        holds.record(seven, outcome: .stale(lastSequence: 9), now: start)
        #expect(holds.admit(message("m10", seq: 10, user2), now: start) == nil)
    }

    @Test("the hold ends after the hold time since the last failure, and moves to an older failed message")
    func expiryAndOlderFailure() {
        var holds = RetryHolds(holdTime: .seconds(10))
        let five = message("m5", seq: 5, user1)
        holds.record(five, outcome: unavailable, now: start)
        holds.record(five, outcome: unavailable, now: start + .seconds(8))  // a retry that failed again
        #expect(holds.admit(message("m6", seq: 6, user1), now: start + .seconds(17)) != nil)
        #expect(holds.admit(message("m6", seq: 6, user1), now: start + .seconds(18)) == nil)

        let later = message("m8", seq: 8, user2)
        let older = message("m3", seq: 3, user2)
        holds.record(later, outcome: unavailable, now: start)
        holds.record(older, outcome: unavailable, now: start)
        // Now seq 3 is what the object waits for: seq 8 itself is held behind it.
        #expect(holds.isHeld(user2, waitingFor: "m3"))
        #expect(holds.admit(later, now: start)?.message.contains("seq 3") == true)
        // A later message failing does not move the hold forward.
        holds.record(message("m9", seq: 9, user2), outcome: unavailable, now: start)
        #expect(holds.isHeld(user2, waitingFor: "m3"))
    }

    @Test("memory is bounded: past the capacity the oldest hold is dropped and counted")
    func boundedCapacity() {
        var holds = RetryHolds(holdTime: .seconds(60), capacity: 3)
        for pk in 1...5 {
            holds.record(
                message("m\(pk)", seq: 1, ObjectKey(sender: "auth.user", pk: "\(pk)")), outcome: unavailable,
                now: start + .milliseconds(pk))
        }
        #expect(holds.count == 3)
        #expect(holds.evicted == 2)
        #expect(!holds.isHeld(ObjectKey(sender: "auth.user", pk: "1"), waitingFor: "m1"))
        #expect(holds.isHeld(ObjectKey(sender: "auth.user", pk: "5"), waitingFor: "m5"))
    }

    @Test("a zero hold time holds nothing")
    func disabled() {
        var holds = RetryHolds(holdTime: .zero)
        holds.record(message("m5", seq: 5, user1), outcome: unavailable, now: start)
        #expect(holds.admit(message("m6", seq: 6, user1), now: start) == nil)
    }
}
