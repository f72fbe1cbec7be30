/// The whole configuration, as read from one YAML file (or the embedded defaults).
public struct PortalConfig: Sendable, Equatable {
    public var listen = Listen()
    public var storage = StorageConfig()
    public var limits = Limits()
    /// Origins allowed to call the MCP endpoints from a browser. Requests
    /// without an Origin header (non-browser clients) are always allowed.
    /// Entries are exact origins or `http://localhost:*`-style port wildcards.
    public var allowedOrigins: [String] = ["http://localhost:*", "http://127.0.0.1:*", "https://localhost:*"]
    public var pinning = Pinning()
    public var codemode = CodeMode()
    public var dlp = DLPConfig()
    public var servers: [ServerConfig] = []
    public var portals: [PortalDefinition] = []

    public init() {}

    public struct Listen: Sendable, Equatable {
        public var host = "127.0.0.1"
        public var port = 8080
        public init() {}
    }

    public struct StorageConfig: Sendable, Equatable {
        /// Folder for the SQLite database.
        public var path = ".mcp-portal"
        public init() {}
    }

    public struct Limits: Sendable, Equatable {
        public var maxBodyBytes = 4 << 20
        /// How long a call to an upstream server may take before it fails.
        public var callTimeoutSeconds: Double = 30
        /// How long to wait for a server to start and answer `initialize`.
        public var connectTimeoutSeconds: Double = 15
        public var sessionIdleSeconds: Double = 3600
        /// Events kept per stream for resumption with `Last-Event-ID`.
        public var resumeBufferEvents = 256
        public var maxSessions = 10_000
        public var maxJSONDepth = 128
        public init() {}
    }

    public struct Pinning: Sendable, Equatable {
        public enum NewToolRule: String, Sendable, Equatable, CaseIterable {
            /// A tool that appears on a server already seen is shown at once (and pinned).
            case allow
            /// A tool that appears on a server already seen is held until approved.
            case hold
        }
        public var newTools: NewToolRule = .allow
        public init() {}
    }

    /// Limits of Code Mode executions (`?codemode=search_and_execute`).
    public struct CodeMode: Sendable, Equatable {
        /// Wall time of one execution, tool calls included.
        public var timeoutSeconds: Double = 30
        /// CPU time the JavaScript itself may use.
        public var cpuSeconds: Double = 5
        /// JavaScript heap of one execution.
        public var memoryMB = 128
        /// Tool calls one execution may make.
        public var maxCalls = 100
        /// Tool calls of one execution running at the same time.
        public var concurrency = 8
        /// Size of the returned value plus console output; more is cut with a notice.
        public var maxOutputBytes = 64 << 10
        public var maxCodeBytes = 256 << 10
        /// Sandbox threads: executions running at the same time across the portal.
        public var workers = 4
        /// Store each execution's code text in the audit log (its hash and size always are).
        public var recordCode = false
        public init() {}
    }

    public func server(_ id: String) -> ServerConfig? { servers.first { $0.id == id } }
    public func portal(_ id: String) -> PortalDefinition? { portals.first { $0.id == id } }
}

/// One upstream MCP server.
public struct ServerConfig: Sendable, Equatable {
    public enum Transport: Sendable, Equatable {
        case stdio(command: String, args: [String], env: [String: String], cwd: String?)
        /// `mode` picks Streamable HTTP, legacy SSE, or auto (Streamable HTTP first, SSE as fallback).
        case http(url: String, mode: HTTPMode, headers: [String: String])
        /// A demo server compiled into this binary.
        case builtin(name: String)
    }

    public enum HTTPMode: String, Sendable, Equatable, CaseIterable {
        case auto
        case streamableHTTP = "streamable-http"
        case sse
    }

    public var id: String
    public var transport: Transport
    public var callTimeoutSeconds: Double?
    /// Tools an administrator marks read-only even if the server does not say so.
    public var readOnlyTools: [String] = []

    public init(id: String, transport: Transport, callTimeoutSeconds: Double? = nil) {
        self.id = id
        self.transport = transport
        self.callTimeoutSeconds = callTimeoutSeconds
    }

    /// Server ids split tool names at the first `_`, so they may not hold one.
    public static func isValidID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard (1...32).contains(bytes.count) else { return false }
        func ok(_ b: UInt8, first: Bool) -> Bool {
            (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || (!first && b == 0x2D)
        }
        return bytes.enumerated().allSatisfy { ok($0.element, first: $0.offset == 0) }
    }
}

/// One portal: an MCP endpoint at `/{id}/mcp` over a set of servers.
public struct PortalDefinition: Sendable, Equatable {
    public var id: String
    public var servers: [String]
    /// Per-tool settings, keyed by the tool's default name `{server}_{tool}`.
    public var tools: [String: ToolSetting] = [:]
    /// Grants write access to every tool of the portal. Off by default: a
    /// tool that is not read-only is hidden unless its setting says `allow_write`.
    public var allowWrites = false
    /// Whether `?codemode=search_and_execute` is offered (used by Code Mode).
    public var codemode = true

    public init(id: String, servers: [String], tools: [String: ToolSetting] = [:]) {
        self.id = id
        self.servers = servers
        self.tools = tools
    }

    public struct ToolSetting: Sendable, Equatable {
        public var enabled = true
        public var alias: String?
        /// Grants write access to this tool.
        public var allowWrite = false
        public init(enabled: Bool = true, alias: String? = nil, allowWrite: Bool = false) {
            self.enabled = enabled
            self.alias = alias
            self.allowWrite = allowWrite
        }
    }
}

extension PortalConfig {
    /// What `mcp-portal serve` runs with no config file: one portal over the
    /// built-in demo servers.
    public static var embeddedDefaults: PortalConfig {
        var config = PortalConfig()
        config.servers = [
            ServerConfig(id: "notes", transport: .builtin(name: "notes")),
            ServerConfig(id: "directory", transport: .builtin(name: "directory")),
        ]
        config.portals = [
            PortalDefinition(id: "default", servers: ["notes", "directory"], tools: ["notes_create_note": .init(allowWrite: true)]),
        ]
        return config
    }
}
