import PostgresNIO
import ProfileReceiver

/// A one-dimensional `text[]` parameter whose elements may be NULL, in binary format.
///
/// postgres-nio encodes `[String]` but not arrays with NULL elements, which `unnest`
/// needs for the nullable `sex` column.
struct NullableTextArray: PostgresDynamicTypeEncodable {
    var elements: [String?]

    var psqlType: PostgresDataType { .textArray }
    var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        ArrayHeader.write(count: elements.count, elementType: .text, hasNulls: elements.contains(nil), into: &buffer)
        for element in elements {
            guard let element else {
                buffer.writeInteger(-1, as: Int32.self)
                continue
            }
            let lengthIndex = buffer.writerIndex
            buffer.writeInteger(0, as: Int32.self)
            let written = buffer.writeString(element)
            buffer.setInteger(Int32(written), at: lengthIndex, as: Int32.self)
        }
    }
}

/// A one-dimensional `date[]` parameter whose elements may be NULL, in binary format
/// (days since 2000-01-01), so that no `DateStyle` setting can change how dates are read.
struct NullableDateArray: PostgresDynamicTypeEncodable {
    var elements: [DjangoDate?]

    var psqlType: PostgresDataType { .dateArray }
    var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        ArrayHeader.write(count: elements.count, elementType: .date, hasNulls: elements.contains(nil), into: &buffer)
        for element in elements {
            guard let element else {
                buffer.writeInteger(-1, as: Int32.self)
                continue
            }
            buffer.writeInteger(4, as: Int32.self)
            buffer.writeInteger(Int32(PostgresDates.days(from: element)), as: Int32.self)
        }
    }
}

/// The header of PostgreSQL's binary array format (`array_send`).
private enum ArrayHeader {
    static func write(count: Int, elementType: PostgresDataType, hasNulls: Bool, into buffer: inout ByteBuffer) {
        buffer.writeInteger(count == 0 ? 0 : 1, as: Int32.self)  // dimensions
        buffer.writeInteger(hasNulls ? 1 : 0, as: Int32.self)  // has NULL elements
        buffer.writeInteger(elementType.rawValue, as: UInt32.self)  // element type OID
        guard count > 0 else { return }
        buffer.writeInteger(Int32(count), as: Int32.self)  // length of the dimension
        buffer.writeInteger(1, as: Int32.self)  // lower bound
    }
}

/// Conversion between calendar dates and PostgreSQL's day numbers (days since 2000-01-01).
enum PostgresDates {
    /// Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func daysSinceUnixEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static let epoch2000 = daysSinceUnixEpoch(year: 2000, month: 1, day: 1)

    /// PostgreSQL's day number of a date.
    static func days(from date: DjangoDate) -> Int {
        daysSinceUnixEpoch(year: date.year, month: date.month, day: date.day) - epoch2000
    }

    /// The date of a PostgreSQL day number, `nil` outside 0001-01-01...9999-12-31.
    static func date(fromDays days: Int) -> DjangoDate? {
        let z = days + epoch2000 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return DjangoDate(year: year, month: month, day: day)
    }
}
