import Logging
import PostgresNIO
import SignalInbox

/// Compares Django's tables in a PostgreSQL database with what the receivers need, and reads
/// the `varchar(n)` lengths the database enforces.
///
/// Tables are resolved with `to_regclass`, so the connection's `search_path` decides which
/// schema is checked, as it decides which tables the receivers write.
struct PostgresSchemaCheck: Sendable {
    let requirements: [TableRequirement]

    /// Accepted `information_schema.columns.data_type` values and how to name them.
    private static func accepted(_ kind: TableRequirement.Column.Kind) -> (types: Set<String>, description: String) {
        switch kind {
        case .integer: (["integer", "bigint", "smallint"], "integer or bigint")
        case .text: (["character varying", "text"], "character varying or text")
        case .date: (["date"], "date")
        case .dateTime: (["timestamp with time zone", "timestamp without time zone"], "timestamp")
        }
    }

    private struct Column {
        var dataType: String
        var nullable: Bool
        var maximumLength: Int32?
        var hasDefault: Bool
    }

    func run(on connection: PostgresConnection, logger: Logger) async throws -> SchemaReport {
        var problems: [SchemaProblem] = []
        var facts = SchemaFacts(rejectsNUL: true)
        for requirement in requirements.merged {
            problems += try await check(requirement, facts: &facts, on: connection, logger: logger)
        }
        return SchemaReport(problems: problems, facts: facts)
    }

    private func check(
        _ requirement: TableRequirement, facts: inout SchemaFacts, on connection: PostgresConnection, logger: Logger
    ) async throws -> [SchemaProblem] {
        let table = requirement.table
        let regclass = SQLIdentifier.quoted(table)
        guard try await flag("SELECT to_regclass($1::text) IS NOT NULL", [regclass], on: connection, logger: logger) else {
            return [SchemaProblem(table: table, problem: requirement.missing)]
        }
        var problems: [SchemaProblem] = []
        var binds = PostgresBindings(capacity: 1)
        binds.append(regclass)
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
            PostgresQuery(unsafeSQL: columnsSQL, binds: binds), logger: logger
        ).decode((String, String, Bool, Int32?, Bool).self) {
            columns[name] = Column(dataType: dataType, nullable: nullable, maximumLength: maximumLength, hasDefault: hasDefault)
            if let maximumLength { facts.maximumLengths[table, default: [:]][name] = Int(maximumLength) }
        }

        for required in requirement.columns {
            guard let column = columns[required.name] else {
                problems.append(
                    SchemaProblem(table: table, column: required.name, problem: "the column is missing; run `python manage.py migrate`"))
                continue
            }
            let accepted = Self.accepted(required.kind)
            if !accepted.types.contains(column.dataType) {
                problems.append(
                    SchemaProblem(
                        table: table, column: required.name, problem: "type \(column.dataType) is not \(accepted.description)"))
            }
            switch (required.notNull, column.nullable) {
            case (true?, true):
                problems.append(SchemaProblem(table: table, column: required.name, problem: "must be NOT NULL"))
            case (false?, false):
                problems.append(
                    SchemaProblem(table: table, column: required.name, problem: "must allow NULL (the model has null=True)"))
            default:
                break
            }
        }

        switch requirement.primaryKey {
        case .unchecked:
            break
        case .generated(let name), .supplied(let name):
            guard let column = columns[name] else { break }
            let isPrimaryKey = try await flag(
                """
                SELECT EXISTS (SELECT 1 FROM pg_index AS i
                    JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attname = $2::text
                    WHERE i.indrelid = to_regclass($1::text) AND i.indisprimary AND i.indnkeyatts = 1
                      AND i.indkey[0] = a.attnum)
                """, [regclass, name], on: connection, logger: logger)
            if !isPrimaryKey {
                problems.append(SchemaProblem(table: table, column: name, problem: "must be the primary key"))
            }
            if case .generated = requirement.primaryKey, !column.hasDefault {
                problems.append(
                    SchemaProblem(
                        table: table, column: name,
                        problem: "has no default or identity; new rows need one (Django declares GENERATED BY DEFAULT AS IDENTITY)"))
            }
        }

        for foreignKey in requirement.foreignKeys where columns[foreignKey.column] != nil {
            let found = try await flag(
                """
                SELECT EXISTS (SELECT 1 FROM pg_constraint AS c
                    JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attname = $3::text
                    WHERE c.conrelid = to_regclass($1::text) AND c.contype = 'f'
                      AND c.confrelid = to_regclass($2::text) AND c.conkey = ARRAY[a.attnum])
                """, [regclass, SQLIdentifier.quoted(foreignKey.table), foreignKey.column], on: connection, logger: logger)
            if !found {
                problems.append(
                    SchemaProblem(
                        table: table, column: foreignKey.column,
                        problem: "no foreign key to \(foreignKey.table)(id); \(foreignKey.reason)"))
            }
        }
        for unique in requirement.unique where columns[unique.column] != nil {
            let found = try await flag(
                """
                SELECT EXISTS (SELECT 1 FROM pg_index AS i
                    JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attname = $2::text
                    WHERE i.indrelid = to_regclass($1::text) AND i.indisunique AND i.indnkeyatts = 1
                      AND i.indkey[0] = a.attnum AND i.indpred IS NULL)
                """, [regclass, unique.column], on: connection, logger: logger)
            if !found {
                problems.append(
                    SchemaProblem(table: table, column: unique.column, problem: "must be UNIQUE (\(unique.reason))"))
            }
        }
        return problems
    }

    /// The boolean a one-row, one-column query returns for text parameters.
    private func flag(_ sql: String, _ parameters: [String], on connection: PostgresConnection, logger: Logger)
        async throws -> Bool
    {
        var binds = PostgresBindings(capacity: parameters.count)
        for parameter in parameters { binds.append(parameter) }
        var result = false
        for try await value in try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            .decode(Bool.self)
        {
            result = value
        }
        return result
    }
}
