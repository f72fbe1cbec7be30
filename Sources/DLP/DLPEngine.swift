#if canImport(Glibc)
import Glibc
#endif
import MCPWire
import PortalCore

/// Where a message is going.
public enum DLPDirection: String, Sendable {
    case toServer = "to_server"
    case fromServer = "from_server"
}

/// What the portal knows about a message when it checks it.
public struct DLPContext: Sendable {
    public var portal: String
    public var server: String
    /// The default tool name `{server}_{tool}`, nil for resources and prompts.
    public var tool: String?
    public var groups: [String]
    public var direction: DLPDirection

    public init(portal: String, server: String, tool: String?, groups: [String], direction: DLPDirection) {
        self.portal = portal
        self.server = server
        self.tool = tool
        self.groups = groups
        self.direction = direction
    }
}

/// A rule that fired, and what it found: counts and paths, never values.
public struct DLPHit: Sendable {
    public var rule: DLPRule
    public var findings: [LocatedFinding]

    /// Per detector: how many matches and in which JSON paths.
    public var summary: [(detector: String, count: Int, paths: [String])] {
        var order: [String] = []
        var grouped: [String: (Int, [String])] = [:]
        for located in findings {
            let id = located.finding.detector
            if grouped[id] == nil { order.append(id); grouped[id] = (0, []) }
            grouped[id]!.0 += 1
            if !grouped[id]!.1.contains(located.path) { grouped[id]!.1.append(located.path) }
        }
        return order.map { ($0, grouped[$0]!.0, grouped[$0]!.1) }
    }

    /// The audit record's detail: JSON without any matched value.
    public var detail: JSON {
        [
            "rule": .string(rule.id), "profile": .string(rule.profile), "action": .string(rule.action.rawValue),
            "findings": .array(summary.map { ["detector": .string($0.detector), "count": .int($0.count), "paths": .array($0.paths.map(JSON.string))] }),
        ]
    }
}

/// The outcome of checking one message against the rules that apply.
public struct DLPInspection: Sendable {
    public var hits: [DLPHit] = []
    /// The block rule that fired (or that could not be checked: fail closed).
    public var blockedBy: DLPRule?
    /// The message with redactions, when a redact rule fired and none blocked.
    public var redacted: JSON?
    public var failure: MessageScan.Failure?
}

/// Rules, profiles and the compiled scanner, built once from the config.
public final class DLPEngine: Sendable {
    public struct ConfigurationError: Error, CustomStringConvertible {
        public var description: String
    }

    public let config: DLPConfig
    public let scanner: Scanner
    public let profiles: [String: Profile]
    let messageScan: MessageScan

    public init(config: DLPConfig) throws(ConfigurationError) {
        self.config = config
        var detectors = Detector.builtIn
        for custom in config.detectors {
            detectors.append(Detector(
                id: custom.id, category: .custom, patterns: [PatternSet.Pattern(custom.pattern, caseless: custom.caseless)],
                validator: custom.validator.flatMap(Validator.init(rawValue:)), contextWords: custom.contextWords,
                contextWindow: custom.contextWindow, priority: 85))
        }
        do {
            scanner = try Scanner(detectors: detectors)
            // Compiling the databases takes tens of megabytes that are
            // free again now; hand them back rather than keep them resident.
            Self.releaseFreeMemory()
        } catch {
            let location = config.detectors.first { $0.id == error.detector }?.location ?? "detector \(error.detector)"
            throw ConfigurationError(description: "\(location): the pattern does not compile: \(error.message)")
        }
        var profiles: [String: Profile] = [:]
        for profile in Profile.builtIn { profiles[profile.id] = profile }
        for custom in config.profiles { profiles[custom.id] = Profile(id: custom.id, detectors: Set(custom.detectors), minMatches: custom.minMatches) }
        self.profiles = profiles
        messageScan = MessageScan(scanner: scanner, maxDepth: config.maxDepth)
    }

    /// glibc keeps freed memory of a thread's arena resident; `malloc_trim`
    /// returns it. (Looked up at run time: Swift's Glibc module leaves out
    /// `malloc.h`.)
    static func releaseFreeMemory() {
        #if canImport(Glibc)
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
            _ = unsafeBitCast(symbol, to: Trim.self)(0)
        }
        #endif
    }

    /// The rules that apply to a message, in config order.
    public func rules(for context: DLPContext) -> [DLPRule] {
        config.rules.filter { rule in
            (rule.direction == .both || rule.direction.rawValue == context.direction.rawValue)
                && (rule.portals.isEmpty || rule.portals.contains(context.portal))
                && (rule.servers.isEmpty || rule.servers.contains(context.server))
                && (rule.tools.isEmpty || context.tool.map(rule.tools.contains) == true)
                && (rule.groups.isEmpty || rule.groups.contains(where: context.groups.contains))
        }
    }

    /// Scans `json` (at `path` in the message) against `rules`.
    public func inspect(_ json: JSON, rules: [DLPRule], path: String) -> DLPInspection {
        var inspection = DLPInspection()
        guard !rules.isEmpty else { return inspection }
        let findings: [LocatedFinding]
        do {
            findings = try messageScan.findings(in: json, path: path)
        } catch {
            // A message that cannot be checked does not pass a block rule.
            inspection.failure = error
            inspection.blockedBy = rules.first { $0.action == .block }
            return inspection
        }
        var redactions: [LocatedFinding] = []
        for rule in rules {
            guard let profile = profiles[rule.profile] else { continue }
            let counted = profile.matches(findings.map(\.finding)) ?? []
            guard !counted.isEmpty else { continue }
            let located = findings.filter { profile.detectors.contains($0.finding.detector) }
            inspection.hits.append(DLPHit(rule: rule, findings: located))
            switch rule.action {
            case .block: if inspection.blockedBy == nil { inspection.blockedBy = rule }
            case .redact: redactions += located
            case .log: break
            }
        }
        if inspection.blockedBy == nil, !redactions.isEmpty {
            inspection.redacted = Redactor.redact(json, findings: redactions, path: path)
        }
        return inspection
    }

    /// Plain text or bytes (`mcp-portal dlp test`): every finding.
    public func findings(in bytes: [UInt8]) throws(PatternSet.ScanError) -> [Finding] {
        try scanner.scan(bytes)
    }

    public func findings(in json: JSON) throws(MessageScan.Failure) -> [LocatedFinding] {
        try messageScan.findings(in: json)
    }
}
