import MCPWire

/// What a tool call made from code came back with, as the host hands it over.
public enum ToolCallOutcome: Sendable {
    /// A `tools/call` result object (which may say `isError`).
    case result(JSON)
    /// A JSON-RPC error: unknown or denied tool, upstream down, timeout, DLP block.
    case failure(code: Int, message: String)
}

/// How a tool's answer becomes the value a `codemode.<tool>()` promise
/// settles with: `structuredContent` if present; else the text, parsed as
/// JSON when it is JSON; else the raw content. `isError` rejects. A value
/// that the server wrapped as `{"result": value}` because structured content
/// must be an object (its output schema says `x-fastmcp-wrap-result`, as
/// FastMCP servers do for lists and scalars) comes unwrapped.
public enum ToolResult {
    public enum Unwrapped: Equatable, Sendable {
        case value(JSON)
        case error(String)
    }

    public static func isWrapped(_ outputSchema: JSON?) -> Bool {
        outputSchema?["x-fastmcp-wrap-result"] == .bool(true)
    }

    public static func unwrap(_ outcome: ToolCallOutcome, outputSchema: JSON? = nil) -> Unwrapped {
        switch outcome {
        case .failure(_, let message):
            return .error(message)
        case .result(let result):
            let content = result["content"]?.arrayValue ?? []
            let texts = content.compactMap { item in item["type"]?.stringValue == "text" ? item["text"]?.stringValue : nil }
            let allText = !content.isEmpty && texts.count == content.count
            if result["isError"] == .bool(true) {
                return .error(allText ? texts.joined(separator: "\n") : (content.isEmpty ? "the tool reported an error" : JSON.array(content).text))
            }
            if let structured = result["structuredContent"] {
                if isWrapped(outputSchema), let inner = structured["result"] { return .value(inner) }
                return .value(structured)
            }
            guard allText else { return .value(.array(content)) }
            let text = texts.joined(separator: "\n")
            if let parsed = try? JSON.parse(text) { return .value(parsed) }
            return .value(.string(text))
        }
    }
}
