import MCPWire

/// A small MCP server made of tools, resources and prompts, each with a
/// handler: what the demo servers (and tests) are built from.
public struct ToolServer: MCPMessageHandler {
    public struct Tool: Sendable {
        public var definition: JSON
        public var handler: @Sendable (JSONObject) async throws -> JSON
        public var name: String { definition["name"]?.stringValue ?? "" }

        /// `annotations` should be honest: `readOnlyHint: true` only for tools that change nothing.
        public init(name: String, description: String, properties: JSON, required: [String] = [],
                    readOnly: Bool, destructive: Bool = false,
                    handler: @escaping @Sendable (JSONObject) async throws -> JSON) {
            var annotations: JSONObject = ["readOnlyHint": .bool(readOnly)]
            if !readOnly { annotations["destructiveHint"] = .bool(destructive) }
            definition = [
                "name": .string(name),
                "description": .string(description),
                "inputSchema": ["type": "object", "properties": properties, "required": .array(required.map(JSON.string))],
                "annotations": .object(annotations),
            ]
            self.handler = handler
        }
    }

    public struct Resource: Sendable {
        public var definition: JSON
        public var read: @Sendable () async throws -> String
        public init(uri: String, name: String, description: String, read: @escaping @Sendable () async throws -> String) {
            definition = ["uri": .string(uri), "name": .string(name), "description": .string(description), "mimeType": "application/json"]
            self.read = read
        }
    }

    public struct Prompt: Sendable {
        public var definition: JSON
        public var render: @Sendable (JSONObject) async throws -> String
        public init(name: String, description: String, arguments: [(String, String)], render: @escaping @Sendable (JSONObject) async throws -> String) {
            definition = [
                "name": .string(name), "description": .string(description),
                "arguments": .array(arguments.map { ["name": .string($0.0), "description": .string($0.1), "required": true] }),
            ]
            self.render = render
        }
    }

    /// A tool failure the caller should see as a tool result with `isError`.
    public struct ToolFailure: Error {
        public var message: String
        public init(_ message: String) { self.message = message }
    }

    public var name: String
    public var instructions: String
    public var tools: [Tool]
    public var resources: [Resource]
    public var prompts: [Prompt]

    public init(name: String, instructions: String, tools: [Tool], resources: [Resource] = [], prompts: [Prompt] = []) {
        self.name = name
        self.instructions = instructions
        self.tools = tools
        self.resources = resources
        self.prompts = prompts
    }

    public func handle(_ message: JSONRPCMessage) async -> JSONRPCMessage? {
        guard message.kind == .request, let id = message.id, let method = message.method else { return nil }
        let params = message.params?.objectValue ?? [:]
        do {
            return .response(id: id, result: try await result(method: method, params: params))
        } catch let error as JSONRPCError {
            return .error(id: id, error)
        } catch {
            return .error(id: id, .internalError("\(error)"))
        }
    }

    func result(method: String, params: JSONObject) async throws -> JSON {
        switch method {
        case MCP.Method.initialize:
            let requested = params["protocolVersion"]?.stringValue ?? MCP.latestProtocolVersion
            let version = MCP.supportedProtocolVersions.contains(requested) ? requested : MCP.latestProtocolVersion
            var capabilities: JSONObject = ["tools": [:]]
            if !resources.isEmpty { capabilities["resources"] = [:] }
            if !prompts.isEmpty { capabilities["prompts"] = [:] }
            return [
                "protocolVersion": .string(version),
                "capabilities": .object(capabilities),
                "serverInfo": ["name": .string(name), "version": "0.1.0"],
                "instructions": .string(instructions),
            ]
        case MCP.Method.ping:
            return [:]
        case MCP.Method.toolsList:
            return ["tools": .array(tools.map(\.definition))]
        case MCP.Method.toolsCall:
            guard let toolName = params["name"]?.stringValue else { throw JSONRPCError.invalidParams("missing tool name") }
            guard let tool = tools.first(where: { $0.name == toolName }) else {
                throw JSONRPCError.invalidParams("unknown tool: \(toolName)")
            }
            let arguments = params["arguments"]?.objectValue ?? [:]
            do {
                let value = try await tool.handler(arguments)
                var result: JSONObject = ["content": [["type": "text", "text": .string(value.text)]]]
                if case .object = value { result["structuredContent"] = value }
                return .object(result)
            } catch let failure as ToolFailure {
                return ["content": [["type": "text", "text": .string(failure.message)]], "isError": true]
            }
        case MCP.Method.resourcesList:
            return ["resources": .array(resources.map(\.definition))]
        case MCP.Method.resourceTemplatesList:
            return ["resourceTemplates": []]
        case MCP.Method.resourcesRead:
            guard let uri = params["uri"]?.stringValue, let resource = resources.first(where: { $0.definition["uri"]?.stringValue == uri }) else {
                throw JSONRPCError(code: -32002, message: "Resource not found")
            }
            return ["contents": [["uri": .string(uri), "mimeType": "application/json", "text": .string(try await resource.read())]]]
        case MCP.Method.promptsList:
            return ["prompts": .array(prompts.map(\.definition))]
        case MCP.Method.promptsGet:
            guard let promptName = params["name"]?.stringValue, let prompt = prompts.first(where: { $0.definition["name"]?.stringValue == promptName }) else {
                throw JSONRPCError.invalidParams("unknown prompt")
            }
            let text = try await prompt.render(params["arguments"]?.objectValue ?? [:])
            return ["messages": [["role": "user", "content": ["type": "text", "text": .string(text)]]]]
        default:
            throw JSONRPCError.methodNotFound(method)
        }
    }
}

extension JSONObject {
    func string(_ key: String) throws -> String {
        guard let value = self[key]?.stringValue else { throw JSONRPCError.invalidParams("\"\(key)\" must be a string") }
        return value
    }
}
