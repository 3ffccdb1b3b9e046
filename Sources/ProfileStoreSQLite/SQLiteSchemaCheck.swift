import GRDB
import ProfileReceiver

/// Compares Django's tables in an SQLite database with what the store needs.
struct SQLiteSchemaCheck {
    let configuration: SQLiteStoreConfiguration

    /// A column the store reads or writes, and what its declaration must look like.
    private struct Requirement {
        var name: String
        /// Upper-case fragments of which the declared type must contain one.
        var typeFragments: [String]
        var typeDescription: String
        /// `true`: must be NOT NULL; `false`: must allow NULL; `nil`: either.
        var notNull: Bool?
    }

    private static let requirements = [
        Requirement(name: "id", typeFragments: ["INT"], typeDescription: "an integer type", notNull: nil),
        Requirement(name: "user_id", typeFragments: ["INT"], typeDescription: "an integer type", notNull: true),
        Requirement(
            name: "profile_type", typeFragments: ["CHAR", "TEXT"], typeDescription: "varchar or text", notNull: true),
        Requirement(name: "sex", typeFragments: ["CHAR", "TEXT"], typeDescription: "varchar or text", notNull: false),
        Requirement(name: "birthdate", typeFragments: ["DATE"], typeDescription: "date", notNull: false),
    ]

    func problems(in db: Database) throws -> [SchemaProblem] {
        let profile = configuration.profileTable
        let user = configuration.userTable
        var problems: [SchemaProblem] = []
        if !(try db.tableExists(user)) {
            problems.append(
                SchemaProblem(
                    table: user,
                    problem: "the user table does not exist; run `python manage.py migrate` (is django.contrib.auth installed?)"))
        }
        guard try db.tableExists(profile) else {
            problems.append(
                SchemaProblem(table: profile, problem: "the profile table does not exist; run `python manage.py migrate`"))
            return problems
        }

        let columns = Dictionary(
            try db.columns(in: profile).map { ($0.name.lowercased(), $0) }, uniquingKeysWith: { first, _ in first })
        for requirement in Self.requirements {
            guard let column = columns[requirement.name] else {
                problems.append(
                    SchemaProblem(
                        table: profile, column: requirement.name,
                        problem: "the column is missing; run `python manage.py migrate`"))
                continue
            }
            let declared = column.type.uppercased()
            if !requirement.typeFragments.contains(where: { declared.contains($0) }) {
                problems.append(
                    SchemaProblem(
                        table: profile, column: requirement.name,
                        problem: "declared type \"\(column.type)\" is not \(requirement.typeDescription)"))
            }
            switch (requirement.notNull, column.isNotNull) {
            case (true?, false):
                problems.append(SchemaProblem(table: profile, column: requirement.name, problem: "must be NOT NULL"))
            case (false?, true):
                problems.append(
                    SchemaProblem(
                        table: profile, column: requirement.name, problem: "must allow NULL (the model has null=True)"))
            default:
                break
            }
        }

        let primaryKey = try db.primaryKey(profile)
        if columns["id"] != nil {
            if primaryKey.columns.map({ $0.lowercased() }) != ["id"] {
                problems.append(SchemaProblem(table: profile, column: "id", problem: "must be the primary key"))
            } else if columns["id"]?.type.uppercased() != "INTEGER" {
                problems.append(
                    SchemaProblem(
                        table: profile, column: "id",
                        problem: "must be declared INTEGER PRIMARY KEY so that SQLite assigns ids to new rows"))
            }
        }

        if columns["user_id"] != nil {
            let foreignKeys = try db.foreignKeys(on: profile)
            let referencesUser = foreignKeys.contains {
                $0.originColumns.map { $0.lowercased() } == ["user_id"]
                    && $0.destinationTable.lowercased() == user.lowercased()
            }
            if !referencesUser {
                problems.append(
                    SchemaProblem(
                        table: profile, column: "user_id",
                        problem: "no foreign key to \(user)(id); the model's OneToOneField creates one"))
            }
            let indexes = try db.indexes(on: profile)
            let unique =
                primaryKey.columns.map { $0.lowercased() } == ["user_id"]
                || indexes.contains { $0.isUnique && $0.columns.map { $0.lowercased() } == ["user_id"] }
            if !unique {
                problems.append(
                    SchemaProblem(
                        table: profile, column: "user_id",
                        problem: "must be UNIQUE (one profile per user; the model's OneToOneField makes it so)"))
            }
        }
        return problems
    }
}
