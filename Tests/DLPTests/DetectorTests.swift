import Foundation
import MCPWire
import PortalCore
import Testing
@testable import DLP

let engine = try! DLPEngine(config: DLPConfig())

func detect(_ text: String) -> [String] {
    (try? engine.findings(in: Array(text.utf8)))?.map { f in
        "\(f.detector):\(String(decoding: Array(text.utf8)[f.start..<f.end], as: UTF8.self))"
    } ?? ["scan failed"]
}

@Suite struct Detectors {
    @Test(arguments: [
        ("write to jane.doe+news@mail.example.co.uk today", ["EMAIL:jane.doe+news@mail.example.co.uk"]),
        ("card 4111 1111 1111 1111 exp 12/29", ["CREDIT_CARD:4111 1111 1111 1111"]),
        ("card 4111-1111-1111-1112 is not valid", []),
        ("amex 378282246310005.", ["CREDIT_CARD:378282246310005"]),
        ("IBAN GB82 WEST 1234 5698 7654 32 for wires", ["IBAN:GB82 WEST 1234 5698 7654 32"]),
        ("IBAN DE89370400440532013000", ["IBAN:DE89370400440532013000"]),
        ("IBAN DE89370400440532013001", []),
        ("SSN 536-90-4399 on file", ["US_SSN:536-90-4399"]),
        ("SSN 666-90-4399 is invalid", []),
        ("order 536904399 shipped", []),
        ("ssn: 536904399", ["US_SSN:536904399"]),
        ("NINO AB 12 34 56 C", ["UK_NINO:AB 12 34 56 C"]),
        ("QQ 12 34 56 C is the sample prefix", []),
        ("NINO BG123456A is reserved", []),
        ("from 192.168.10.254 and 2001:db8::8a2e:370:7334", ["IP_ADDRESS:192.168.10.254", "IP_ADDRESS:2001:db8::8a2e:370:7334"]),
        ("version 10.0.19041.1 at 12:30:45", []),
        ("call (415) 555-0132 or +44 20 7946 0958", ["PHONE:(415) 555-0132", "PHONE:+44 20 7946 0958"]),
        ("key AKIAIOSFODNN7EXAMPLE", ["AWS_ACCESS_KEY:AKIAIOSFODNN7EXAMPLE"]),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ["AWS_SECRET_KEY:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]),
        ("token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", ["GITHUB_TOKEN:ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"]),
        ("glpat-Abcdefghij0123456789", ["GITLAB_TOKEN:glpat-Abcdefghij0123456789"]),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", ["STRIPE_KEY:sk_live_4eC39HqLyjWDarjtT1zdp7dc"]),
        ("AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", ["GOOGLE_API_KEY:AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"]),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
         ["JWT:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"]),
        ("api_key = \"Zx81kLq0vB7mN2pR4sT6\"", ["GENERIC_SECRET:Zx81kLq0vB7mN2pR4sT6"]),
        ("password: aaaaaaaaaaaaaaaaaaaa", []),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----",
         ["PRIVATE_KEY:-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----"]),
        // Issuers beyond the big four, and Maestro's 12 digits.
        ("JCB 3500 1799 8683 8580, Maestro 501824162132", ["CREDIT_CARD:3500 1799 8683 8580", "CREDIT_CARD:501824162132"]),
        ("ticket 412345678903 closed", []),
        // National phone layouts count where the text says they are phone numbers.
        ("Phone: 69 849 69 22", ["PHONE:69 849 69 22"]),
        ("Norway 29604\n975 58 731-Office", ["PHONE:975 58 731"]),
        ("order 69 849 69 22 shipped", []),
        ("req_id=d9f9d065-0950-4506-933e-88a472d369f3", []),
        ("phone 01.26.97.40.36", ["PHONE:01.26.97.40.36"]),
        // A secret at the very end, keyword variants, symbols; names of secrets are not secrets.
        ("aws_secret_access_key=YK7yO/arUEsTtOuN5NVeXsOSJrz97/f9mVrKgcyf", ["AWS_SECRET_KEY:YK7yO/arUEsTtOuN5NVeXsOSJrz97/f9mVrKgcyf"]),
        ("SECRET_KEY = '2Pg0qO5wHAAlm0lblGzACEu5/S5WjQse'", ["GENERIC_SECRET:2Pg0qO5wHAAlm0lblGzACEu5/S5WjQse"]),
        ("DB_PASSWORD=3nSbvyVl8Mhf24L^Xu0c", ["GENERIC_SECRET:3nSbvyVl8Mhf24L^Xu0c"]),
        ("signingSecret: process.env.SLACK_SIGNING_SECRET", []),
        ("password = bytes(memoryview(password))", []),
        ("glrt-AbCdEfGh1234567890xyz and xapp-1-A0123456789-abcdef", ["GITLAB_TOKEN:glrt-AbCdEfGh1234567890xyz", "SLACK_TOKEN:xapp-1-A0123456789-abcdef"]),
        ("{\"jsonrpc\":\"2.0\",\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\"}}",
         ["MCP_METHOD:\"method\":\"initialize\"", "MCP_PROTOCOL_VERSION:\"protocolVersion\":\"2025-06-18\""]),
    ])
    func finds(_ text: String, _ expected: [String]) {
        #expect(detect(text) == expected)
    }

    @Test func jwtGluedToOtherTextIsFoundAlone() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
        #expect(detect("v1.\(token).x") == ["JWT:\(token)"])
    }

    /// Windows are cut around candidates; a match reaching a cut is looked
    /// at again with more room, so long tokens are found (and redacted) whole.
    @Test func longMatchesAreFoundWhole() throws {
        let token = "ghp_" + String(repeating: "aB3dE6gH9k", count: 100)
        #expect(detect("token \(token) end") == ["GITHUB_TOKEN:\(token)"])
        var config = DLPConfig()
        config.detectors = [DLPDetectorConfig(id: "CONFIG_BLOB", pattern: #"CONF-[A-Z0-9]{150,}"#)]
        let custom = try DLPEngine(config: config)
        let blob = "CONF-" + String(repeating: "A1", count: 200)
        let found = try custom.findings(in: Array("x \(blob) y".utf8))
        #expect(found.map(\.detector) == ["CONFIG_BLOB"] && found.first.map { $0.end - $0.start } == blob.utf8.count)
    }

    @Test func invalidUTF8IsScannedAsBytes() throws {
        var bytes: [UInt8] = [0xFF, 0xFE, 0xC3]
        bytes += Array(" mail bob@example.com ".utf8) + [0xED, 0xA0, 0x80]
        let found = try engine.findings(in: bytes)
        #expect(found.map(\.detector) == ["EMAIL"])
    }
}

@Suite struct Messages {
    func rules(_ action: DLPRule.Action, profile: String = "contact") -> [DLPRule] {
        [DLPRule(id: "r1", profile: profile, action: action)]
    }

    @Test func walksEveryStringWithPaths() throws {
        let message: JSON = [
            "content": [["type": "text", "text": "reach ada@example.com"],
                        ["type": "resource", "resource": ["uri": "x://1", "blob": .string(Data("phone bob@example.org".utf8).base64EncodedString())]]],
            "structuredContent": ["people": [["email": "grace@example.com"]]],
        ]
        let found = try engine.findings(in: message)
        #expect(found.map(\.path) == ["$.content[0].text", "$.content[1].resource.blob(base64)", "$.structuredContent.people[0].email"])
    }

    @Test func redactionKeepsJSONValid() throws {
        let message: JSON = ["text": "mail ada@example.com or \"bob@example.org\"", "n": 1,
                             "blob": .string(Data("to ada@example.com".utf8).base64EncodedString())]
        let inspection = engine.inspect(message, rules: rules(.redact), path: "$")
        let redacted = try #require(inspection.redacted)
        #expect(redacted["text"] == "mail [REDACTED:EMAIL] or \"[REDACTED:EMAIL]\"")
        #expect(redacted["n"] == 1)
        let blob = try #require(redacted["blob"]?.stringValue)
        #expect(String(decoding: Data(base64Encoded: blob)!, as: UTF8.self) == "to [REDACTED:EMAIL]")
        #expect(try JSON.parse(redacted.text) == redacted)
        #expect(!redacted.text.contains("ada@"))
    }

    @Test func blockNamesRuleAndCountsButNoValues() {
        let inspection = engine.inspect(["a": "card 4111111111111111 and 5555555555554444"], rules: rules(.block, profile: "financial"), path: "$.arguments")
        #expect(inspection.blockedBy?.id == "r1")
        let detail = inspection.hits[0].detail.text
        #expect(detail == #"{"rule":"r1","profile":"financial","action":"block","findings":[{"detector":"CREDIT_CARD","count":2,"paths":["$.arguments.a"]}]}"#)
    }

    @Test func tooDeepFailsClosedForBlockOnly() {
        var deep: JSON = "bob@example.com"
        for _ in 0..<100 { deep = .array([deep]) }
        let blocked = engine.inspect(deep, rules: rules(.block), path: "$")
        #expect(blocked.blockedBy?.id == "r1")
        #expect(blocked.failure == .tooDeep(64))
        let logged = engine.inspect(deep, rules: rules(.log), path: "$")
        #expect(logged.blockedBy == nil && logged.failure != nil)
    }

    /// Memory stays bounded: strings are scanned in chunks, and a string
    /// larger than a chunk where it lies; nothing is lost at the seams.
    @Test func bigMessagesAreScannedInChunks() throws {
        let scan = MessageScan(scanner: engine.scanner, maxDepth: 64, chunkBytes: 1024)
        var items: [JSON] = []
        for index in 0..<200 { items.append(.string("note \(index): write to person\(index)@example.com today")) }
        let big = String(repeating: "lorem ipsum ", count: 20_000) + "card 4111 1111 1111 1111 end"
        let message: JSON = ["items": .array(items), "big": .string("mail first@example.org " + big)]
        let found = try scan.findings(in: message)
        #expect(found.filter { $0.finding.detector == "EMAIL" }.count == 201)
        #expect(found.contains { $0.path == "$.items[199]" && $0.finding.detector == "EMAIL" })
        #expect(found.filter { $0.path == "$.big" }.map(\.finding.detector) == ["EMAIL", "CREDIT_CARD"])
        // The same findings as one unchunked pass.
        let whole = try MessageScan(scanner: engine.scanner, maxDepth: 64).findings(in: message)
        #expect(found == whole)
    }

    /// A string too big to copy is scanned where it lies, and its edges in
    /// their context: what the key says at its head, a secret that ends it.
    @Test func bigStringsKeepTheirKeyAndTheirEnd() throws {
        let scan = MessageScan(scanner: engine.scanner, maxDepth: 64, chunkBytes: 16 << 10)
        let filler = String(repeating: "lorem ipsum 2024-03-15 ", count: 2_000)
        let message: JSON = [
            "api_key": .string("Zk3pQ9rT2vX8mN4bL7cW1yH6" + filler + " write to last@example.com"),
            "ssn": .string("536904399 " + filler),
            "env": .string(filler + "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "mid": .string(filler + "card 4111 1111 1111 1111 and mail first@example.org " + filler),
        ]
        let found = try scan.findings(in: message)
        let summary = found.map { "\($0.path) \($0.finding.detector)" }
        #expect(summary.contains("$.api_key GENERIC_SECRET"))
        #expect(summary.contains("$.api_key EMAIL"))
        #expect(summary.contains("$.ssn US_SSN"))
        #expect(summary.contains("$.env AWS_SECRET_KEY"))
        #expect(summary.filter { $0.hasPrefix("$.mid") } == ["$.mid CREDIT_CARD", "$.mid EMAIL"])
        // The same as one pass over each string copied whole.
        let whole = try MessageScan(scanner: engine.scanner, maxDepth: 64, chunkBytes: 1 << 30).findings(in: message)
        #expect(found == whole)
    }

    /// A key block's END line is looked for in its own string only.
    @Test func privateKeyEndsInItsOwnString() throws {
        let message: JSON = ["a": "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu",
                             "b": "-----END RSA PRIVATE KEY-----"]
        let found = try engine.findings(in: message)
        #expect(found.map(\.path) == ["$.a"])
    }

    /// Input made to swamp the scanner is refused, never passed half-checked:
    /// block rules fail closed on it.
    @Test func floodsFailClosed() {
        let flood = String(repeating: "a@b.co ", count: 150_000)
        let inspection = engine.inspect(["text": .string(flood)], rules: rules(.block), path: "$")
        #expect(inspection.failure != nil)
        #expect(inspection.blockedBy?.id == "r1")
    }

    @Test func minimumMatchCount() {
        let profile = engine.profiles["mcp-traffic"]!
        #expect(profile.matches([Finding(detector: "MCP_METHOD", start: 0, end: 1)]) == nil)
    }

    @Test func rulesSelectByPortalServerToolDirectionGroup() throws {
        var config = DLPConfig()
        var rule = DLPRule(id: "wiki", profile: "pii", action: .block, direction: .toServer)
        rule.servers = ["wiki"]
        rule.groups = ["contractors"]
        config.rules = [rule]
        let engine = try DLPEngine(config: config)
        let hit = DLPContext(portal: "p", server: "wiki", tool: "wiki_edit", groups: ["contractors"], direction: .toServer)
        #expect(engine.rules(for: hit).map(\.id) == ["wiki"])
        var other = hit; other.server = "jira"
        #expect(engine.rules(for: other).isEmpty)
        var back = hit; back.direction = .fromServer
        #expect(engine.rules(for: back).isEmpty)
        var staff = hit; staff.groups = ["staff"]
        #expect(engine.rules(for: staff).isEmpty)
    }

    @Test func customDetectors() throws {
        var config = DLPConfig()
        var employee = DLPDetectorConfig(id: "EMPLOYEE_ID", pattern: #"\bEMP-[0-9]{6}\b"#)
        employee.contextWords = ["employee"]
        config.detectors = [employee]
        let engine = try DLPEngine(config: config)
        #expect(try engine.findings(in: Array("employee EMP-123456".utf8)).map(\.detector) == ["EMPLOYEE_ID"])
        #expect(try engine.findings(in: Array("ticket EMP-123456".utf8)).isEmpty)
        config.detectors = [DLPDetectorConfig(id: "BAD", pattern: "(unclosed")]
        #expect(throws: DLPEngine.ConfigurationError.self) { try DLPEngine(config: config) }
    }
}
