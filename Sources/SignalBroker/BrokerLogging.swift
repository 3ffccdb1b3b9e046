import WorkerOperations

/// How routing ids appear in the broker's logs.
enum RoutingIDText {
    /// Printable ASCII as is (workers name themselves `host:pid:random`), anything else as hex
    /// (libzmq's generated ids: a zero byte and four bytes).
    static func describe(_ id: [UInt8]) -> String {
        if !id.isEmpty, id.allSatisfy({ (0x21...0x7E).contains($0) }) {
            return String(decoding: id, as: UTF8.self)
        }
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = Array("0x".utf8)
        for byte in id {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
