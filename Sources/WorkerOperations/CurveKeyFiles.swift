import Foundation
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// CURVE keys on disk, as `signal-worker keygen` writes them and `serve`, `ping` and the shim read them.
///
/// A key file holds one 40-character Z85 key on a line of its own; lines starting with `#`
/// and blank lines are ignored. `NAME.key` holds a secret key and must be readable by its
/// owner only (mode 0600 or stricter): the worker refuses to start otherwise, as ssh does.
/// `NAME.pub` holds the matching public key and may be shared.
public enum CurveKeyFiles {
    /// Reads a secret key file and derives its public key; refuses group- or world-accessible files.
    public static func readKeyPair(secretKeyFile path: String) throws(WorkerError) -> CurveKeyPair {
        let mode = try permissions(of: path)
        guard mode & 0o077 == 0 else {
            throw WorkerError(
                .configuration,
                "the secret key file \(path) has mode \(String(mode, radix: 8, uppercase: false)): it must be readable by its "
                    + "owner only (chmod 600 \(path))")
        }
        let key = try readKey(path, kind: "secret key")
        do {
            return try CurveKeyPair(secretKey: key)
        } catch {
            throw WorkerError(.configuration, "cannot derive the public key of \(path): \(error)")
        }
    }

    /// Reads a public key file.
    public static func readPublicKey(_ path: String) throws(WorkerError) -> CurveKey {
        try readKey(path, kind: "public key")
    }

    /// Reads every `*.pub` file of `directory`: the client public keys a worker admits.
    ///
    /// Throws when the directory is missing, holds no key (nobody could connect), or a file
    /// is not a key; names the file.
    public static func readAllowedClients(directory: String) throws(WorkerError) -> [String: CurveKey] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw WorkerError(.configuration, "cannot read the allowed client keys in \(directory): \(error.localizedDescription)")
        }
        var keys: [String: CurveKey] = [:]
        for name in names.sorted() where name.hasSuffix(".pub") && !name.hasPrefix(".") {
            keys[String(name.dropLast(".pub".count))] = try readPublicKey(directory + "/" + name)
        }
        guard !keys.isEmpty else {
            throw WorkerError(
                .configuration,
                "no client public keys (*.pub) in \(directory): no client could connect; create one with "
                    + "`signal-worker keygen --name django --directory \(directory)` and give django.key to the shim")
        }
        return keys
    }

    /// Writes a new key pair as `NAME.key` (mode 0600) and `NAME.pub` (mode 0644) in `directory`;
    /// refuses to overwrite existing files. Returns the pair.
    public static func generate(name: String, directory: String) throws(WorkerError) -> CurveKeyPair {
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw WorkerError(.configuration, "key name \(name.debugDescription) must be a plain file name")
        }
        let pair: CurveKeyPair
        do {
            pair = try CurveKeyPair.generate()
        } catch {
            throw WorkerError(.configuration, "cannot generate a CURVE key pair (libzmq without CURVE?): \(error)")
        }
        let secretPath = directory + "/" + name + ".key"
        let publicPath = directory + "/" + name + ".pub"
        try createKeyFile("# signal-worker CURVE secret key \(name): keep it private\n\(pair.secretKey.z85)\n", at: secretPath, mode: 0o600)
        try createKeyFile("# signal-worker CURVE public key \(name)\n\(pair.publicKey.z85)\n", at: publicPath, mode: 0o644)
        return pair
    }

    private static func readKey(_ path: String, kind: String) throws(WorkerError) -> CurveKey {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw WorkerError(.configuration, "cannot read the \(kind) file \(path): \(error.localizedDescription)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard lines.count == 1, let key = try? CurveKey(z85: lines[0]) else {
            throw WorkerError(
                .configuration, "\(path) is not a \(kind) file: expected one 40-character Z85 key (signal-worker keygen writes them)")
        }
        return key
    }

    private static func permissions(of path: String) throws(WorkerError) -> Int {
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
        } catch {
            throw WorkerError(.configuration, "cannot read the secret key file \(path): \(error.localizedDescription)")
        }
    }

    private static func createKeyFile(_ text: String, at path: String, mode: Int) throws(WorkerError) {
        // O_EXCL: never overwrite a key; the mode is set at creation, so the secret is never
        // readable by others, not even between creating and chmod-ing the file.
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, mode_t(mode))
        guard descriptor >= 0 else {
            let reason = errno == EEXIST ? "it exists; not overwriting a key" : String(cString: strerror(errno))
            throw WorkerError(.configuration, "cannot write \(path): \(reason)")
        }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw WorkerError(.configuration, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
