import GRDB
import SignalInbox

/// Compares Django's tables in an SQLite database with what the receivers need.
struct SQLiteSchemaCheck {
    let requirements: [TableRequirement]

    /// Upper-case fragments of which a declared type must contain one, and how to name them.
    private static func accepted(_ kind: TableRequirement.Column.Kind) -> (fragments: [String], description: String) {
        switch kind {
        case .integer: (["INT"], "an integer type")
        case .text: (["CHAR", "TEXT"], "varchar or text")
        case .date: (["DATE"], "date")
        case .dateTime: (["DATETIME", "TIMESTAMP"], "datetime")
        }
    }

    func problems(in db: Database) throws -> [SchemaProblem] {
        var problems: [SchemaProblem] = []
        for requirement in requirements.merged {
            problems += try check(requirement, in: db)
        }
        return problems
    }

    private func check(_ requirement: TableRequirement, in db: Database) throws -> [SchemaProblem] {
        let table = requirement.table
        guard try db.tableExists(table) else { return [SchemaProblem(table: table, problem: requirement.missing)] }
        var problems: [SchemaProblem] = []
        let columns = Dictionary(
            try db.columns(in: table).map { ($0.name.lowercased(), $0) }, uniquingKeysWith: { first, _ in first })
        for required in requirement.columns {
            guard let column = columns[required.name] else {
                problems.append(required.missing(in: table))
                continue
            }
            let declared = column.type.uppercased()
            let accepted = Self.accepted(required.kind)
            // A DATETIME column also contains "DATE": only a date column may not be a datetime one.
            let isDateTime = declared.contains("DATETIME") || declared.contains("TIMESTAMP")
            if !accepted.fragments.contains(where: { declared.contains($0) }) || (required.kind == .date && isDateTime) {
                problems.append(
                    SchemaProblem(
                        table: table, column: required.name,
                        problem: "declared type \"\(column.type)\" is not \(accepted.description)"))
            }
            if let problem = required.nullabilityProblem(in: table, allowsNull: !column.isNotNull) { problems.append(problem) }
        }

        let primaryKey = try db.primaryKey(table).columns.map { $0.lowercased() }
        switch requirement.primaryKey {
        case .unchecked:
            break
        case .generated(let name), .supplied(let name):
            guard columns[name] != nil else { break }
            if primaryKey != [name] {
                problems.append(SchemaProblem(table: table, column: name, problem: "must be the primary key"))
            } else if case .generated = requirement.primaryKey, columns[name]?.type.uppercased() != "INTEGER" {
                problems.append(
                    SchemaProblem(
                        table: table, column: name,
                        problem: "must be declared INTEGER PRIMARY KEY so that SQLite assigns ids to new rows"))
            }
        }

        for foreignKey in requirement.foreignKeys where columns[foreignKey.column] != nil {
            let found = try db.foreignKeys(on: table).contains {
                $0.originColumns.map { $0.lowercased() } == [foreignKey.column]
                    && $0.destinationTable.lowercased() == foreignKey.table.lowercased()
            }
            if !found {
                problems.append(foreignKey.missing(in: table))
            }
        }
        for unique in requirement.unique where columns[unique.column] != nil {
            let isUnique =
                try primaryKey == [unique.column]
                || db.indexes(on: table).contains { $0.isUnique && $0.columns.map { $0.lowercased() } == [unique.column] }
            if !isUnique {
                problems.append(unique.missing(in: table))
            }
        }
        return problems
    }
}
