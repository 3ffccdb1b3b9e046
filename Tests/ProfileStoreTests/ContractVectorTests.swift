import SignalInbox
import DRFTokenReceiver
import Foundation
import ProfileReceiver
import SignalProtocol
import Testing

/// Runs every `Tests/Contract/vectors/*.json` against both stores: the Python suite reads
/// the same files, so the two receivers cannot drift apart.
@Suite("Contract vectors")
struct ContractVectorTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Contract/vectors", isDirectory: true)

    /// File names of the vectors, sorted.
    static let files: [String] =
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
        .filter { $0.hasSuffix(".json") }.sorted()

    /// Vectors whose every step is a `post_save` of the user model that decodes: they can run
    /// as one batch. (Validation errors such as a bad date are still answered per message.)
    static let batchableFiles: [String] = files.filter { file in
        guard let vector = try? ContractVector(contentsOf: directory.appendingPathComponent(file)) else { return false }
        let decoder = RequestDecoder()
        return vector.frames.allSatisfy { frame in
            guard case .signal(let envelope)? = try? decoder.decode(frame) else { return false }
            return envelope.signal == "post_save" && envelope.sender == "auth.user"
        }
    }

    @Test("the vector folder holds vectors, and every vector file parses")
    func vectorsParse() throws {
        #expect(!Self.files.isEmpty, "no vectors in \(Self.directory.path)")
        for file in Self.files {
            let vector = try ContractVector(contentsOf: Self.directory.appendingPathComponent(file))
            #expect(!vector.steps.isEmpty, "\(file) has no steps")
            #expect(vector.expected != nil, "\(file) has no expected state")
        }
    }

    @Test("each step as its own request", arguments: files, StoreKind.available)
    func stepByStep(file: String, kind: StoreKind) async throws {
        let vector = try ContractVector(contentsOf: Self.directory.appendingPathComponent(file))
        try await withFixture(kind) { fixture in
            try await Self.prepare(vector, in: fixture)
            let processor = try await RequestProcessor.make(receivers: vector.receivers, store: fixture.store)
            let decoder = RequestDecoder()
            for (index, frame) in vector.frames.enumerated() {
                let reply = await processor.reply(to: frame, store: fixture.store, decoder: decoder)
                let mismatch = vector.reply(step: index, kind: kind).mismatch(reply)
                #expect(mismatch == nil, "\(vector.name) step \(index + 1) on \(kind.testDescription): \(mismatch ?? "")")
            }
            try await Self.checkProfiles(vector, in: fixture)
        }
    }

    @Test("all steps as one batch (batching equals one by one)", arguments: batchableFiles, StoreKind.available)
    func oneBatch(file: String, kind: StoreKind) async throws {
        let vector = try ContractVector(contentsOf: Self.directory.appendingPathComponent(file))
        try await withFixture(kind) { fixture in
            try await Self.prepare(vector, in: fixture)
            let processor = try await RequestProcessor.make(receivers: vector.receivers, store: fixture.store)
            let replies = await processor.replies(to: vector.frames, store: fixture.store, decoder: RequestDecoder())
            #expect(replies.count == vector.frames.count)
            for (index, reply) in replies.enumerated() {
                let mismatch = vector.reply(step: index, kind: kind).mismatch(reply)
                #expect(mismatch == nil, "\(vector.name) step \(index + 1) in one batch on \(kind.testDescription): \(mismatch ?? "")")
            }
            try await Self.checkProfiles(vector, in: fixture)
        }
    }

    /// Writes the vector's initial state (after the worker tables exist).
    static func prepare(_ vector: ContractVector, in fixture: any StoreFixture) async throws {
        let initial = vector.initial
        if let users = initial.users, !users.isEmpty { try await fixture.addUsers(users) }
        if let profiles = initial.profiles, !profiles.isEmpty { try await fixture.addProfiles(profiles.map(\.stored)) }
        if let applied = initial.applied, !applied.isEmpty { try await fixture.addApplied(applied) }
        if let sequences = initial.sequences, !sequences.isEmpty {
            var parsed: [Int64: Int64] = [:]
            for (user, sequence) in sequences {
                guard let userID = Int64(user) else { throw ContractVector.FormatError(description: "sequence key \(user)") }
                parsed[userID] = sequence
            }
            try await fixture.setSequences(parsed)
        }
        for token in initial.tokens ?? [] {
            let key = try #require(token.key, "\(vector.name): an initial token needs its key")
            try await fixture.addToken(userID: token.userID, key: key)
        }
    }

    static func checkProfiles(_ vector: ContractVector, in fixture: any StoreFixture) async throws {
        let expected = try #require(vector.expectedProfiles(kind: fixture.kind), "\(vector.name) has no expected profiles")
        let actual = try await fixture.profiles()
        #expect(actual == expected, "\(vector.name) on \(fixture.kind.testDescription): final profile rows")
        let expectedTokens = (fixture.kind == .postgres ? vector.expectedPostgres ?? vector.expected : vector.expected)?.tokens
        guard let expectedTokens else { return }
        let tokens = try await fixture.tokens()
        #expect(
            tokens.keys.sorted() == expectedTokens.map(\.userID).sorted(),
            "\(vector.name) on \(fixture.kind.testDescription): users with a token")
        for token in expectedTokens {
            guard let key = tokens[token.userID] else { continue }
            if let expectedKey = token.key {
                #expect(key == expectedKey, "\(vector.name): the token of user \(token.userID) was kept")
            } else {
                #expect(TokenKey.isWellFormed(key), "\(vector.name): token \(key) is 40 lowercase hex characters")
            }
        }
    }
}
