import SignalInbox
import ProfileReceiver
import SignalProtocol
import Testing

/// `checkSchema()` on Django's schema and on broken variants of it.
@Suite("Schema check")
struct SchemaCheckTests {
    @Test("Django's schema has no problems", arguments: StoreKind.available)
    func djangoSchemaPasses(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            let problems = try await fixture.store.checkSchema(fixture.inbox.tables).problems
            #expect(problems.isEmpty, "\(problems)")
        }
    }

    @Test("createDjangoCompatibleSchema creates a schema that passes, idempotently", arguments: StoreKind.available)
    func compatibleSchemaPasses(kind: StoreKind) async throws {
        try await withFixture(kind, FixtureOptions(djangoSchema: false)) { fixture in
            let before = try await fixture.store.checkSchema(fixture.inbox.tables).problems
            #expect(before.contains { $0.problem.contains("manage.py migrate") })
            try await fixture.createDjangoCompatibleSchema()
            try await fixture.createDjangoCompatibleSchema()
            let problems = try await fixture.store.checkSchema(fixture.inbox.tables).problems
            #expect(problems.isEmpty, "\(problems)")
            try await fixture.addUsers([1])
            #expect(await applyOne(Messages.created(1, sex: .value("F")), to: fixture.store) == .profile(.created))
            #expect(try await fixture.profiles() == [StoredProfile(userID: 1, profileType: "personal", sex: "F")])
        }
    }

    @Test("the token receiver's table passes when DRF's migrations made it, and its absence names the app", arguments: StoreKind.available)
    func tokenTable(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            let tables = TestInbox.profileAndToken().tables
            #expect(try await fixture.store.checkSchema(tables).problems.isEmpty)
            try await fixture.execute("DROP TABLE \"authtoken_token\"")
            let problems = try await fixture.store.checkSchema(tables).problems
            #expect(problems.count == 1, "\(problems)")
            #expect(problems.first?.table == "authtoken_token")
            #expect(problems.first?.problem.contains("rest_framework.authtoken") == true, "\(problems)")
            #expect(try await fixture.store.checkSchema(fixture.inbox.tables).problems.isEmpty, "the profile alone needs no token table")
        }
    }

    @Test("a token table whose user_id is not unique is reported", arguments: StoreKind.available)
    func tokenTableNotUnique(kind: StoreKind) async throws {
        try await withFixture(kind) { fixture in
            try await fixture.execute("DROP TABLE \"authtoken_token\"")
            let created = kind == .sqlite ? "datetime" : "timestamp with time zone"
            try await fixture.execute(
                """
                CREATE TABLE "authtoken_token" ("key" varchar(40) NOT NULL PRIMARY KEY, "created" \(created) NOT NULL, \
                "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)
                """)
            let problems = try await fixture.store.checkSchema(TestInbox.profileAndToken().tables).problems
            #expect(problems.count == 1, "\(problems)")
            #expect(problems.first?.column == "user_id")
            #expect(problems.first?.problem.contains("UNIQUE") == true, "\(problems)")
        }
    }

    @Test("a missing profile table asks for migrate", arguments: StoreKind.available)
    func missingProfileTable(kind: StoreKind) async throws {
        try await withFixture(kind, FixtureOptions(profileTable: "no_such_profiles")) { fixture in
            let problems = try await fixture.store.checkSchema(fixture.inbox.tables).problems
            #expect(problems.count == 1)
            #expect(problems.first?.table == "no_such_profiles")
            #expect(problems.first?.problem.contains("python manage.py migrate") == true)
        }
    }

    @Test("a missing user table is reported, and so is the foreign key that cannot point to it", arguments: StoreKind.available)
    func missingUserTable(kind: StoreKind) async throws {
        try await withFixture(kind, FixtureOptions(userTable: "no_such_users")) { fixture in
            let problems = try await fixture.store.checkSchema(fixture.inbox.tables).problems
            #expect(problems.contains { $0.table == "no_such_users" && $0.column == nil })
            #expect(problems.contains { $0.column == "user_id" && $0.problem.contains("foreign key") })
        }
    }

    /// A broken profile table and the problem the check must report.
    struct Variant: Sendable, CustomTestStringConvertible {
        var name: String
        var sqlite: String
        var postgres: String
        var column: String
        var fragment: String
        var testDescription: String { name }
    }

    static let variants = [
        Variant(
            name: "missing column",
            sqlite: #"("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            postgres: #"("id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            column: "birthdate", fragment: "missing"),
        Variant(
            name: "wrong type",
            sqlite: #"("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" integer NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            postgres: #"("id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" text NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            column: "birthdate", fragment: "not date"),
        Variant(
            name: "nullable profile_type",
            sqlite: #"("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "profile_type" varchar(20) NULL, "sex" varchar(1) NULL, "birthdate" date NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            postgres: #"("id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "profile_type" varchar(20) NULL, "sex" varchar(1) NULL, "birthdate" date NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            column: "profile_type", fragment: "NOT NULL"),
        Variant(
            name: "no foreign key",
            sqlite: #"("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" date NULL, "user_id" integer NOT NULL UNIQUE)"#,
            postgres: #"("id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" date NULL, "user_id" integer NOT NULL UNIQUE)"#,
            column: "user_id", fragment: "foreign key"),
        Variant(
            name: "user_id not unique",
            sqlite: #"("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" date NULL, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            postgres: #"("id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" date NULL, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            column: "user_id", fragment: "UNIQUE"),
        Variant(
            name: "sex NOT NULL",
            sqlite: #"("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NOT NULL, "birthdate" date NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            postgres: #"("id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NOT NULL, "birthdate" date NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)"#,
            column: "sex", fragment: "allow NULL"),
    ]

    @Test("each broken variant is reported, and only it", arguments: variants, StoreKind.available)
    func brokenVariant(variant: Variant, kind: StoreKind) async throws {
        try await withFixture(kind, FixtureOptions(profileTable: "broken_profile")) { fixture in
            try await fixture.execute("CREATE TABLE \"broken_profile\" " + (kind == .sqlite ? variant.sqlite : variant.postgres))
            let problems = try await fixture.store.checkSchema(fixture.inbox.tables).problems
            #expect(problems.count == 1, "\(problems)")
            #expect(problems.first?.table == "broken_profile")
            #expect(problems.first?.column == variant.column)
            #expect(problems.first?.problem.contains(variant.fragment) == true, "\(problems)")
        }
    }
}
