import Foundation
import SignalProtocol
import Testing

@Suite("Request decoding")
struct RequestDecoderTests {
    let decoder = RequestDecoder(maxFrameBytes: 4096)

    private func decode(_ json: String) throws(RequestDecodingError) -> Request {
        try decoder.decode(Array(json.utf8))
    }

    private func failure(_ json: String) -> RequestDecodingError? {
        failure(bytes: Array(json.utf8))
    }

    private func failure(bytes: [UInt8]) -> RequestDecodingError? {
        do {
            _ = try decoder.decode(bytes)
            return nil
        } catch {
            return error
        }
    }

    private let full = """
        {"v": 1, "id": "0193-a", "seq": 1041, "durable": false, "outbox_check": true, "signal": "post_save", "sender": "auth.user",
         "db": "default", "created": true, "raw": false, "update_fields": ["email"],
         "sent_at": "2026-11-25T13:00:00.123456Z",
         "instance": {"model": "auth.user", "pk": 42, "fields": {"username": "ann"}},
         "attrs": {"_profile_data": {"profile_type": "business", "sex": null, "birthdate": "1990-01-02"}}}
        """

    @Test("a full request decodes every field")
    func fullRequest() throws {
        guard case .signal(let envelope) = try decode(full) else {
            Issue.record("expected a signal")
            return
        }
        #expect(envelope.id == "0193-a")
        #expect(envelope.sequence == 1041)
        #expect(!envelope.durable)
        #expect(envelope.checksOutbox)
        #expect(envelope.signal == "post_save")
        #expect(envelope.sender == "auth.user")
        #expect(envelope.created)
        #expect(!envelope.raw)
        #expect(envelope.updateFields == ["email"])
        #expect(envelope.sentAt == "2026-11-25T13:00:00.123456Z")
        #expect(envelope.instance == InstanceReference(model: "auth.user", pk: .integer(42)))
        #expect(
            envelope.attributes.value(at: ["_profile_data"])
                == .object(["profile_type": .string("business"), "sex": .null, "birthdate": .string("1990-01-02")]))
    }

    @Test("null and absent keys stay distinct in attrs")
    func nullVersusAbsent() throws {
        guard case .signal(let envelope) = try decode(full), case .object(let data)? = envelope.attributes.value(at: ["_profile_data"])
        else {
            Issue.record("expected _profile_data")
            return
        }
        #expect(data["sex"] == .null)
        #expect(data["nickname"] == nil)
    }

    @Test("optional fields take their defaults")
    func defaults() throws {
        let request = try decode(
            #"{"v":1,"id":"x","signal":"post_save","sender":"auth.user","created":false,"instance":{"model":"auth.user","pk":1}}"#)
        guard case .signal(let envelope) = request else {
            Issue.record("expected a signal")
            return
        }
        #expect(envelope.sequence == nil)
        #expect(envelope.durable)
        #expect(!envelope.checksOutbox)
        #expect(envelope.database == "default")
        #expect(!envelope.raw)
        #expect(envelope.updateFields == nil)
        #expect(envelope.attributes.all?.isEmpty == true)
    }

    @Test("ping requests")
    func ping() throws {
        #expect(try decode(#"{"v":1,"id":"p1","type":"ping"}"#) == .ping(id: "p1"))
    }

    @Test("a pong lists the worker's features; no features, no key; behind is retryable and holds nothing")
    func pongFeaturesAndBehind() {
        let pong = Reply(id: "p", outcome: .ok(.pong), features: ["outbox_check"])
        #expect(String(decoding: pong.encoded(), as: UTF8.self) == #"{"v":1,"id":"p","status":"ok","result":{"action":"pong","features":["outbox_check"]}}"#)
        #expect(String(decoding: Reply.ok("p", .pong).encoded(), as: UTF8.self) == #"{"v":1,"id":"p","status":"ok","result":{"action":"pong"}}"#)
        let behind = Reply.error("m", ReplyError(.behind, "older", field: "outbox_check"))
        #expect(String(decoding: behind.encoded(), as: UTF8.self).hasSuffix(#""field":"outbox_check","retryable":true}}"#))
        #expect(ReplyErrorCode.behind.isRetryable && !ReplyErrorCode.behind.holdsObject && ReplyErrorCode.storeUnavailable.holdsObject)
    }

    @Test("one buffer reused for replies long and short holds each reply's bytes alone, as encoded() gives them")
    func encodeIntoReusedBuffer() {
        let replies = [
            Reply.error("a-long-id-\(String(repeating: "x", count: 200))", ReplyError(.badRequest, "quoted \"value\"", field: "seq")),
            Reply.ok("short", .created),
            Reply(id: nil, outcome: .stale(lastSequence: 42)),
            Reply(id: "p", outcome: .ok(.pong), features: ["outbox_check"]),
            Reply.ok("", .updated),
        ]
        var buffer: [UInt8] = Array("leftover bytes that must not survive".utf8)
        for reply in replies {
            reply.encode(into: &buffer)
            #expect(buffer == reply.encoded())
        }
    }

    @Test(
        "wrong input names the field",
        arguments: [
            (#"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","created":"yes","instance":{"model":"m","pk":1}}"#, "created"),
            (#"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","instance":{"model":"m","pk":1}}"#, "created"),
            (#"{"v":1,"id":"a","seq":"7","signal":"post_save","sender":"auth.user","created":true,"instance":{"model":"m","pk":1}}"#, "seq"),
            (#"{"v":1,"id":"a","seq":-3,"signal":"post_save","sender":"auth.user","created":true,"instance":{"model":"m","pk":1}}"#, "seq"),
            (#"{"v":1,"id":"a","durable":0,"signal":"post_save","sender":"auth.user","created":true,"instance":{"model":"m","pk":1}}"#, "durable"),
            (#"{"v":1,"id":"a","outbox_check":"yes","signal":"post_save","sender":"auth.user","created":true,"instance":{"model":"m","pk":1}}"#, "outbox_check"),
            (#"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","created":true,"instance":[1]}"#, "instance"),
            (#"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","created":true}"#, "instance"),
            (#"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","created":true,"instance":{"model":"m"}}"#, "instance.pk"),
            (#"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","created":true,"instance":{"model":"m","pk":1,"fields":3}}"#, "instance.fields"),
            (#"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","created":true,"instance":{"model":"m","pk":1},"attrs":[]}"#, "attrs"),
            (#"{"v":1,"id":"a","signal":"post_save","sender":"auth.user","created":true,"update_fields":"email","instance":{"model":"m","pk":1}}"#, "update_fields"),
            (#"{"v":1,"id":"","signal":"post_save"}"#, "id"),
            (#"{"v":1,"id":7}"#, "id"),
            (#"{"v":"1","id":"a"}"#, "v"),
        ])
    func badRequests(json: String, field: String) throws {
        let error = try #require(failure(json))
        #expect(error.error.code == .badRequest)
        #expect(error.error.field == field)
        #expect(error.error.message.contains(field))
    }

    @Test("the id is echoed on errors found after it")
    func idEchoed() throws {
        let error = try #require(failure(#"{"id":"abc","v":1,"created":1}"#))
        #expect(error.requestID == "abc")
    }

    @Test("unknown version and request type are unsupported")
    func unsupported() throws {
        let version = try #require(failure(#"{"v":2,"id":"a"}"#))
        #expect(version.error.code == .unsupported)
        #expect(version.error.field == "v")
        #expect(version.requestID == "a")
        let type = try #require(failure(#"{"v":1,"id":"a","type":"subscribe"}"#))
        #expect(type.error.code == .unsupported)
        #expect(type.error.field == "type")
    }

    @Test("malformed bytes and non-objects are bad requests without an id")
    func malformed() throws {
        for input in ["{not json", "[1,2]", "\"text\"", "", "{\"v\":1,\"id\":\"a\"", "\u{FF}", "{\"v\":1,\"id\":\"a\"} trailing"] {
            let error = try #require(failure(input))
            #expect(error.error.code == .badRequest, "input \(input.debugDescription)")
            #expect(error.requestID == nil)
        }
        let invalidUTF8 = try #require(failure(bytes: [0x7B, 0x22, 0xC3, 0x28, 0x22, 0x3A, 0x31, 0x7D]))
        #expect(invalidUTF8.error.code == .badRequest)
    }

    @Test("frames over the limit are refused before parsing")
    func oversized() throws {
        let big = "{\"v\":1,\"id\":\"a\",\"pad\":\"" + String(repeating: "x", count: 5000) + "\"}"
        let error = try #require(failure(big))
        #expect(error.error.code == .badRequest)
        #expect(error.error.message.contains("exceeds the limit of 4096 bytes"))
    }
}

@Suite("Reply encoding")
struct ReplyTests {
    private func object(_ reply: Reply) throws -> [String: Any] {
        let value = try JSONSerialization.jsonObject(with: Data(reply.encoded()))
        return try #require(value as? [String: Any])
    }

    @Test("ok replies carry the action", arguments: ReplyAction.allCases)
    func okReply(action: ReplyAction) throws {
        let json = try object(.ok("id-1", action))
        #expect(json["v"] as? Int == 1)
        #expect(json["id"] as? String == "id-1")
        #expect(json["status"] as? String == "ok")
        #expect((json["result"] as? [String: Any])?["action"] as? String == action.rawValue)
    }

    @Test("error replies carry code, message, field and retryability; text is escaped")
    func errorReply() throws {
        let message = "bad \"date\"\n\t\u{01} ünï"
        let json = try object(.error(nil, ReplyError(.invalidValue, message, field: "birthdate")))
        #expect(json["id"] is NSNull)
        #expect(json["status"] as? String == "error")
        let error = try #require(json["error"] as? [String: Any])
        #expect(error["code"] as? String == "invalid_value")
        #expect(error["message"] as? String == message)
        #expect(error["field"] as? String == "birthdate")
        #expect(error["retryable"] as? Bool == false)
        let retryable = try #require(try object(.error("x", ReplyError(.storeUnavailable, "down")))["error"] as? [String: Any])
        #expect(retryable["retryable"] as? Bool == true)
        #expect(retryable["field"] == nil)
    }
}
