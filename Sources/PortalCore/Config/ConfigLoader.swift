import Foundation
import Yams

/// Reads and checks a YAML configuration, reporting the first problem with
/// its file, line, column and key.
public struct ConfigLoader: Sendable {
    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    public func load(file path: String) throws(ConfigError) -> PortalConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, line: nil, column: nil, key: "", message: "cannot read the file: \(error.localizedDescription)")
        }
        return try parse(text, file: path)
    }

    public func parse(_ text: String, file: String) throws(ConfigError) -> PortalConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(file: file, line: Self.line(of: error), column: nil, key: "", message: "not valid YAML: \(error)")
        } catch {
            throw ConfigError(file: file, line: nil, column: nil, key: "", message: "not valid YAML: \(error)")
        }
        var reader = Reader(file: file, environment: environment)
        guard let root else { return try reader.validate(PortalConfig()) }
        return try reader.validate(try reader.config(root))
    }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }
}

private struct Reader {
    let file: String
    let environment: [String: String]

    func fail(_ node: Node?, _ key: String, _ message: String) -> ConfigError {
        ConfigError(file: file, line: node?.mark?.line, column: node?.mark?.column, key: key, message: message)
    }

    func mapping(_ node: Node, _ key: String, allowed: [String]) throws(ConfigError) -> [(String, Node, Node)] {
        guard case .mapping(let mapping) = node else { throw fail(node, key, "expected a mapping") }
        var seen = Set<String>()
        var out: [(String, Node, Node)] = []
        for (k, v) in mapping {
            guard let name = k.string else { throw fail(k, key, "keys must be strings") }
            let path = key.isEmpty ? name : "\(key).\(name)"
            if !allowed.isEmpty, !allowed.contains(name) {
                throw fail(k, path, "unknown key; expected one of: \(allowed.joined(separator: ", "))")
            }
            guard seen.insert(name).inserted else { throw fail(k, path, "key appears twice") }
            out.append((name, k, v))
        }
        return out
    }

    func string(_ node: Node, _ key: String) throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node else { throw fail(node, key, "expected a string") }
        return try expand(scalar.string, node, key)
    }

    func int(_ node: Node, _ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let text = try string(node, key)
        guard let value = Int(text) else { throw fail(node, key, "expected a whole number, found \"\(text)\"") }
        guard range.contains(value) else { throw fail(node, key, "must be between \(range.lowerBound) and \(range.upperBound), found \(value)") }
        return value
    }

    func seconds(_ node: Node, _ key: String) throws(ConfigError) -> Double {
        let text = try string(node, key)
        guard let value = Double(text), value > 0, value <= 86_400 else {
            throw fail(node, key, "expected a number of seconds above 0 and at most 86400, found \"\(text)\"")
        }
        return value
    }

    func bool(_ node: Node, _ key: String) throws(ConfigError) -> Bool {
        switch try string(node, key).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        case let other: throw fail(node, key, "expected true or false, found \"\(other)\"")
        }
    }

    func strings(_ node: Node, _ key: String) throws(ConfigError) -> [String] {
        guard case .sequence(let sequence) = node else { throw fail(node, key, "expected a list") }
        var out: [String] = []
        for (index, element) in sequence.enumerated() { out.append(try string(element, "\(key)[\(index)]")) }
        return out
    }

    func stringMap(_ node: Node, _ key: String) throws(ConfigError) -> [String: String] {
        var out: [String: String] = [:]
        for (name, _, value) in try mapping(node, key, allowed: []) { out[name] = try string(value, "\(key).\(name)") }
        return out
    }

    /// Replaces `${env:NAME}` with the variable's value; a missing variable is an error.
    func expand(_ text: String, _ node: Node, _ key: String) throws(ConfigError) -> String {
        guard text.contains("${") else { return text }
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw fail(node, key, "unterminated ${...} reference")
            }
            let reference = rest[start.upperBound..<end]
            guard reference.hasPrefix("env:") else {
                throw fail(node, key, "unknown reference \"${\(reference)}\"; expected ${env:NAME}")
            }
            let name = String(reference.dropFirst(4))
            guard let value = environment[name] else {
                throw fail(node, key, "environment variable \(name) is not set")
            }
            out += value
            rest = rest[rest.index(after: end)...]
        }
        return out + rest
    }

    mutating func config(_ root: Node) throws(ConfigError) -> PortalConfig {
        var config = PortalConfig()
        let keys = ["listen", "storage", "limits", "allowed_origins", "pinning", "codemode", "dlp", "servers", "portals"]
        for (name, _, value) in try mapping(root, "", allowed: keys) {
            switch name {
            case "listen":
                for (k, _, v) in try mapping(value, "listen", allowed: ["host", "port"]) {
                    if k == "host" { config.listen.host = try string(v, "listen.host") }
                    if k == "port" { config.listen.port = try int(v, "listen.port", range: 0...65535) }
                }
            case "storage":
                for (_, _, v) in try mapping(value, "storage", allowed: ["path"]) {
                    config.storage.path = try string(v, "storage.path")
                }
            case "limits":
                try limits(value, into: &config.limits)
            case "codemode":
                try codeMode(value, into: &config.codemode)
            case "dlp":
                config.dlp = try dlp(value)
            case "allowed_origins":
                config.allowedOrigins = try strings(value, "allowed_origins")
            case "pinning":
                for (_, _, v) in try mapping(value, "pinning", allowed: ["new_tools"]) {
                    let text = try string(v, "pinning.new_tools")
                    guard let rule = PortalConfig.Pinning.NewToolRule(rawValue: text) else {
                        throw fail(v, "pinning.new_tools", "expected allow or hold, found \"\(text)\"")
                    }
                    config.pinning.newTools = rule
                }
            case "servers":
                guard case .sequence(let sequence) = value else { throw fail(value, "servers", "expected a list of servers") }
                for (index, element) in sequence.enumerated() { config.servers.append(try server(element, "servers[\(index)]")) }
            case "portals":
                guard case .sequence(let sequence) = value else { throw fail(value, "portals", "expected a list of portals") }
                for (index, element) in sequence.enumerated() { config.portals.append(try portal(element, "portals[\(index)]")) }
            default: break
            }
        }
        return config
    }

    func limits(_ node: Node, into limits: inout PortalConfig.Limits) throws(ConfigError) {
        let keys = ["max_body_bytes", "call_timeout_seconds", "connect_timeout_seconds", "session_idle_seconds",
                    "resume_buffer_events", "max_sessions", "max_json_depth"]
        for (k, _, v) in try mapping(node, "limits", allowed: keys) {
            let key = "limits.\(k)"
            switch k {
            case "max_body_bytes": limits.maxBodyBytes = try int(v, key, range: 1024...(1 << 30))
            case "call_timeout_seconds": limits.callTimeoutSeconds = try seconds(v, key)
            case "connect_timeout_seconds": limits.connectTimeoutSeconds = try seconds(v, key)
            case "session_idle_seconds": limits.sessionIdleSeconds = try seconds(v, key)
            case "resume_buffer_events": limits.resumeBufferEvents = try int(v, key, range: 0...100_000)
            case "max_sessions": limits.maxSessions = try int(v, key, range: 1...1_000_000)
            case "max_json_depth": limits.maxJSONDepth = try int(v, key, range: 8...10_000)
            default: break
            }
        }
    }

    func codeMode(_ node: Node, into settings: inout PortalConfig.CodeMode) throws(ConfigError) {
        let keys = ["timeout_seconds", "cpu_seconds", "memory_mb", "max_calls", "concurrency", "max_output_bytes",
                    "max_code_bytes", "workers", "record_code"]
        for (k, _, v) in try mapping(node, "codemode", allowed: keys) {
            let key = "codemode.\(k)"
            switch k {
            case "timeout_seconds": settings.timeoutSeconds = try seconds(v, key)
            case "cpu_seconds": settings.cpuSeconds = try seconds(v, key)
            case "memory_mb": settings.memoryMB = try int(v, key, range: 8...16_384)
            case "max_calls": settings.maxCalls = try int(v, key, range: 0...100_000)
            case "concurrency": settings.concurrency = try int(v, key, range: 1...256)
            case "max_output_bytes": settings.maxOutputBytes = try int(v, key, range: 1024...(64 << 20))
            case "max_code_bytes": settings.maxCodeBytes = try int(v, key, range: 256...(16 << 20))
            case "workers": settings.workers = try int(v, key, range: 1...256)
            case "record_code": settings.recordCode = try bool(v, key)
            default: break
            }
        }
    }

    func dlp(_ node: Node) throws(ConfigError) -> DLPConfig {
        var config = DLPConfig()
        var ruleNodes: [(Node, String)] = []
        for (k, _, v) in try mapping(node, "dlp", allowed: ["rules", "profiles", "detectors", "max_depth"]) {
            switch k {
            case "max_depth": config.maxDepth = try int(v, "dlp.max_depth", range: 4...10_000)
            case "detectors":
                guard case .sequence(let items) = v else { throw fail(v, "dlp.detectors", "expected a list of detectors") }
                for (index, item) in items.enumerated() { config.detectors.append(try dlpDetector(item, "dlp.detectors[\(index)]")) }
            case "profiles":
                guard case .sequence(let items) = v else { throw fail(v, "dlp.profiles", "expected a list of profiles") }
                for (index, item) in items.enumerated() {
                    let key = "dlp.profiles[\(index)]"
                    var id: String?, detectors: [String] = [], minimum = 1
                    for (name, _, value) in try mapping(item, key, allowed: ["id", "detectors", "min_matches"]) {
                        switch name {
                        case "id": id = try string(value, "\(key).id")
                        case "detectors": detectors = try strings(value, "\(key).detectors")
                        default: minimum = try int(value, "\(key).min_matches", range: 1...100_000)
                        }
                    }
                    guard let id else { throw fail(item, "\(key).id", "every profile needs an id") }
                    guard !detectors.isEmpty else { throw fail(item, "\(key).detectors", "a profile needs at least one detector") }
                    config.profiles.append(DLPProfileConfig(id: id, detectors: detectors, minMatches: minimum))
                    let known = DLPConfig.builtInDetectors.union(config.detectors.map(\.id))
                    if let unknown = detectors.first(where: { !known.contains($0) }) {
                        throw fail(item, "\(key).detectors", "unknown detector \"\(unknown)\"; known: \(known.sorted().joined(separator: ", "))")
                    }
                }
            default:
                guard case .sequence(let items) = v else { throw fail(v, "dlp.rules", "expected a list of rules") }
                for (index, item) in items.enumerated() { ruleNodes.append((item, "dlp.rules[\(index)]")) }
            }
        }
        // Rules last: they may name profiles defined below them.
        let profiles = DLPConfig.builtInProfiles.union(config.profiles.map(\.id))
        var ids = Set<String>()
        for (item, key) in ruleNodes {
            let rule = try dlpRule(item, key, profiles: profiles)
            guard ids.insert(rule.id).inserted else { throw fail(item, "\(key).id", "rule id \"\(rule.id)\" appears twice") }
            config.rules.append(rule)
        }
        return config
    }

    func dlpRule(_ node: Node, _ key: String, profiles: Set<String>) throws(ConfigError) -> DLPRule {
        let keys = ["id", "profile", "portals", "servers", "tools", "groups", "direction", "action"]
        var values: [String: Node] = [:]
        for (name, _, value) in try mapping(node, key, allowed: keys) { values[name] = value }
        guard let idNode = values["id"] else { throw fail(node, "\(key).id", "every rule needs an id") }
        guard let profileNode = values["profile"] else { throw fail(node, "\(key).profile", "every rule needs a profile") }
        guard let actionNode = values["action"] else { throw fail(node, "\(key).action", "every rule needs an action: block, redact or log") }
        let profile = try string(profileNode, "\(key).profile")
        guard profiles.contains(profile) else {
            throw fail(profileNode, "\(key).profile", "unknown profile \"\(profile)\"; known: \(profiles.sorted().joined(separator: ", "))")
        }
        let actionText = try string(actionNode, "\(key).action")
        guard let action = DLPRule.Action(rawValue: actionText) else {
            throw fail(actionNode, "\(key).action", "expected block, redact or log, found \"\(actionText)\"")
        }
        var rule = DLPRule(id: try string(idNode, "\(key).id"), profile: profile, action: action)
        if let node = values["direction"] {
            let text = try string(node, "\(key).direction")
            guard let direction = DLPRule.Direction(rawValue: text) else {
                throw fail(node, "\(key).direction", "expected to_server, from_server or both, found \"\(text)\"")
            }
            rule.direction = direction
        }
        if let node = values["portals"] { rule.portals = try strings(node, "\(key).portals") }
        if let node = values["servers"] { rule.servers = try strings(node, "\(key).servers") }
        if let node = values["tools"] { rule.tools = try strings(node, "\(key).tools") }
        if let node = values["groups"] { rule.groups = try strings(node, "\(key).groups") }
        return rule
    }

    func dlpDetector(_ node: Node, _ key: String) throws(ConfigError) -> DLPDetectorConfig {
        let keys = ["id", "pattern", "caseless", "validator", "context_words", "context_window"]
        var values: [String: Node] = [:]
        for (name, _, value) in try mapping(node, key, allowed: keys) { values[name] = value }
        guard let idNode = values["id"] else { throw fail(node, "\(key).id", "every detector needs an id") }
        guard let patternNode = values["pattern"] else { throw fail(node, "\(key).pattern", "every detector needs a pattern") }
        let id = try string(idNode, "\(key).id")
        guard !id.isEmpty, id.allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }) else {
            throw fail(idNode, "\(key).id", "detector ids are UPPER_SNAKE_CASE, found \"\(id)\"")
        }
        var detector = DLPDetectorConfig(id: id, pattern: try string(patternNode, "\(key).pattern"))
        detector.location = "\(file):\(patternNode.mark.map { "\($0.line):\($0.column)" } ?? "?"): \(key).pattern"
        if let node = values["caseless"] { detector.caseless = try bool(node, "\(key).caseless") }
        if let node = values["validator"] {
            let name = try string(node, "\(key).validator")
            guard DLPConfig.validators.contains(name) else {
                throw fail(node, "\(key).validator", "unknown validator \"\(name)\"; known: \(DLPConfig.validators.sorted().joined(separator: ", "))")
            }
            detector.validator = name
        }
        if let node = values["context_words"] { detector.contextWords = try strings(node, "\(key).context_words").map { $0.lowercased() } }
        if let node = values["context_window"] { detector.contextWindow = try int(node, "\(key).context_window", range: 1...4096) }
        return detector
    }

    func server(_ node: Node, _ key: String) throws(ConfigError) -> ServerConfig {
        let keys = ["id", "command", "args", "env", "cwd", "url", "transport", "headers", "builtin", "timeout_seconds", "read_only_tools"]
        let entries = try mapping(node, key, allowed: keys)
        var values: [String: (Node, Node)] = [:]
        for (name, k, v) in entries { values[name] = (k, v) }
        guard let (_, idNode) = values["id"] else { throw fail(node, "\(key).id", "every server needs an id") }
        let id = try string(idNode, "\(key).id")
        guard ServerConfig.isValidID(id) else {
            throw fail(idNode, "\(key).id", "\"\(id)\" is not a valid server id; use 1-32 of a-z, 0-9 and '-', starting with a letter or digit (no '_': it splits tool names)")
        }
        guard id != "portal" else {
            throw fail(idNode, "\(key).id", "\"portal\" is reserved for the portal's own tools (portal_list_servers, ...)")
        }
        let kinds = ["command", "url", "builtin"].filter { values[$0] != nil }
        guard kinds.count == 1 else {
            throw fail(node, key, kinds.isEmpty ? "server \"\(id)\" needs one of command (stdio), url (HTTP) or builtin" : "server \"\(id)\" has \(kinds.joined(separator: " and ")); give exactly one")
        }
        let transport: ServerConfig.Transport
        if let (_, commandNode) = values["command"] {
            for other in ["transport", "headers"] where values[other] != nil {
                throw fail(values[other]!.0, "\(key).\(other)", "only for url servers")
            }
            transport = .stdio(
                command: try string(commandNode, "\(key).command"),
                args: try values["args"].map { v throws(ConfigError) in try strings(v.1, "\(key).args") } ?? [],
                env: try values["env"].map { v throws(ConfigError) in try stringMap(v.1, "\(key).env") } ?? [:],
                cwd: try values["cwd"].map { v throws(ConfigError) in try string(v.1, "\(key).cwd") }
            )
        } else if let (_, urlNode) = values["url"] {
            for other in ["args", "env", "cwd"] where values[other] != nil {
                throw fail(values[other]!.0, "\(key).\(other)", "only for command (stdio) servers")
            }
            let url = try string(urlNode, "\(key).url")
            guard let parsed = URL(string: url), let scheme = parsed.scheme, ["http", "https"].contains(scheme), parsed.host != nil else {
                throw fail(urlNode, "\(key).url", "expected an http or https URL, found \"\(url)\"")
            }
            var mode = ServerConfig.HTTPMode.auto
            if let (_, modeNode) = values["transport"] {
                let text = try string(modeNode, "\(key).transport")
                guard let parsedMode = ServerConfig.HTTPMode(rawValue: text) else {
                    throw fail(modeNode, "\(key).transport", "expected auto, streamable-http or sse, found \"\(text)\"")
                }
                mode = parsedMode
            }
            transport = .http(url: url, mode: mode, headers: try values["headers"].map { v throws(ConfigError) in try stringMap(v.1, "\(key).headers") } ?? [:])
        } else {
            let (_, builtinNode) = values["builtin"]!
            let name = try string(builtinNode, "\(key).builtin")
            guard ["notes", "directory"].contains(name) else {
                throw fail(builtinNode, "\(key).builtin", "unknown built-in server \"\(name)\"; expected notes or directory")
            }
            transport = .builtin(name: name)
        }
        var server = ServerConfig(id: id, transport: transport)
        if let (_, v) = values["timeout_seconds"] { server.callTimeoutSeconds = try seconds(v, "\(key).timeout_seconds") }
        if let (_, v) = values["read_only_tools"] { server.readOnlyTools = try strings(v, "\(key).read_only_tools") }
        return server
    }

    func portal(_ node: Node, _ key: String) throws(ConfigError) -> PortalDefinition {
        var id: String?
        var servers: [String] = []
        var tools: [String: PortalDefinition.ToolSetting] = [:]
        var allowWrites = false, codemode = true
        for (name, _, value) in try mapping(node, key, allowed: ["id", "servers", "tools", "allow_writes", "codemode"]) {
            switch name {
            case "id":
                let text = try string(value, "\(key).id")
                guard ServerConfig.isValidID(text) else {
                    throw fail(value, "\(key).id", "\"\(text)\" is not a valid portal id; use 1-32 of a-z, 0-9 and '-'")
                }
                id = text
            case "servers": servers = try strings(value, "\(key).servers")
            case "allow_writes": allowWrites = try bool(value, "\(key).allow_writes")
            case "codemode": codemode = try bool(value, "\(key).codemode")
            case "tools":
                for (tool, _, setting) in try mapping(value, "\(key).tools", allowed: []) {
                    var entry = PortalDefinition.ToolSetting()
                    for (k, _, v) in try mapping(setting, "\(key).tools.\(tool)", allowed: ["enabled", "alias", "allow_write"]) {
                        if k == "enabled" { entry.enabled = try bool(v, "\(key).tools.\(tool).enabled") }
                        if k == "allow_write" { entry.allowWrite = try bool(v, "\(key).tools.\(tool).allow_write") }
                        if k == "alias" {
                            let alias = try string(v, "\(key).tools.\(tool).alias")
                            guard ToolNaming.isValidName(alias) else {
                                throw fail(v, "\(key).tools.\(tool).alias", "\"\(alias)\" is not a valid tool name (1-64 of A-Z, a-z, 0-9, '_', '-')")
                            }
                            entry.alias = alias
                        }
                    }
                    tools[tool] = entry
                }
            default: break
            }
        }
        guard let id else { throw fail(node, "\(key).id", "every portal needs an id") }
        var portal = PortalDefinition(id: id, servers: servers, tools: tools)
        portal.allowWrites = allowWrites
        portal.codemode = codemode
        return portal
    }

    func validate(_ config: PortalConfig) throws(ConfigError) -> PortalConfig {
        var seen = Set<String>()
        for (index, server) in config.servers.enumerated() where !seen.insert(server.id).inserted {
            throw ConfigError(file: file, line: nil, column: nil, key: "servers[\(index)].id", message: "server id \"\(server.id)\" is used twice")
        }
        var portals = Set<String>()
        for (index, portal) in config.portals.enumerated() {
            guard portals.insert(portal.id).inserted else {
                throw ConfigError(file: file, line: nil, column: nil, key: "portals[\(index)].id", message: "portal id \"\(portal.id)\" is used twice")
            }
            for (serverIndex, server) in portal.servers.enumerated() where !seen.contains(server) {
                throw ConfigError(file: file, line: nil, column: nil, key: "portals[\(index)].servers[\(serverIndex)]",
                                  message: "no server with id \"\(server)\"; known: \(config.servers.map(\.id).joined(separator: ", "))")
            }
        }
        return config
    }
}
