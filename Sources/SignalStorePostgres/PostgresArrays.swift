import PostgresNIO
import SignalInbox

/// One column of a batch's rows as a one-dimensional array parameter (`int8[]`, `float8[]`,
/// `text[]`) whose elements may be NULL, in binary format.
///
/// postgres-nio encodes `[Int64]` and `[String]` but not arrays with NULL elements, which
/// `unnest` needs for nullable columns. A value of another type than the column's is sent as
/// NULL (a receiver bug the tests of its SQL catch).
struct NullableArray: PostgresDynamicTypeEncodable {
    var type: SQLColumnType
    var elements: [SQLValue]

    var psqlType: PostgresDataType {
        switch type {
        case .integer: .int8Array
        case .real: .float8Array
        case .text: .textArray
        }
    }

    var psqlFormat: PostgresFormat { .binary }

    private var elementType: PostgresDataType {
        switch type {
        case .integer: .int8
        case .real: .float8
        case .text: .text
        }
    }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(elements.isEmpty ? 0 : 1, as: Int32.self)  // dimensions
        buffer.writeInteger(elements.contains(.null) ? 1 : 0, as: Int32.self)  // has NULL elements
        buffer.writeInteger(elementType.rawValue, as: UInt32.self)  // element type OID
        if !elements.isEmpty {
            buffer.writeInteger(Int32(elements.count), as: Int32.self)  // length of the dimension
            buffer.writeInteger(1, as: Int32.self)  // lower bound
        }
        for element in elements {
            switch (type, element) {
            case (.integer, .integer(let value)):
                buffer.writeInteger(8, as: Int32.self)
                buffer.writeInteger(value, as: Int64.self)
            case (.real, .real(let value)):
                buffer.writeInteger(8, as: Int32.self)
                buffer.writeInteger(value.bitPattern, as: UInt64.self)
            case (.text, .text(let value)):
                let lengthIndex = buffer.writerIndex
                buffer.writeInteger(0, as: Int32.self)
                let written = buffer.writeString(value)
                buffer.setInteger(Int32(written), at: lengthIndex, as: Int32.self)
            default:
                buffer.writeInteger(-1, as: Int32.self)  // NULL
            }
        }
    }
}

/// Rows of a receiver's statement as ``SignalInbox/SQLValue``s.
enum PostgresValues {
    /// Decodes every cell of `row` by its type: integers and booleans (as 0/1) to `.integer`,
    /// floating point to `.real`, text types to `.text`.
    static func row(_ row: PostgresRow) throws -> SQLRow {
        try cells(row[...])
    }

    /// ``row(_:)`` of some of a row's cells (the columns of one part of a joined read).
    static func cells(_ cells: Slice<PostgresRow>) throws -> SQLRow {
        var values: SQLRow = []
        values.reserveCapacity(cells.count)  // one allocation per row, not one per doubling
        for cell in cells {
            if cell.bytes == nil {
                values.append(.null)
                continue
            }
            switch cell.dataType {
            case .int2, .int4, .int8, .oid:
                values.append(.integer(try cell.decode(Int64.self)))
            case .bool:
                values.append(.integer(try cell.decode(Bool.self) ? 1 : 0))
            case .float4, .float8:
                values.append(.real(try cell.decode(Double.self)))
            case .text, .varchar, .name, .bpchar:
                values.append(.text(try cell.decode(String.self)))
            default:
                throw StoreError(
                    .rejected,
                    "column \(cell.columnName) has type \(cell.dataType), which receivers read as ::text, ::int8 or ::bool",
                    operation: "read a receiver's rows")
            }
        }
        return values
    }
}
