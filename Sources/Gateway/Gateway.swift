import CodeMode
import DLP
import Foundation
import Logging
import MCPWire
import Metrics
import PortalCore
import Synchronization
import Upstream

/// Delivers messages from the portal to one client session: on the stream
/// of the request they belong to, or on the session's own stream when
/// `relatedTo` is nil.
public protocol SessionOutbound: Sendable {
    func send(_ message: JSONRPCMessage, relatedTo requestID: JSON?) async
}

/// The portal's request path, shared by every session: the pool, the
/// catalogs, audit and settings. Sessions are made here.
public final class Gateway: Sendable {
    public let config: PortalConfig
    public let pool: UpstreamPool
    public let audit: any AuditStore
    let logger: Logger
    let catalogs = Mutex<[String: PortalCatalog]>([:])
    let codeModeCatalogs = Mutex<[String: (stamp: Int, servers: Set<String>, catalog: CodeModeCatalog)]>([:])
    /// The sandboxes Code Mode sessions run their code in.
    public let codeMode: CodeModeEngine
    /// DLP rules and the compiled detectors.
    public let dlp: DLPEngine

    public init(config: PortalConfig, pool: UpstreamPool, audit: any AuditStore, logger: Logger) throws(DLPEngine.ConfigurationError) {
        self.config = config
        self.pool = pool
        self.audit = audit
        self.logger = logger
        self.codeMode = CodeModeEngine(settings: config.codemode)
        self.dlp = try DLPEngine(config: config.dlp)
    }

    public func portal(_ id: String) -> PortalDefinition? { config.portal(id) }

    /// The portal's current catalog, rebuilt when any of its servers changed.
    public func catalog(for portal: PortalDefinition) -> PortalCatalog {
        // Read before the servers: tools set meanwhile make a newer one, so
        // what is built now is built again on the next call.
        let stamp = pool.toolsGeneration.load(ordering: .acquiring)
        if let cached = catalogs.withLock({ $0[portal.id] }), cached.stamp == stamp { return cached }
        let servers = portal.servers.compactMap { pool.state($0) }
        let built = PortalCatalog.build(portal: portal, servers: servers, stamp: stamp)
        catalogs.withLock { $0[portal.id] = built }
        return built
    }

    public func openSession(portal: PortalDefinition, principal: Principal, sessionID: String, codeMode: Bool = false,
                            outbound: any SessionOutbound) -> PortalSession {
        PortalSession(gateway: self, portal: portal, principal: principal, id: sessionID, codeMode: codeMode, outbound: outbound)
    }

    /// What code may call in a portal, for the servers a session has on:
    /// exactly the tools the portal shows directly (policy-filtered, pinned).
    func codeModeCatalog(for portal: PortalDefinition, servers: Set<String>) -> CodeModeCatalog {
        let catalog = self.catalog(for: portal)
        if let cached = codeModeCatalogs.withLock({ $0[portal.id] }), cached.stamp == catalog.stamp, cached.servers == servers {
            return cached.catalog
        }
        let built = CodeModeCatalog(tools: catalog.tools.filter { servers.contains($0.server) }.compactMap { entry in
            guard let name = entry.definition["name"]?.stringValue, let route = catalog.routes[name] else { return nil }
            return CodeModeCatalog.Tool(name: name, server: entry.server, definition: entry.definition, readOnly: route.readOnly)
        })
        for names in built.collisions {
            logger.warning("Code Mode identifier collision; these tools are reachable only with codemode.call(name)",
                           metadata: ["portal": "\(portal.id)", "tools": "\(names.joined(separator: ", "))"])
        }
        codeModeCatalogs.withLock { $0[portal.id] = (catalog.stamp, servers, built) }
        return built
    }

    func timeout(for server: UpstreamPool.ServerState) -> Duration {
        .seconds(server.config.callTimeoutSeconds ?? config.limits.callTimeoutSeconds)
    }

    /// Records an audit event; a store failure becomes an error the client sees
    /// (the portal fails closed rather than answer unaudited).
    func record(_ event: AuditEvent) async throws(JSONRPCError) {
        do {
            try await audit.record(event)
        } catch {
            logger.error("audit write failed; failing the request closed", metadata: ["error": "\(error)"])
            throw JSONRPCError.internalError("audit log unavailable; request refused")
        }
    }

    /// ``record(_:)`` with a completion: nil once the record is durable, or
    /// the error the client gets.
    func record(_ event: AuditEvent, then completion: @escaping @Sendable (JSONRPCError?) -> Void) {
        audit.record(event) { [logger] error in
            guard let error else { return completion(nil) }
            logger.error("audit write failed; failing the request closed", metadata: ["error": "\(error)"])
            completion(JSONRPCError.internalError("audit log unavailable; request refused"))
        }
    }

    /// Several records at once (they share a batch); `completion` runs once
    /// all are durable, or with the first failure.
    func record(_ events: [AuditEvent], then completion: @escaping @Sendable (JSONRPCError?) -> Void) {
        guard events.count > 1 else {
            guard let event = events.first else { return completion(nil) }
            return record(event, then: completion)
        }
        let outstanding = Mutex((count: events.count, failure: JSONRPCError?.none))
        for event in events {
            record(event) { error in
                let done = outstanding.withLock { state -> (Bool, JSONRPCError?) in
                    state.count -= 1
                    if state.failure == nil { state.failure = error }
                    return (state.count == 0, state.failure)
                }
                if done.0 { completion(done.1) }
            }
        }
    }

    struct ToolKey: Hashable {
        var server: String
        var tool: String
    }

    let callCounter = Mutex<[ToolKey: (Counter, Counter, Metrics.Timer)]>([:])

    func metrics(server: String, tool: String) -> (calls: Counter, errors: Counter, latency: Metrics.Timer) {
        let key = ToolKey(server: server, tool: tool)
        if let found = callCounter.withLock({ $0[key] }) { return found }
        let dims = [("server", server), ("tool", tool)]
        let made = (Counter(label: "mcp_portal_tool_calls_total", dimensions: dims),
                    Counter(label: "mcp_portal_tool_errors_total", dimensions: dims),
                    Metrics.Timer(label: "mcp_portal_tool_call_duration_seconds", dimensions: dims, preferredDisplayUnit: .seconds))
        callCounter.withLock { $0[key] = made }
        return made
    }
}
