/// What the database itself enforces on the profile's text columns.
///
/// Django does not validate on `objects.create()`/`save()`; the database does.
/// SQLite ignores `varchar(n)` lengths, PostgreSQL enforces them and refuses NUL
/// characters, so the same message can be fine on one and `invalid_value` on the other.
public struct ColumnLimits: Sendable, Hashable {
    /// Maximum `profile_type` length in characters, `nil` when not enforced.
    public var profileTypeMaxLength: Int?
    /// Maximum `sex` length in characters, `nil` when not enforced.
    public var sexMaxLength: Int?
    /// Whether text containing U+0000 is refused.
    public var rejectsNUL: Bool

    /// Creates limits.
    public init(profileTypeMaxLength: Int? = nil, sexMaxLength: Int? = nil, rejectsNUL: Bool = false) {
        self.profileTypeMaxLength = profileTypeMaxLength
        self.sexMaxLength = sexMaxLength
        self.rejectsNUL = rejectsNUL
    }

    /// SQLite: no length checks, NUL stored as is.
    public static let unenforced = ColumnLimits()
}
