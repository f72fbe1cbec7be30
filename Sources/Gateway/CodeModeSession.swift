import CodeMode
import Foundation
import MCPWire
import PortalCore
import Synchronization

extension PortalSession {
    /// Runs `portal_codemode_search` or `portal_codemode_execute`: the code
    /// in a sandbox, each tool call it makes through `invoke` like a direct
    /// call (same principal, policy and audit, plus the execution id), and
    /// the execution itself audited.
    func runCode(_ params: JSONObject, mode: ExecutionRequest.Mode, requestID: JSON) async throws -> JSON {
        let tool = mode == .search ? CodeModeTools.search : CodeModeTools.execute
        guard let code = params["arguments"]?["code"]?.stringValue else {
            throw JSONRPCError.invalidParams("\(tool) needs arguments {\"code\": string}: an async arrow function in plain JavaScript")
        }
        let executionID = "x-" + Hex.random(12)
        let cancellation = ExecutionCancellation()
        let host = SessionHost(session: self, executionID: executionID, relatedTo: requestID)
        let registered = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.executions[requestID] = cancellation
            return true
        }
        guard registered else { throw JSONRPCError(code: -32000, message: "session closed") }
        let report = await gateway.codeMode.run(ExecutionRequest(id: executionID, code: code, mode: mode, host: host, cancellation: cancellation))
        _ = state.withLock { $0.executions.removeValue(forKey: requestID) }
        await host.cancelOutstanding()

        let result = CodeModeTools.result(report, executionID: executionID)
        let settings = gateway.config.codemode
        var event = AuditEvent(kind: .execution, portal: portal.id, sessionID: id, principal: principal.subject, tool: tool,
                               method: MCP.Method.toolsCall, outcome: report.succeeded ? .ok : .error,
                               error: report.failure.map { "\($0.rawValue): \(report.message ?? "")" })
        event.executionID = executionID
        let codeBytes = Array(code.utf8)
        event.argumentBytes = codeBytes.count
        event.argumentHash = Hex.sha256(codeBytes)
        event.durationMicros = report.durationMicros
        event.resultBytes = result.serializedCount
        if settings.recordCode { event.detail = code }
        try await gateway.record(event)
        return result
    }

    /// The tools code may call: the same ones this session sees directly.
    func codeModeCatalog() -> CodeModeCatalog {
        gateway.codeModeCatalog(for: portal, servers: state.withLock { $0.enabledServers })
    }
}

/// The portal as one execution's code sees it.
final class SessionHost: CodeModeHost {
    let session: PortalSession
    let executionID: String
    let relatedTo: JSON
    let calls = Mutex<(next: Int, running: Set<JSON>)>((0, []))

    init(session: PortalSession, executionID: String, relatedTo: JSON) {
        self.session = session
        self.executionID = executionID
        self.relatedTo = relatedTo
    }

    func catalog() -> CodeModeCatalog {
        session.codeModeCatalog()
    }

    func callTool(name: String, arguments: JSON, executionID: String) async -> ToolCallOutcome {
        let callID = calls.withLock { c -> JSON in
            c.next += 1
            let id = JSON.string("\(executionID)/\(c.next)")
            c.running.insert(id)
            return id
        }
        defer { _ = calls.withLock { $0.running.remove(callID) } }
        do {
            let response = try await session.invoke(name: name, params: ["name": .string(name), "arguments": arguments],
                                                    downstreamID: callID, relatedTo: relatedTo, executionID: executionID)
            if let error = response.error {
                return .failure(code: error["code"]?.intValue ?? -32603, message: error["message"]?.stringValue ?? "error")
            }
            return .result(response.result ?? [:])
        } catch let error as JSONRPCError {
            return .failure(code: error.code, message: error.message)
        } catch {
            return .failure(code: -32603, message: "\(error)")
        }
    }

    /// Cancels upstream the calls still running when the execution ended
    /// (a limit stopped it while they were in flight).
    func cancelOutstanding() async {
        for id in calls.withLock({ $0.running }) {
            if let call = session.inFlightCall(id) { await call.client.cancel(call.id, reason: "the Code Mode execution ended") }
        }
    }
}
