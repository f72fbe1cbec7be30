/// A named set of detectors and how many of their matches it takes, like
/// the data profiles of commercial DLP products.
public struct Profile: Sendable, Equatable {
    public var id: String
    public var detectors: Set<String>
    public var minMatches: Int

    public init(id: String, detectors: Set<String>, minMatches: Int = 1) {
        self.id = id
        self.detectors = detectors
        self.minMatches = minMatches
    }

    public static let builtIn: [Profile] = [
        Profile(id: "pii", detectors: ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "UK_NINO", "IP_ADDRESS"]),
        Profile(id: "financial", detectors: ["CREDIT_CARD", "IBAN"]),
        Profile(id: "government-ids", detectors: ["US_SSN", "UK_NINO"]),
        Profile(id: "contact", detectors: ["EMAIL", "PHONE"]),
        Profile(id: "secrets", detectors: ["AWS_ACCESS_KEY", "AWS_SECRET_KEY", "GITHUB_TOKEN", "GITLAB_TOKEN", "SLACK_TOKEN",
                                           "STRIPE_KEY", "GOOGLE_API_KEY", "PRIVATE_KEY", "JWT", "GENERIC_SECRET"]),
        // Two signatures make a message MCP traffic (shadow-MCP discovery reuses this).
        Profile(id: "mcp-traffic", detectors: ["MCP_METHOD", "MCP_PROTOCOL_VERSION"], minMatches: 2),
    ]

    /// Whether `findings` trip this profile, and which of them count.
    public func matches(_ findings: [Finding]) -> [Finding]? {
        let counted = findings.filter { detectors.contains($0.detector) }
        return counted.count >= minMatches && !counted.isEmpty ? counted : nil
    }
}
