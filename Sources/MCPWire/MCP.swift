/// MCP method names, protocol versions and header names, as the spec spells them.
public enum MCP {
    public static let latestProtocolVersion = "2025-11-25"
    /// Versions this portal negotiates with clients, newest first.
    public static let supportedProtocolVersions = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]
    /// Versions whose Streamable HTTP transport allows JSON-RPC batches.
    public static let batchingVersions: Set<String> = ["2025-03-26"]

    public enum Header {
        public static let sessionID = "Mcp-Session-Id"
        public static let protocolVersion = "MCP-Protocol-Version"
        public static let lastEventID = "Last-Event-ID"
    }

    public enum Method {
        public static let initialize = "initialize"
        public static let initialized = "notifications/initialized"
        public static let ping = "ping"
        public static let toolsList = "tools/list"
        public static let toolsCall = "tools/call"
        public static let resourcesList = "resources/list"
        public static let resourceTemplatesList = "resources/templates/list"
        public static let resourcesRead = "resources/read"
        public static let resourcesSubscribe = "resources/subscribe"
        public static let resourcesUnsubscribe = "resources/unsubscribe"
        public static let promptsList = "prompts/list"
        public static let promptsGet = "prompts/get"
        public static let completionComplete = "completion/complete"
        public static let loggingSetLevel = "logging/setLevel"
        public static let cancelled = "notifications/cancelled"
        public static let progress = "notifications/progress"
        public static let message = "notifications/message"
        public static let toolsListChanged = "notifications/tools/list_changed"
        public static let resourcesListChanged = "notifications/resources/list_changed"
        public static let resourceUpdated = "notifications/resources/updated"
        public static let promptsListChanged = "notifications/prompts/list_changed"
        public static let rootsListChanged = "notifications/roots/list_changed"
        public static let samplingCreateMessage = "sampling/createMessage"
        public static let elicitationCreate = "elicitation/create"
        public static let rootsList = "roots/list"
    }
}

/// Something that answers MCP messages: an in-process server.
public protocol MCPMessageHandler: Sendable {
    /// Answers a request, or returns nil for a notification.
    func handle(_ message: JSONRPCMessage) async -> JSONRPCMessage?
}
