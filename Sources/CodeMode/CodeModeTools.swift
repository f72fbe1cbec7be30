import MCPWire
import PortalCore

/// The two tools a Code Mode session sees instead of every upstream tool.
/// Their descriptions teach the whole API; their size does not depend on
/// how many tools the portal has.
public enum CodeModeTools {
    public static let search = "portal_codemode_search"
    public static let execute = "portal_codemode_execute"
    /// The query value that turns Code Mode on: `/{portal}/mcp?codemode=search_and_execute`.
    public static let queryValue = "search_and_execute"

    public static func definitions(_ settings: PortalConfig.CodeMode) -> [JSON] {
        let input: JSON = [
            "type": "object",
            "properties": ["code": ["type": "string", "description": "async () => { ... }"]],
            "required": ["code"],
        ]
        let searchText = """
            Find the tools you can call. `code` is plain JavaScript (no TypeScript), an async arrow function run in a sandbox. \
            `await codemode.tools()` gives [{name, server, description, inputSchema, outputSchema, annotations, readOnly}]; \
            `await codemode.describe(name)` gives a tool's TypeScript declaration. Return only what you need, e.g. \
            async () => (await codemode.tools()).filter(t => t.name.includes("issue")).map(t => t.name)
            """
        let executeText = """
            Call tools with plain JavaScript (no TypeScript): an async arrow function run in a sandbox. \
            `await codemode.NAME(args)` or `await codemode.call("name", args)` calls a tool found with \(search) and \
            gives its result: structuredContent, else the text (parsed when JSON). A tool error throws an Error. \
            Promise.all runs calls in parallel. Return a JSON value; console.log/warn/error output comes back with it. \
            Limits: \(format(settings.timeoutSeconds)) s, \(settings.maxCalls) calls, \(settings.maxOutputBytes / 1024) KB output; \
            no network, files, imports or timers.
            """
        return [
            ["name": .string(search), "description": .string(searchText), "inputSchema": input,
             "annotations": ["readOnlyHint": true]],
            ["name": .string(execute), "description": .string(executeText), "inputSchema": input,
             "annotations": ["readOnlyHint": false, "openWorldHint": true]],
        ]
    }

    /// The `tools/call` result for an execution: the value as JSON text,
    /// the console output after it; failures as `isError` with the reason.
    public static func result(_ report: ExecutionReport, executionID: String) -> JSON {
        var content: [JSON] = []
        var structured: JSONObject = [:]
        if let failure = report.failure {
            content.append(["type": "text", "text": .string("\(failure.rawValue): \(report.message ?? "")")])
            structured["error"] = ["type": .string(failure.rawValue), "message": .string(report.message ?? "")]
        } else {
            let value = report.value ?? .null
            content.append(["type": "text", "text": .string(value.text)])
            structured["result"] = value
        }
        if !report.logs.isEmpty {
            let lines = report.logs.map { "[\($0.level)] \($0.text)" }.joined(separator: "\n")
            content.append(["type": "text", "text": .string("console:\n" + lines)])
            structured["logs"] = .array(report.logs.map { ["level": .string($0.level), "text": .string($0.text)] })
        }
        structured["calls"] = .int(report.calls)
        // The id under which the execution and its calls are audited.
        structured["execution"] = .string(executionID)
        var result: JSONObject = ["content": .array(content), "structuredContent": .object(structured)]
        if report.failure != nil { result["isError"] = true }
        return .object(result)
    }

    static func format(_ seconds: Double) -> String { SandboxWorker.format(seconds) }
}
