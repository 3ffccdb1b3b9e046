import Foundation
import SignalBroker
import SignalWorker
import WorkerOperations
import Testing

/// A database password never reaches the output: not in errors about a bad URL (even one whose
/// password holds characters that should have been percent-encoded, or a mistyped scheme), not
/// in the start-up line.
@Suite("store URL passwords are redacted")
struct PasswordRedactionTests {
    /// The password's pieces: none may appear in any output.
    static let secretPieces = ["Kq7vQ", "Mz2xR"]

    /// Store URLs with a password made of the pieces, each wrong in its own way.
    static let badURLs = [
        "postgres://bob:Kq7vQMz2xR@db:notaport/app",  // bad port
        "postgres://bob:Kq7vQ/Mz2xR@db/app",  // unencoded / in the password
        "postgres://bob:Kq7vQ?Mz2xR@db/app",  // unencoded ?
        "postgres://bob:Kq7vQ#Mz2xR@db/app",  // unencoded #
        "postgres://bob:Kq7vQ@Mz2xR@db/app?bogus=1",  // unencoded @ and a bad parameter
        "postgresql://bob:Kq7vQMz2xR@db/app?sslmode=sometimes",
        "mysql://bob:Kq7vQMz2xR@db/app",  // unknown scheme
        "postgres:/bob:Kq7vQMz2xR@db/app",  // a slash missing: not a file name
    ]

    @Test("check and serve with a bad store URL fail, and print the URL with *** for its password", arguments: badURLs)
    func badURLIsRedactedInTheOutput(url: String) async throws {
        for command in [
            ["check", "--store", url], ["serve", "--store", url, "--bind", "tcp://127.0.0.1:*", "--log-format", "json"],
        ] {
            let result = try await ChildProcess.runWorkerCommand(command)
            #expect(result.exit != CommandLineTests.success, "\(result.output)")
            #expect(result.output.contains("***"), "the URL is not shown at all: \(result.output)")
            for piece in Self.secretPieces {
                #expect(!result.output.contains(piece), "\(command[0]) printed the password: \(result.output)")
            }
        }
    }

    @Test("StoreLocation: the description and parse errors redact; paths and password-less URLs are unchanged")
    func storeLocationRedacts() throws {
        for url in Self.badURLs {
            let shown: String
            do {
                shown = try StoreLocation(parsing: url).description
            } catch {
                shown = error.message
            }
            #expect(shown.contains("***"), "\(shown)")
            for piece in Self.secretPieces { #expect(!shown.contains(piece), "\(shown)") }
        }
        #expect(try StoreLocation(parsing: "postgres://bob:pw@db:5432/app").description == "postgres://bob:***@db:5432/app")
        #expect(try StoreLocation(parsing: "postgres://bob@db/app").description == "postgres://bob@db/app")
        #expect(try StoreLocation(parsing: "sqlite:///var/lib/app/db.sqlite3").description == "sqlite:///var/lib/app/db.sqlite3")
        #expect(try StoreLocation(parsing: "db.sqlite3") == .sqlite(path: "db.sqlite3"))
        #expect(try StoreLocation(parsing: "./data/db.sqlite3") == .sqlite(path: "./data/db.sqlite3"))
    }
}
