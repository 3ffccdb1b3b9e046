/// DRF's `Token.generate_key()`: `secrets.token_hex(20)` (DRF 3.15 to 3.17).
public enum TokenKey {
    /// 20 bytes from the system's cryptographically secure generator (`getrandom` on Linux), as
    /// 40 lowercase hex characters.
    @Sendable
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(40)
        for _ in 0..<20 {
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Whether `text` looks like a key DRF generates.
    public static func isWellFormed(_ text: String) -> Bool {
        text.utf8.count == 40 && text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }
}
