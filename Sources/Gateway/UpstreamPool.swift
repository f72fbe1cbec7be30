import Foundation
import Logging
import MCPWire
import PortalCore
import Synchronization
import Upstream

/// Every upstream server of the configuration: its client, its status and
/// its current (pinned) tools. Reads on the request path take a lock for a
/// moment; they never wait on a server.
public final class UpstreamPool: Sendable {
    public struct ServerState: Sendable {
        public var id: String
        public var client: UpstreamClient
        public var config: ServerConfig
        public var ready = false
        public var reason: String?
        /// Visible (pinned) tools, by upstream name.
        public var tools: [JSON] = []
        public var initializeResult: JSON?
    }

    public typealias Listener = @Sendable (String, UpstreamEvent) -> Void

    let states: Mutex<[String: ServerState]>
    /// Goes up whenever any server's visible tools are set: catalogs built
    /// at an older one are built again.
    let toolsGeneration = Atomic<Int>(0)
    let listeners = Mutex<[UUID: Listener]>([:])
    public let order: [String]
    let pinner: ToolPinner
    let logger: Logger

    /// - Parameter builtins: in-process servers by built-in name.
    public init(config: PortalConfig, builtins: [String: any MCPMessageHandler], pinner: ToolPinner, logger: Logger) {
        self.pinner = pinner
        self.logger = logger
        self.order = config.servers.map(\.id)
        var states: [String: ServerState] = [:]
        let events = Mutex<(@Sendable (String, UpstreamEvent) -> Void)?>(nil)
        for server in config.servers {
            var serverLogger = logger
            serverLogger[metadataKey: "upstream.id"] = "\(server.id)"
            let factory = Self.transportFactory(server, builtins: builtins, callTimeout: config.limits.callTimeoutSeconds,
                                                connectTimeout: config.limits.connectTimeoutSeconds, logger: serverLogger)
            let id = server.id
            let client = UpstreamClient(
                serverID: id, connectTimeout: .seconds(config.limits.connectTimeoutSeconds), logger: serverLogger,
                onEvent: { event in events.withLock { $0 }?(id, event) }, makeTransport: factory)
            states[id] = ServerState(id: id, client: client, config: server)
        }
        self.states = Mutex(states)
        events.withLock { $0 = { [weak self] id, event in self?.handle(id, event) } }
    }

    static func transportFactory(_ server: ServerConfig, builtins: [String: any MCPMessageHandler], callTimeout: Double,
                                 connectTimeout: Double, logger: Logger) -> @Sendable () -> any MessageTransport {
        switch server.transport {
        case .stdio(let command, let args, let env, let cwd):
            return { StdioTransport(command: command, arguments: args, environment: env, workingDirectory: cwd, logger: logger) }
        case .http(let url, let mode, let headers):
            let timeout = Duration.seconds(max(server.callTimeoutSeconds ?? callTimeout, connectTimeout))
            return { HTTPTransport(url: url, mode: mode.rawValue, headers: headers, requestTimeout: timeout, logger: logger) }
        case .builtin(let name):
            let handler = builtins[name]
            return {
                if let handler { return InProcessTransport(server: handler) }
                return FailingTransport(reason: "no built-in server named \(name)")
            }
        }
    }

    /// Runs every client until cancelled.
    public func run() async {
        let clients = states.withLock { $0.values.map(\.client) }
        await withTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { await client.run() } }
        }
    }

    /// Waits until every server has either connected or failed once, and the
    /// tools of those that connected are pinned and ready to call.
    public func waitUntilSettled() async {
        let clients = states.withLock { $0.values.map(\.client) }
        for client in clients { await client.waitUntilSettled() }
        for server in all where server.ready { await refreshTools(server.id, notify: false) }
    }

    public func state(_ id: String) -> ServerState? { states.withLock { $0[id] } }
    public var all: [ServerState] { states.withLock { s in order.compactMap { s[$0] } } }

    /// Registers a listener for server events (sessions relay list changes).
    public func addListener(_ listener: @escaping Listener) -> UUID {
        let id = UUID()
        listeners.withLock { $0[id] = listener }
        return id
    }

    public func removeListener(_ id: UUID) { _ = listeners.withLock { $0.removeValue(forKey: id) } }

    /// How many listeners there are (tests: sessions that end remove theirs).
    var listenerCount: Int { listeners.withLock { $0.count } }

    func handle(_ id: String, _ event: UpstreamEvent) {
        switch event {
        case .ready(let result):
            states.withLock {
                $0[id]?.ready = true
                $0[id]?.reason = nil
                $0[id]?.initializeResult = result
            }
            Task { await self.refreshTools(id, notify: true) }
            return
        case .unavailable(let reason):
            // The last known tools stay listed; calls to them fail fast with a clear error.
            states.withLock {
                $0[id]?.ready = false
                $0[id]?.reason = reason
            }
            return
        case .toolsChanged:
            Task { await self.refreshTools(id, notify: true) }
            return
        default:
            broadcast(id, event)
        }
    }

    func broadcast(_ id: String, _ event: UpstreamEvent) {
        for listener in listeners.withLock({ Array($0.values) }) { listener(id, event) }
    }

    let refreshes = Mutex<[String: Task<Void, Never>]>([:])

    /// Re-reads the client's tools through the pinner. Refreshes of one
    /// server run one after another, so a changed definition is recorded once.
    public func refreshTools(_ id: String, notify: Bool) async {
        let task = refreshes.withLock { tasks -> Task<Void, Never> in
            let previous = tasks[id]
            let next = Task {
                await previous?.value
                await self.evaluateTools(id, notify: notify)
            }
            tasks[id] = next
            return next
        }
        await task.value
    }

    private func evaluateTools(_ id: String, notify: Bool) async {
        guard let client = state(id)?.client else { return }
        let tools = client.tools
        let visible: [JSON]
        do {
            visible = try await pinner.visibleTools(server: id, tools: tools)
        } catch {
            logger.error("pinning failed; hiding the server's tools", metadata: ["upstream.id": "\(id)", "error": "\(error)"])
            visible = []
        }
        let changed = states.withLock { s -> Bool in
            let old = s[id]?.tools ?? []
            s[id]?.tools = visible
            toolsGeneration.add(1, ordering: .releasing)
            return old != visible
        }
        if notify, changed { broadcast(id, .toolsChanged) }
    }
}

/// A transport that never connects (a misconfigured built-in name).
struct FailingTransport: MessageTransport {
    var reason: String
    func connect(onMessage: @escaping @Sendable (InboundMessage) -> Void, onClose: @escaping @Sendable ((any Error)?) -> Void) async throws {
        throw TransportError(reason)
    }
    func send(_ message: JSONRPCMessage) async throws { throw TransportError(reason) }
    func close() async {}
}
