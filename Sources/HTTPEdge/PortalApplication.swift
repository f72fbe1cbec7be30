import DemoServers
import Foundation
import Gateway
import Hummingbird
import Logging
import MCPWire
import Metrics
import NIOCore
import NIOPosix
import PortalCore
import Prometheus
import ServiceLifecycle
import Storage
import Synchronization

/// Builds the whole portal from its configuration: store, upstream pool,
/// gateway and HTTP routes. Tests build exactly what `serve` runs.
public final class PortalApplication: Sendable {
    /// The Server header of every response.
    static let serverName = "mcp-portal"
    public let config: PortalConfig
    public let gateway: Gateway
    public let pool: UpstreamPool
    public let store: SQLiteStore
    let registry: SessionRegistry
    let endpoint: MCPEndpoint
    let logger: Logger

    public init(config: PortalConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        PortalApplication.bootstrapMetrics()
        store = try SQLiteStore(folder: config.storage.path, writer: .journal)
        if store.recovered.records > 0 || store.recovered.droppedBytes > 0 {
            logger.warning("audit journal recovered", metadata: [
                "records": "\(store.recovered.records)", "droppedBytes": "\(store.recovered.droppedBytes)",
            ])
        }
        var builtins: [String: any MCPMessageHandler] = [:]
        for server in config.servers {
            guard case .builtin(let name) = server.transport else { continue }
            switch name {
            case "notes": builtins[name] = try NotesServer.make(folder: config.storage.path)
            case "directory": builtins[name] = DirectoryServer.make()
            default: break
            }
        }
        let pinner = ToolPinner(store: store, audit: store, newTools: config.pinning.newTools)
        pool = UpstreamPool(config: config, builtins: builtins, pinner: pinner, logger: logger)
        gateway = try Gateway(config: config, pool: pool, audit: store, logger: logger)
        registry = SessionRegistry(limit: config.limits.maxSessions)
        endpoint = MCPEndpoint(gateway: gateway, registry: registry, limits: config.limits,
                               origins: OriginPolicy(allowed: config.allowedOrigins), logger: logger)
    }

    static let metricsBootstrapped = Mutex(false)
    static let prometheus = PrometheusCollectorRegistry()

    static func bootstrapMetrics() {
        metricsBootstrapped.withLock { done in
            guard !done else { return }
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: prometheus))
            done = true
        }
    }

    /// The router with every route: MCP endpoints, health, readiness, metrics.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        let endpoint = self.endpoint
        for path in ["/mcp", "/{portal}/mcp"] {
            router.post(RouterPath(path)) { request, context in await endpoint.post(request, context: context) }
            router.get(RouterPath(path)) { request, context in await endpoint.get(request, context: context) }
            router.delete(RouterPath(path)) { request, context in await endpoint.delete(request, context: context) }
        }
        router.get("/sse") { request, context in await endpoint.legacyStream(request, context: context) }
        router.get("/{portal}/sse") { request, context in await endpoint.legacyStream(request, context: context) }
        router.post("/messages") { request, context in await endpoint.legacyPost(request, context: context) }
        router.post("/{portal}/messages") { request, context in await endpoint.legacyPost(request, context: context) }
        router.get("/healthz") { _, _ in Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n"))) }
        let pool = self.pool
        router.get("/readyz") { [self] _, _ in
            guard self.settled.withLock({ $0 }) else {
                return Response(status: .serviceUnavailable, body: ResponseBody(byteBuffer: ByteBuffer(string: "starting\n")))
            }
            var status: JSONObject = [:]
            for server in pool.all { status[server.id] = .string(server.ready ? "ready" : "unavailable: \(server.reason ?? "")") }
            return MCPEndpoint.json(JSON.object(["ready": true, "servers": .object(status)]).serialized())
        }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: Self.prometheus.emitToBuffer())))
        }
        return router
    }

    private let settled = Mutex(false)

    /// The Hummingbird application with the pool and the session sweeper as
    /// services, so they start and stop with the server (SIGTERM, SIGINT).
    public func application(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some ApplicationProtocol {
        // Each event loop commits the audit records of one turn together
        // (the application and the upstream pool run on these loops).
        let store = self.store
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            loop.execute { store.batchRecords(schedule: { loop.execute($0) }) }
        }
        return Application(
            router: router(),
            server: .portal(FastLane(endpoint: endpoint)),
            configuration: .init(address: .hostname(config.listen.host, port: config.listen.port), serverName: Self.serverName),
            services: [PoolService(app: self), SessionSweeper(registry: registry, idle: .seconds(config.limits.sessionIdleSeconds)),
                       StreamCloser(registry: registry)],
            onServerRunning: onServerRunning,
            logger: logger
        )
    }

    struct PoolService: Service {
        let app: PortalApplication
        func run() async throws {
            await cancelWhenGracefulShutdown {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await app.pool.run() }
                    group.addTask {
                        await app.pool.waitUntilSettled()
                        app.settled.withLock { $0 = true }
                        let status = app.pool.all.map { "\($0.id)=\($0.ready ? "ready" : "unavailable")" }.joined(separator: " ")
                        app.logger.info("mcp-portal ready", metadata: ["servers": "\(status)"])
                    }
                }
            }
            for entry in app.registry.removeAll() {
                entry.edge.closeStreams()
                await entry.portal.close()
            }
            // Everything is answered: what the journal holds goes into SQLite.
            app.store.close()
        }
    }

    /// When shutdown starts, streams end (as the route's SSE responses do),
    /// so open connections can drain; plain calls in flight finish.
    struct StreamCloser: Service {
        let registry: SessionRegistry
        func run() async throws {
            try? await gracefulShutdown()
            for entry in registry.all { entry.edge.closeStreamingStreams() }
        }
    }

    struct SessionSweeper: Service {
        let registry: SessionRegistry
        let idle: Duration
        func run() async throws {
            try? await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(15))
                    for entry in registry.all {
                        entry.edge.keepAlive()
                        // A client listening on its stream is not idle.
                        if entry.edge.isListening { _ = registry.touch(entry.edge.id) }
                    }
                    for entry in registry.expire(idle: idle) {
                        entry.edge.closeStreams()
                        await entry.portal.close()
                    }
                }
            }
        }
    }
}
