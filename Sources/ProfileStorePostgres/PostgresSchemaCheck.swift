import Logging
import PostgresNIO
import ProfileReceiver

/// Compares Django's tables in a PostgreSQL database with what the store needs.
///
/// Tables are resolved with `to_regclass`, so the connection's `search_path` decides
/// which schema is checked, as it decides which tables the store writes.
struct PostgresSchemaCheck: Sendable {
    let configuration: PostgresStoreConfiguration
    let statements: PostgresStatements

    /// A column the store reads or writes, and what its declaration must look like.
    private struct Requirement {
        var name: String
        /// Accepted `information_schema.columns.data_type` values.
        var types: Set<String>
        var typeDescription: String
        /// `true`: must be NOT NULL; `false`: must allow NULL; `nil`: either.
        var notNull: Bool?
    }

    private static let requirements = [
        Requirement(name: "id", types: ["integer", "bigint"], typeDescription: "integer or bigint", notNull: true),
        Requirement(name: "user_id", types: ["integer", "bigint"], typeDescription: "integer or bigint", notNull: true),
        Requirement(
            name: "profile_type", types: ["character varying", "text"], typeDescription: "character varying or text",
            notNull: true),
        Requirement(
            name: "sex", types: ["character varying", "text"], typeDescription: "character varying or text", notNull: false),
        Requirement(name: "birthdate", types: ["date"], typeDescription: "date", notNull: false),
    ]

    private struct Column {
        var dataType: String
        var nullable: Bool
        var maximumLength: Int32?
        var hasDefault: Bool
    }

    /// The problems found and, when the profile table exists, the column limits it enforces.
    func run(on connection: PostgresConnection, logger: Logger) async throws -> ([SchemaProblem], ColumnLimits?) {
        let profile = configuration.profileTable
        let user = configuration.userTable
        var binds = PostgresBindings(capacity: 2)
        binds.append(statements.profileTable)
        binds.append(statements.userTable)
        let tablesSQL = """
            SELECT to_regclass($1::text) IS NOT NULL, to_regclass($2::text) IS NOT NULL,
                EXISTS (SELECT 1 FROM pg_constraint AS c
                        JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attname = 'user_id'
                        WHERE c.conrelid = to_regclass($1::text) AND c.contype = 'f'
                          AND c.confrelid = to_regclass($2::text) AND c.conkey = ARRAY[a.attnum]),
                EXISTS (SELECT 1 FROM pg_index AS i
                        JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attname = 'user_id'
                        WHERE i.indrelid = to_regclass($1::text) AND i.indisunique AND i.indnkeyatts = 1
                          AND i.indkey[0] = a.attnum AND i.indpred IS NULL),
                EXISTS (SELECT 1 FROM pg_index AS i
                        JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attname = 'id'
                        WHERE i.indrelid = to_regclass($1::text) AND i.indisprimary AND i.indnkeyatts = 1
                          AND i.indkey[0] = a.attnum)
            """
        var flags = (profileExists: false, userExists: false, foreignKey: false, unique: false, idIsPrimaryKey: false)
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: tablesSQL, binds: binds), logger: logger)
            .decode((Bool, Bool, Bool, Bool, Bool).self)
        {
            flags = row
        }

        var problems: [SchemaProblem] = []
        if !flags.userExists {
            problems.append(
                SchemaProblem(
                    table: user,
                    problem: "the user table does not exist; run `python manage.py migrate` (is django.contrib.auth installed?)"))
        }
        guard flags.profileExists else {
            problems.append(
                SchemaProblem(table: profile, problem: "the profile table does not exist; run `python manage.py migrate`"))
            return (problems, nil)
        }

        var columnBinds = PostgresBindings(capacity: 1)
        columnBinds.append(statements.profileTable)
        let columnsSQL = """
            SELECT c.column_name::text, c.data_type::text, c.is_nullable::text = 'YES',
                c.character_maximum_length::int4, c.column_default IS NOT NULL OR c.is_identity::text = 'YES'
            FROM information_schema.columns AS c
            JOIN pg_class AS k ON k.relname = c.table_name::text
            JOIN pg_namespace AS n ON n.oid = k.relnamespace AND n.nspname = c.table_schema::text
            WHERE k.oid = to_regclass($1::text)
            """
        var columns: [String: Column] = [:]
        for try await (name, dataType, nullable, maximumLength, hasDefault) in try await connection.query(
            PostgresQuery(unsafeSQL: columnsSQL, binds: columnBinds), logger: logger
        ).decode((String, String, Bool, Int32?, Bool).self) {
            columns[name] = Column(dataType: dataType, nullable: nullable, maximumLength: maximumLength, hasDefault: hasDefault)
        }

        for requirement in Self.requirements {
            guard let column = columns[requirement.name] else {
                problems.append(
                    SchemaProblem(
                        table: profile, column: requirement.name, problem: "the column is missing; run `python manage.py migrate`"))
                continue
            }
            if !requirement.types.contains(column.dataType) {
                problems.append(
                    SchemaProblem(
                        table: profile, column: requirement.name,
                        problem: "type \(column.dataType) is not \(requirement.typeDescription)"))
            }
            switch (requirement.notNull, column.nullable) {
            case (true?, true):
                problems.append(SchemaProblem(table: profile, column: requirement.name, problem: "must be NOT NULL"))
            case (false?, false):
                problems.append(
                    SchemaProblem(table: profile, column: requirement.name, problem: "must allow NULL (the model has null=True)"))
            default:
                break
            }
        }
        if let id = columns["id"] {
            if !flags.idIsPrimaryKey {
                problems.append(SchemaProblem(table: profile, column: "id", problem: "must be the primary key"))
            }
            if !id.hasDefault {
                problems.append(
                    SchemaProblem(
                        table: profile, column: "id",
                        problem: "has no default or identity; new rows need one (Django declares GENERATED BY DEFAULT AS IDENTITY)"))
            }
        }
        if columns["user_id"] != nil {
            if !flags.foreignKey {
                problems.append(
                    SchemaProblem(
                        table: profile, column: "user_id",
                        problem: "no foreign key to \(user)(id); the model's OneToOneField creates one"))
            }
            if !flags.unique {
                problems.append(
                    SchemaProblem(
                        table: profile, column: "user_id",
                        problem: "must be UNIQUE (one profile per user; the model's OneToOneField makes it so)"))
            }
        }
        let limits = ColumnLimits(
            profileTypeMaxLength: columns["profile_type"]?.maximumLength.map(Int.init),
            sexMaxLength: columns["sex"]?.maximumLength.map(Int.init), rejectsNUL: true)
        return (problems, limits)
    }
}
