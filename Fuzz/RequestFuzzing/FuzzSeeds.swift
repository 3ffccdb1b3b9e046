import Foundation

/// The frames fuzzing starts from: every message of the contract vectors
/// (`Tests/Contract/vectors/*.json`, objects re-encoded, raw strings as they are) and every
/// file of the corpus (`Fuzz/corpus/`: hand-made hostile frames and inputs that once broke an
/// invariant, replayed by the tests forever).
public enum FuzzSeeds {
    /// Loads the seeds under the repository at `root`; throws when there are none.
    public static func load(repository root: String) throws -> (vectors: [[UInt8]], corpus: [[UInt8]]) {
        let files = FileManager.default
        var vectors: [[UInt8]] = []
        let vectorDirectory = root + "/Tests/Contract/vectors"
        for name in try files.contentsOfDirectory(atPath: vectorDirectory).sorted() where name.hasSuffix(".json") {
            let data = try Data(contentsOf: URL(fileURLWithPath: vectorDirectory + "/" + name))
            guard let vector = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let steps = vector["steps"] as? [[String: Any]]
            else { continue }
            for step in steps {
                if let raw = step["message"] as? String {
                    vectors.append(Array(raw.utf8))
                } else if let message = step["message"], JSONSerialization.isValidJSONObject(message) {
                    vectors.append(Array(try JSONSerialization.data(withJSONObject: message, options: [.sortedKeys])))
                }
            }
        }
        let corpusDirectory = root + "/Fuzz/corpus"
        var corpus: [[UInt8]] = []
        for name in try files.contentsOfDirectory(atPath: corpusDirectory).sorted() where !name.hasPrefix(".") {
            corpus.append(Array(try Data(contentsOf: URL(fileURLWithPath: corpusDirectory + "/" + name))))
        }
        guard !vectors.isEmpty else { throw SeedError("no contract-vector messages under \(vectorDirectory)") }
        return (vectors, corpus)
    }

    /// Why seeds could not be loaded.
    public struct SeedError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
