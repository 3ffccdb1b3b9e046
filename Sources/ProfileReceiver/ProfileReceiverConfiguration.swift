import SignalInbox

/// Settings of the profile receiver.
public struct ProfileReceiverConfiguration: Sendable, Hashable {
    /// `UserProfile._meta.get_field('profile_type').default`.
    public var defaultProfileType: String
    /// The model label whose `post_save` the receiver handles (custom user models change it).
    public var senderLabel: String
    /// The profile model's table (`UserProfile._meta.db_table`).
    public var profileTable: String
    /// The user model's table.
    public var userTable: String
    /// Limits the database enforces (read from the schema at start-up).
    public var limits: ColumnLimits

    /// Creates a configuration; defaults match the reference Django project.
    public init(
        defaultProfileType: String = "personal", senderLabel: String = "auth.user",
        profileTable: String = "accounts_userprofile", userTable: String = "auth_user", limits: ColumnLimits = .unenforced
    ) {
        self.defaultProfileType = defaultProfileType
        self.senderLabel = senderLabel
        self.profileTable = profileTable
        self.userTable = userTable
        self.limits = limits
    }
}
