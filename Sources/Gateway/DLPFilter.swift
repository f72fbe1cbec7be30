import DLP
import MCPWire
import PortalCore

extension JSONRPCError {
    /// A message stopped by a DLP rule.
    static let dlpBlockedCode = -32010
}

extension PortalSession {
    enum Screened {
        case pass(JSON)
        case blocked(JSONRPCError)
    }

    /// Checks one part of a message (tool arguments, a result, a resource
    /// read, prompt messages) against the DLP rules that apply to it.
    /// Every rule that fires is audited before anything moves on: which
    /// rule, detectors, counts and JSON paths, never a matched value.
    /// Returns the part to send on (redacted where a redact rule fired), or
    /// the block error naming the rule and profile.
    func screen(_ json: JSON, direction: DLPDirection, server: String, tool: String?, method: String,
                path: String, executionID: String?) async throws -> Screened {
        try await withCheckedThrowingContinuation { continuation in
            startScreen(json, direction: direction, server: server, tool: tool, method: method, path: path, executionID: executionID) {
                continuation.resume(with: $0.mapError { $0 as any Error })
            }
        }
    }

    /// Whether any DLP rule is configured: without one, nothing is screened
    /// (and callers may skip preparing to).
    var screensAnything: Bool { !gateway.dlp.config.rules.isEmpty }

    /// ``screen`` with a completion: at once when no rule applies, else
    /// once the audit records of the rules that fired are written.
    func startScreen(_ json: JSON, direction: DLPDirection, server: String, tool: String?, method: String,
                     path: String, executionID: String?, completion: @escaping @Sendable (Result<Screened, JSONRPCError>) -> Void) {
        let dlp = gateway.dlp
        guard screensAnything else { return completion(.success(.pass(json))) }
        let toolName = tool.map { ToolNaming.exposedName(server: server, tool: $0) }
        let context = DLPContext(portal: portal.id, server: server, tool: toolName, groups: principal.groups, direction: direction)
        let rules = dlp.rules(for: context)
        guard !rules.isEmpty else { return completion(.success(.pass(json))) }
        // Scanning a big message takes a while: never on an event loop.
        Task { finishScreen(json, rules: rules, direction: direction, server: server, tool: tool, method: method, path: path,
                            executionID: executionID, completion: completion) }
    }

    private func finishScreen(_ json: JSON, rules: [DLPRule], direction: DLPDirection, server: String, tool: String?, method: String,
                              path: String, executionID: String?, completion: @escaping @Sendable (Result<Screened, JSONRPCError>) -> Void) {
        let inspection = gateway.dlp.inspect(json, rules: rules, path: path)
        let part = direction == .toServer ? "the arguments" : "the result"
        var blockError: JSONRPCError?
        if let rule = inspection.blockedBy {
            let message: String
            if let failure = inspection.failure {
                message = "Blocked by DLP rule \"\(rule.id)\" (profile \(rule.profile)): \(part) could not be checked: \(failure)"
            } else {
                let hit = inspection.hits.first { $0.rule.id == rule.id }
                let detectors = hit?.summary.map(\.detector).joined(separator: ", ") ?? "sensitive data"
                let consequence = direction == .toServer ? "nothing was sent to the server" : "it was withheld"
                message = "Blocked by DLP rule \"\(rule.id)\" (profile \(rule.profile)): \(detectors) found in \(part); \(consequence)."
            }
            blockError = JSONRPCError(code: JSONRPCError.dlpBlockedCode, message: message)
        }
        if let failure = inspection.failure {
            gateway.logger.warning("DLP could not check a message", metadata: [
                "portal": "\(portal.id)", "upstream.id": "\(server)", "error": "\(failure)", "blocked": "\(blockError != nil)"])
        }
        var events: [AuditEvent] = []
        for hit in inspection.hits {
            var event = AuditEvent(kind: .dlp, portal: portal.id, sessionID: id, principal: principal.subject, server: server,
                                   tool: tool, method: method, outcome: hit.rule.action == .block ? .denied : .ok)
            var detail = hit.detail
            detail["direction"] = .string(direction.rawValue)
            event.detail = detail.text
            event.executionID = executionID
            events.append(event)
        }
        if inspection.hits.isEmpty, let failure = inspection.failure, let rule = inspection.blockedBy {
            var event = AuditEvent(kind: .dlp, portal: portal.id, sessionID: id, principal: principal.subject, server: server,
                                   tool: tool, method: method, outcome: .denied, error: "\(failure)")
            event.detail = JSON.object(["rule": .string(rule.id), "profile": .string(rule.profile), "action": "block",
                                        "direction": .string(direction.rawValue)]).text
            event.executionID = executionID
            events.append(event)
        }
        let screened: Screened = blockError.map { .blocked($0) } ?? .pass(inspection.redacted ?? json)
        gateway.record(events) { error in completion(error.map { .failure($0) } ?? .success(screened)) }
    }
}
