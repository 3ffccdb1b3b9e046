import SignalProtocol
import Testing

/// A decoder given the receivers' paths of `attrs` keeps those, each in its own slot, and
/// checks the rest without building it; it must read every declared path as the whole-`attrs`
/// decoder does (RequestFuzzer compares the two on generated inputs).
@Suite("attrs decoded by path")
struct AttributeLayoutTests {
    let layout = AttributeLayout([["_profile_data", "sex"], ["_profile_data", "birthdate"], ["flag"]])
    var selecting: RequestDecoder { RequestDecoder(maxFrameBytes: 4096, attributes: layout) }
    let whole = RequestDecoder(maxFrameBytes: 4096)

    func frame(attrs: String) -> [UInt8] {
        Array(
            """
            {"v":1,"id":"a1","signal":"post_save","sender":"auth.user","created":true,\
            "instance":{"model":"auth.user","pk":7},"attrs":\(attrs)}
            """.utf8)
    }

    func attributes(_ decoder: RequestDecoder, _ attrs: String) throws -> SignalAttributes {
        guard case .signal(let envelope) = try decoder.decode(frame(attrs: attrs)) else { throw LayoutTestError.notASignal }
        return envelope.attributes
    }

    @Test("the layout holds every prefix of its paths, each once, in the order first named")
    func prefixes() {
        #expect(layout.paths == [["_profile_data"], ["_profile_data", "sex"], ["_profile_data", "birthdate"], ["flag"]])
        #expect(AttributeLayout([[], ["a", "b"], ["a"]]).paths == [["a"], ["a", "b"]])
    }

    @Test("declared paths read as attrs whole reads them: values, null apart from absent, other types")
    func sameAsWhole() throws {
        let cases = [
            #"{"_profile_data":{"sex":"F","birthdate":null,"nickname":"x"},"flag":true,"other":[1,{"a":2}]}"#,
            #"{"_profile_data":{"birthdate":"1990-01-02"}}"#,
            #"{"_profile_data":"business"}"#,
            #"{"_profile_data":null,"flag":{"deep":1}}"#,
            #"{}"#,
            #"null"#,
        ]
        for attrs in cases {
            let selected = try attributes(selecting, attrs)
            let all = try attributes(whole, attrs)
            for path in [["_profile_data", "sex"], ["_profile_data", "birthdate"]] {
                #expect(selected.value(at: path) == all.value(at: path), "\(attrs) at \(path)")
            }
            #expect(selected.value(at: ["flag"]) == all.value(at: ["flag"]), "\(attrs)")
            // The object above a declared path tells its type; its members are read by their own paths.
            #expect(selected.value(at: ["_profile_data"])?.typeName == all.value(at: ["_profile_data"])?.typeName, "\(attrs)")
        }
        let selected = try attributes(selecting, cases[0])
        #expect(selected.value(at: ["_profile_data", "birthdate"]) == .null)
        #expect(selected.value(at: ["_profile_data", "nickname"]) == nil, "not declared: not kept")
        #expect(selected.value(at: ["other"]) == nil)
        #expect(selected.all == nil)
        #expect(try attributes(whole, cases[0]).all?["other"] != nil)
    }

    @Test("a repeated key wins whole, as in a dictionary: members of the earlier object do not survive")
    func repeatedKey() throws {
        let attrs = #"{"_profile_data":{"sex":"F","birthdate":"1990-01-02"},"_profile_data":{"sex":"M"}}"#
        let selected = try attributes(selecting, attrs)
        #expect(selected.value(at: ["_profile_data", "sex"]) == .string("M"))
        #expect(selected.value(at: ["_profile_data", "birthdate"]) == nil)
        #expect(selected.value(at: ["_profile_data", "birthdate"]) == (try attributes(whole, attrs)).value(at: ["_profile_data", "birthdate"]))
    }

    @Test("attributes not declared are still checked: malformed JSON or a non-object attrs is refused with the same error")
    func undeclaredAreChecked() {
        for attrs in [#"{"other":[1,}"#, #"{"other":"\u12"}"#, #"{"_profile_data":{"nickname":tru}}"#, #""text""#, #"[1]"#] {
            var errors: [String] = []
            for decoder in [selecting, whole] {
                do {
                    _ = try decoder.decode(frame(attrs: attrs))
                    errors.append("accepted")
                } catch {
                    errors.append("\(error)")
                }
            }
            #expect(errors[0] != "accepted", "\(attrs)")
            #expect(errors[0] == errors[1], "\(attrs)")
        }
    }

    @Test("two envelopes are equal when their declared attributes are, whatever else the frame held")
    func equality() throws {
        let one = try attributes(selecting, #"{"_profile_data":{"sex":"F"},"other":1}"#)
        let same = try attributes(selecting, #"{"other":2,"_profile_data":{"sex":"F"}}"#)
        let different = try attributes(selecting, #"{"_profile_data":{"sex":"M"}}"#)
        #expect(one == same)
        #expect(one.hashValue == same.hashValue)
        #expect(one != different)
        #expect(one != (try attributes(whole, #"{"_profile_data":{"sex":"F"},"other":1}"#)))
    }
}

enum LayoutTestError: Error {
    case notASignal
}
