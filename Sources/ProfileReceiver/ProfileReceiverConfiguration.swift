/// Settings of the profile receiver.
public struct ProfileReceiverConfiguration: Sendable, Hashable {
    /// `UserProfile._meta.get_field('profile_type').default`.
    public var defaultProfileType: String
    /// The model label whose `post_save` the receiver handles (custom user models change it).
    public var senderLabel: String
    /// Limits the database enforces (read from the schema by the store).
    public var limits: ColumnLimits

    /// Creates a configuration; defaults match the reference Django project.
    public init(defaultProfileType: String = "personal", senderLabel: String = "auth.user", limits: ColumnLimits = .unenforced) {
        self.defaultProfileType = defaultProfileType
        self.senderLabel = senderLabel
        self.limits = limits
    }
}
