/// A calendar date as Django's `DateField` stores it (`YYYY-MM-DD`), parsed the way
/// `DateField.to_python` parses a string.
///
/// Django 5.2 calls `django.utils.dateparse.parse_date`, which tries Python 3.11's
/// `date.fromisoformat` (`YYYY-MM-DD`, `YYYYMMDD`, ISO week dates `YYYY-Www[-D]` and
/// `YYYYWww[D]`) and then the regex `(\d{4})-(\d{1,2})-(\d{1,2})$` (matched from the
/// start; `\d` is any Unicode decimal digit; `$` also matches before one final
/// newline). A string that matches neither, or names a day that does not exist, is
/// rejected. docs/PROTOCOL.md, "Dates", lists the accepted forms.
public struct DjangoDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Year, 1...9999.
    public let year: Int
    /// Month, 1...12.
    public let month: Int
    /// Day of the month.
    public let day: Int

    /// Creates a date, or `nil` when it does not exist in the proleptic Gregorian calendar.
    public init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month),
            (1...Self.daysInMonth(year: year, month: month)).contains(day)
        else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    /// The ISO form Django writes to the database: `YYYY-MM-DD`, zero-padded.
    public var description: String {
        // Ten ASCII bytes written in place: this runs once per written row of a batch.
        String(unsafeUninitializedCapacity: 10) { buffer in
            func put(_ number: Int, digits: Int, at offset: Int) {
                var number = number
                for position in stride(from: offset + digits - 1, through: offset, by: -1) {
                    buffer[position] = UInt8(ascii: "0") + UInt8(number % 10)
                    number /= 10
                }
            }
            put(year, digits: 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            put(month, digits: 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            put(day, digits: 2, at: 8)
            return 10
        }
    }

    public static func < (lhs: DjangoDate, rhs: DjangoDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// Why a string is not a date, in Django's two flavours.
    public enum ParseFailure: Error, Sendable, Hashable {
        /// The string does not have a date format (Django: "invalid date format").
        case invalidFormat
        /// The format is right but the date does not exist (Django: "invalid date").
        case invalidDate
    }

    /// Parses a string exactly as Django's `DateField.to_python` does.
    public static func parse(_ text: String) throws(ParseFailure) -> DjangoDate {
        var text = text
        // Read in place: this runs for every birthdate of a batch, read or received.
        if let date = text.withUTF8(fromISOFormat) { return date }
        return try fromDjangoRegex(Array(text.unicodeScalars))
    }

    // MARK: - Python's date.fromisoformat (3.11)

    /// A port of CPython 3.11's `parse_isoformat_date`, quirks included: the string must be
    /// 7, 8 or 10 UTF-8 bytes long, and bytes after the parsed date are not looked at
    /// (`date.fromisoformat("20200102ab")` is 2020-01-02).
    private static func fromISOFormat(_ utf8: UnsafeBufferPointer<UInt8>) -> DjangoDate? {
        guard utf8.count == 7 || utf8.count == 8 || utf8.count == 10 else { return nil }
        var index = 0
        /// The byte at `position`; C reads the terminating NUL where the string ends.
        func byte(at position: Int) -> UInt8 { position < utf8.count ? utf8[position] : 0 }
        func digits(_ count: Int) -> Int? {
            var value = 0
            for _ in 0..<count {
                let byte = byte(at: index)
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
                index += 1
            }
            return value
        }
        func separator() -> Bool {
            let byte = byte(at: index)
            index += 1
            return byte == UInt8(ascii: "-")
        }
        guard let year = digits(4) else { return nil }
        let usesSeparator = byte(at: index) == UInt8(ascii: "-")
        if usesSeparator { index += 1 }
        if byte(at: index) == UInt8(ascii: "W") {
            index += 1
            guard let week = digits(2) else { return nil }
            var weekday = 1
            if index < utf8.count {
                if usesSeparator, !separator() { return nil }
                guard let value = digits(1) else { return nil }
                weekday = value
            }
            return fromISOWeek(year: year, week: week, weekday: weekday)
        }
        guard let month = digits(2) else { return nil }
        if usesSeparator, !separator() { return nil }
        guard let day = digits(2) else { return nil }
        return DjangoDate(year: year, month: month, day: day)
    }

    private static func fromISOWeek(year: Int, week: Int, weekday: Int) -> DjangoDate? {
        guard (1...7).contains(weekday), year >= 1 else { return nil }
        var weekInRange = (1...52).contains(week)
        if week == 53 {
            // A year has 53 ISO weeks when it starts on a Thursday, or on a Wednesday in a leap year.
            let firstWeekday = ordinal(year: year, month: 1, day: 1) % 7  // 0 = Sunday
            weekInRange = firstWeekday == 4 || (firstWeekday == 3 && isLeap(year))
        }
        guard weekInRange else { return nil }
        // Monday of ISO week 1 is the Monday of the week holding January 4th.
        let jan4 = ordinal(year: year, month: 1, day: 4)
        let weekOneMonday = jan4 - ((jan4 + 6) % 7)
        return fromOrdinal(weekOneMonday + (week - 1) * 7 + (weekday - 1))
    }

    // MARK: - Django's date_re fallback

    private static func fromDjangoRegex(_ scalars: [Unicode.Scalar]) throws(ParseFailure) -> DjangoDate {
        var end = scalars.count
        if end > 0, scalars[end - 1] == "\n" { end -= 1 }  // Python's `$` before a final newline
        var index = 0
        func number(minLength: Int, maxLength: Int) -> Int? {
            var value = 0
            var length = 0
            while index < end, length < maxLength, let digit = decimalValue(scalars[index]) {
                value = value * 10 + digit
                index += 1
                length += 1
            }
            return length >= minLength ? value : nil
        }
        func dash() -> Bool {
            guard index < end, scalars[index] == "-" else { return false }
            index += 1
            return true
        }
        guard let year = number(minLength: 4, maxLength: 4), dash(),
            let month = number(minLength: 1, maxLength: 2), dash(),
            let day = number(minLength: 1, maxLength: 2), index == end
        else { throw .invalidFormat }
        guard let date = DjangoDate(year: year, month: month, day: day) else { throw .invalidDate }
        return date
    }

    /// The value of a Unicode decimal digit (category Nd), as Python's `\d` and `int()` read it.
    private static func decimalValue(_ scalar: Unicode.Scalar) -> Int? {
        guard scalar.properties.numericType == .decimal, let value = scalar.properties.numericValue else { return nil }
        return Int(value)
    }

    // MARK: - Calendar arithmetic (proleptic Gregorian, day 1 = 0001-01-01, as Python's toordinal)

    static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    static func ordinal(year: Int, month: Int, day: Int) -> Int {
        let y = year - 1
        var days = y * 365 + y / 4 - y / 100 + y / 400
        for m in 1..<month { days += daysInMonth(year: year, month: m) }
        return days + day
    }

    static func fromOrdinal(_ ordinal: Int) -> DjangoDate? {
        guard ordinal >= 1 else { return nil }
        var year = max(1, (ordinal - 1) * 400 / 146_097 + 1)
        while year > 1, Self.ordinal(year: year, month: 1, day: 1) > ordinal { year -= 1 }
        while Self.ordinal(year: year + 1, month: 1, day: 1) <= ordinal { year += 1 }
        var remaining = ordinal - Self.ordinal(year: year, month: 1, day: 1) + 1
        var month = 1
        while remaining > daysInMonth(year: year, month: month) {
            remaining -= daysInMonth(year: year, month: month)
            month += 1
        }
        return DjangoDate(year: year, month: month, day: remaining)
    }

}
