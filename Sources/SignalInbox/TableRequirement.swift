/// What a receiver needs of one of Django's tables; the stores check it at start-up and
/// `signal-worker check` prints what is wrong, in the receiver's words.
public struct TableRequirement: Sendable, Hashable {
    /// A column the receiver reads or writes.
    public struct Column: Sendable, Hashable {
        /// The kind of Django field behind a column.
        public enum Kind: String, Sendable, Hashable {
            /// `AutoField`, `IntegerField`, a foreign key to one.
            case integer
            /// `CharField`, `TextField`.
            case text
            /// `DateField`.
            case date
            /// `DateTimeField`.
            case dateTime
        }

        /// The column's name.
        public var name: String
        /// Its kind.
        public var kind: Kind
        /// `true`: must be NOT NULL; `false`: must allow NULL; `nil`: either.
        public var notNull: Bool?

        /// Creates a column requirement.
        public init(_ name: String, _ kind: Kind, notNull: Bool?) {
            self.name = name
            self.kind = kind
            self.notNull = notNull
        }
    }

    /// A single-column foreign key the table must have.
    public struct ForeignKey: Sendable, Hashable {
        /// The referencing column.
        public var column: String
        /// The referenced table (its `id`).
        public var table: String
        /// Why, for the problem report ("the model's OneToOneField creates one").
        public var reason: String

        /// Creates a foreign key requirement.
        public init(column: String, table: String, reason: String) {
            self.column = column
            self.table = table
            self.reason = reason
        }
    }

    /// A column that must be unique on its own.
    public struct Unique: Sendable, Hashable {
        /// The column.
        public var column: String
        /// Why, for the problem report.
        public var reason: String

        /// Creates a unique requirement.
        public init(column: String, reason: String) {
            self.column = column
            self.reason = reason
        }
    }

    /// How the primary key gets its values.
    public enum PrimaryKey: Sendable, Hashable {
        /// No requirement (the receiver never inserts into the table).
        case unchecked
        /// The column is the primary key and the database assigns it (`AutoField`): `INTEGER PRIMARY
        /// KEY` on SQLite, an identity or default on PostgreSQL.
        case generated(String)
        /// The column is the primary key; the receiver supplies its values.
        case supplied(String)
    }

    /// The table's name.
    public var table: String
    /// The problem reported when it does not exist ("the profile table does not exist; run …").
    public var missing: String
    /// Columns checked for type and nullability (none: only the table's existence is checked).
    public var columns: [Column]
    /// The primary key.
    public var primaryKey: PrimaryKey
    /// Foreign keys.
    public var foreignKeys: [ForeignKey]
    /// Unique columns.
    public var unique: [Unique]

    /// Creates a requirement.
    public init(
        table: String, missing: String, columns: [Column] = [], primaryKey: PrimaryKey = .unchecked,
        foreignKeys: [ForeignKey] = [], unique: [Unique] = []
    ) {
        self.table = table
        self.missing = missing
        self.columns = columns
        self.primaryKey = primaryKey
        self.foreignKeys = foreignKeys
        self.unique = unique
    }

    /// Django's user table (`auth_user` or a custom user model's), which every `post_save` receiver
    /// of the user model reads.
    public static func userTable(_ table: String) -> TableRequirement {
        TableRequirement(
            table: table,
            missing: "the user table does not exist; run `python manage.py migrate` (is django.contrib.auth installed?)")
    }
}

extension TableRequirement.Column {
    /// The problem of this column in `table` when its declaration does (`allowsNull`) or does not
    /// allow NULL against the requirement, `nil` when it matches: the same words on every database.
    public func nullabilityProblem(in table: String, allowsNull: Bool) -> SchemaProblem? {
        switch (notNull, allowsNull) {
        case (true?, true): SchemaProblem(table: table, column: name, problem: "must be NOT NULL")
        case (false?, false): SchemaProblem(table: table, column: name, problem: "must allow NULL (the model has null=True)")
        default: nil
        }
    }

    /// The problem of this column missing from `table`.
    public func missing(in table: String) -> SchemaProblem {
        SchemaProblem(table: table, column: name, problem: "the column is missing; run `python manage.py migrate`")
    }
}

extension TableRequirement.ForeignKey {
    /// The problem of `table` lacking this foreign key.
    public func missing(in table: String) -> SchemaProblem {
        SchemaProblem(table: table, column: column, problem: "no foreign key to \(self.table)(id); \(reason)")
    }
}

extension TableRequirement.Unique {
    /// The problem of this column of `table` not being unique.
    public func missing(in table: String) -> SchemaProblem {
        SchemaProblem(table: table, column: column, problem: "must be UNIQUE (\(reason))")
    }
}

/// What the database enforces on the text columns the receivers checked.
///
/// Django does not validate on `objects.create()`/`save()`; the database does. SQLite ignores
/// `varchar(n)` lengths and stores NUL characters; PostgreSQL enforces both, so the same message
/// can be fine on one and `invalid_value` on the other.
public struct SchemaFacts: Sendable, Hashable {
    /// `varchar(n)` lengths in characters, keyed by table then column; absent when not enforced.
    public var maximumLengths: [String: [String: Int]]
    /// Whether text containing U+0000 is refused.
    public var rejectsNUL: Bool

    /// Creates facts.
    public init(maximumLengths: [String: [String: Int]] = [:], rejectsNUL: Bool = false) {
        self.maximumLengths = maximumLengths
        self.rejectsNUL = rejectsNUL
    }

    /// The enforced length of `table.column`, `nil` when not enforced.
    public func maximumLength(_ table: String, _ column: String) -> Int? { maximumLengths[table]?[column] }
}

/// What a schema check found: the problems (none: usable) and the facts receivers adapt to.
public struct SchemaReport: Sendable, Hashable {
    /// What is wrong; empty when the tables are usable.
    public var problems: [SchemaProblem]
    /// The limits the database enforces.
    public var facts: SchemaFacts

    /// Creates a report.
    public init(problems: [SchemaProblem], facts: SchemaFacts) {
        self.problems = problems
        self.facts = facts
    }
}

extension Array where Element == TableRequirement {
    /// The requirements with each table checked once (the first requirement of a table wins;
    /// later ones add their columns and constraints).
    public var merged: [TableRequirement] {
        var order: [String] = []
        var byTable: [String: TableRequirement] = [:]
        for requirement in self {
            guard var existing = byTable[requirement.table] else {
                order.append(requirement.table)
                byTable[requirement.table] = requirement
                continue
            }
            for column in requirement.columns where !existing.columns.contains(where: { $0.name == column.name }) {
                existing.columns.append(column)
            }
            if case .unchecked = existing.primaryKey { existing.primaryKey = requirement.primaryKey }
            existing.foreignKeys += requirement.foreignKeys.filter { !existing.foreignKeys.contains($0) }
            existing.unique += requirement.unique.filter { !existing.unique.contains($0) }
            byTable[requirement.table] = existing
        }
        return order.compactMap { byTable[$0] }
    }
}
