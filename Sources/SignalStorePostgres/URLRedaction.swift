import Foundation

/// The one place that hides passwords in database URLs before they reach an error message or a
/// log line; every URL the worker prints goes through it.
public enum URLRedaction {
    /// `text` with the password of `scheme://user:password@host…` replaced by `***`
    /// (`postgres://app:***@db:5432/app`).
    ///
    /// The user information is taken to end at the *last* `@`, so a password holding `/`, `?`,
    /// `#` or `@` that should have been percent-encoded is still hidden: when in doubt, more is
    /// hidden, never less. Text without `://` (`postgres:/app:pw@db/app`, a mistyped URL) is
    /// read the same way from its start.
    public static func redactingPassword(in text: String) -> String {
        let start = text.range(of: "://")?.upperBound ?? text.startIndex
        guard let at = text[start...].lastIndex(of: "@"), let colon = text[start..<at].firstIndex(of: ":") else {
            return text
        }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}
