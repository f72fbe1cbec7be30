/// DLP settings: rules that say what may not pass, and custom detectors and
/// profiles beside the built-in ones.
public struct DLPConfig: Sendable, Equatable {
    public var rules: [DLPRule] = []
    public var profiles: [DLPProfileConfig] = []
    public var detectors: [DLPDetectorConfig] = []
    /// JSON nested deeper than this is refused where a rule applies.
    public var maxDepth = 64

    public init() {}

    /// The built-in profiles and detectors (the DLP module defines them; the
    /// loader checks references against these names).
    public static let builtInProfiles: Set<String> = ["pii", "financial", "government-ids", "contact", "secrets", "mcp-traffic"]
    public static let builtInDetectors: Set<String> = [
        "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "UK_NINO", "IP_ADDRESS",
        "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "GITHUB_TOKEN", "GITLAB_TOKEN", "SLACK_TOKEN", "STRIPE_KEY",
        "GOOGLE_API_KEY", "PRIVATE_KEY", "JWT", "GENERIC_SECRET", "MCP_METHOD", "MCP_PROTOCOL_VERSION",
    ]
    public static let validators: Set<String> = ["luhn", "credit_card", "iban", "us_ssn", "uk_nino", "ipv4", "ipv6", "phone", "jwt", "entropy", "aws_secret"]
}

/// "No personal data to the wiki", "no secret back from the code server".
public struct DLPRule: Sendable, Equatable {
    public enum Direction: String, Sendable, Equatable, CaseIterable {
        /// Tool arguments, prompt arguments: what a client sends to a server.
        case toServer = "to_server"
        /// Tool results, resource reads, prompt messages: what a server sends back.
        case fromServer = "from_server"
        case both
    }

    public enum Action: String, Sendable, Equatable, CaseIterable {
        /// Refuse with a JSON-RPC error naming the rule and profile, never the data.
        case block
        /// Replace each match with `[REDACTED:DETECTOR]`.
        case redact
        /// Let it pass; audit the matches.
        case log
    }

    public var id: String
    public var profile: String
    /// Empty means every portal, server, tool or principal.
    public var portals: [String] = []
    public var servers: [String] = []
    /// Default tool names, `{server}_{tool}`.
    public var tools: [String] = []
    /// The caller must be in one of these groups.
    public var groups: [String] = []
    public var direction: Direction = .both
    public var action: Action

    public init(id: String, profile: String, action: Action, direction: Direction = .both) {
        self.id = id
        self.profile = profile
        self.action = action
        self.direction = direction
    }
}

public struct DLPProfileConfig: Sendable, Equatable {
    public var id: String
    public var detectors: [String]
    public var minMatches = 1
    public init(id: String, detectors: [String], minMatches: Int = 1) {
        self.id = id
        self.detectors = detectors
        self.minMatches = minMatches
    }
}

/// A detector of the administrator's: a regex (Hyperscan syntax) with an
/// optional validator and context words.
public struct DLPDetectorConfig: Sendable, Equatable {
    public var id: String
    public var pattern: String
    public var caseless = false
    public var validator: String?
    public var contextWords: [String] = []
    public var contextWindow = 64
    /// Where it was written, for errors found when it is compiled.
    public var location = ""
    public init(id: String, pattern: String) {
        self.id = id
        self.pattern = pattern
    }
}
