import DemoServers
import Foundation
import Logging
import MCPWire
import PortalCore
import Storage
import Synchronization
import Testing
@testable import Gateway

/// Collects what the portal sends to a client outside responses.
final class RecordingOutbound: SessionOutbound {
    let messages = Mutex<[JSONRPCMessage]>([])
    let (stream, continuation) = AsyncStream<JSONRPCMessage>.makeStream()
    func send(_ message: JSONRPCMessage, relatedTo requestID: JSON?) async {
        messages.withLock { $0.append(message) }
        continuation.yield(message)
    }
}

struct FailingAudit: AuditStore {
    struct Down: Error {}
    func record(_ event: AuditEvent) async throws { throw Down() }
    func query(_ query: AuditQuery) async throws -> [StoredAuditEvent] { [] }
}

/// A portal over in-process servers, with its pool running for the test's duration.
struct Harness {
    let gateway: Gateway
    let store: SQLiteStore
    let folder: String
    /// The sessions a test opened: closed when it ends (each holds a pool listener).
    let opened = OpenedSessions()

    final class OpenedSessions: Sendable {
        let sessions = Mutex<[PortalSession]>([])
        func closeAll() async {
            for session in sessions.withLock({ list in defer { list = [] }; return list }) { await session.close() }
        }
    }

    static func with<T>(
        servers: [String: ToolServer], portal: PortalDefinition, newTools: PortalConfig.Pinning.NewToolRule = .allow,
        folder: String? = nil, audit: (any AuditStore)? = nil, timeout: Double = 30,
        _ body: (Harness) async throws -> T
    ) async throws -> T {
        let folder = folder ?? NSTemporaryDirectory() + "portal-test-\(UUID().uuidString)"
        let store = try SQLiteStore(folder: folder, writer: .journal)
        defer { store.close() }
        var config = PortalConfig()
        config.limits.callTimeoutSeconds = timeout
        config.servers = servers.keys.sorted().map { ServerConfig(id: $0, transport: .builtin(name: $0)) }
        config.portals = [portal]
        let logger = Logger(label: "test")
        let pinner = ToolPinner(store: store, audit: store, newTools: newTools)
        let pool = UpstreamPool(config: config, builtins: servers, pinner: pinner, logger: logger)
        let gateway = try Gateway(config: config, pool: pool, audit: audit ?? store, logger: logger)
        let running = Task { await pool.run() }
        defer { running.cancel() }
        await pool.waitUntilSettled()
        let harness = Harness(gateway: gateway, store: store, folder: folder)
        do {
            let result = try await body(harness)
            await harness.opened.closeAll()
            // Closed sessions stop listening to the pool: nothing leaks from a test.
            #expect(pool.listenerCount == 0)
            return result
        } catch {
            await harness.opened.closeAll()
            throw error
        }
    }

    /// A session of the portal, closed when the test ends.
    func openSession(sessionID: String = UUID().uuidString, outbound: RecordingOutbound = RecordingOutbound()) -> PortalSession {
        let session = gateway.openSession(portal: gateway.config.portals[0], principal: .anonymous, sessionID: sessionID, outbound: outbound)
        opened.sessions.withLock { $0.append(session) }
        return session
    }

    func session(_ outbound: RecordingOutbound = RecordingOutbound()) async -> PortalSession {
        let session = openSession(outbound: outbound)
        let reply = await session.handle(.request(id: 0, method: "initialize", params: [
            "protocolVersion": "2025-11-25", "capabilities": [:], "clientInfo": ["name": "t", "version": "1"],
        ]))
        #expect(reply?.result?["protocolVersion"] == "2025-11-25")
        return session
    }
}

func toolNames(_ session: PortalSession) async -> [String] {
    let reply = await session.handle(.request(id: 1, method: "tools/list"))
    return reply?.result?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
}

func call(_ session: PortalSession, _ name: String, _ arguments: JSON = [:]) async -> JSONRPCMessage? {
    await session.handle(.request(id: 2, method: "tools/call", params: ["name": .string(name), "arguments": arguments]))
}

func server(_ name: String, description: String = "echo", readOnly: Bool = true, handler: (@Sendable (JSONObject) async throws -> JSON)? = nil) -> ToolServer {
    ToolServer(name: name, instructions: "", tools: [
        .init(name: "echo", description: description, properties: ["text": ["type": "string"]], readOnly: readOnly,
              handler: handler ?? { args in ["echo": args["text"] ?? .null] }),
        .init(name: "write", description: "changes things", properties: [:], readOnly: false) { _ in ["ok": true] },
    ])
}

@Suite("Gateway")
struct GatewayTests {
    @Test func aggregatesNamesAndRoutes() async throws {
        try await Harness.with(servers: ["alpha": server("alpha"), "beta": server("beta")],
                               portal: PortalDefinition(id: "p", servers: ["alpha", "beta"])) { h in
            let session = await h.session()
            let names = await toolNames(session)
            #expect(names == ["portal_list_servers", "portal_toggle_servers", "alpha_echo", "beta_echo"])
            let reply = await call(session, "beta_echo", ["text": "hi"])
            #expect(reply?.result?["structuredContent"]?["echo"] == "hi")
            #expect(reply?.id == 2)
        }
    }

    @Test func writesAreDeniedByDefaultAndHiddenToolsAreUnknown() async throws {
        var portal = PortalDefinition(id: "p", servers: ["alpha"])
        try await Harness.with(servers: ["alpha": server("alpha")], portal: portal) { h in
            let session = await h.session()
            #expect(await !toolNames(session).contains("alpha_write"))
            let reply = await call(session, "alpha_write")
            #expect(reply?.error?["code"] == .int(-32602))
            #expect(reply?.error?["message"] == "Unknown tool: alpha_write")
        }
        portal.tools = ["alpha_write": .init(allowWrite: true), "alpha_echo": .init(alias: "say")]
        try await Harness.with(servers: ["alpha": server("alpha")], portal: portal) { h in
            let session = await h.session()
            #expect(await toolNames(session).suffix(2) == ["say", "alpha_write"])
            #expect(await call(session, "alpha_write")?.result?["structuredContent"]?["ok"] == true)
            #expect(await call(session, "alpha_echo")?.error != nil)
        }
    }

    @Test func toggleServersPerSession() async throws {
        try await Harness.with(servers: ["alpha": server("alpha"), "beta": server("beta")],
                               portal: PortalDefinition(id: "p", servers: ["alpha", "beta"])) { h in
            let outbound = RecordingOutbound()
            let session = await h.session(outbound)
            let other = await h.session()
            let reply = await call(session, "portal_toggle_servers", ["disable": ["beta"]])
            #expect(reply?.result?["structuredContent"]?["enabled"] == ["alpha"])
            #expect(outbound.messages.withLock { $0.map(\.method) } == ["notifications/tools/list_changed"])
            #expect(await !toolNames(session).contains("beta_echo"))
            #expect(await call(session, "beta_echo")?.error?["code"] == .int(-32602))
            #expect(await toolNames(other).contains("beta_echo"))
            let bad = await call(session, "portal_toggle_servers", ["enable": ["ghost"]])
            #expect(bad?.result?["isError"] == true)
            let list = await call(session, "portal_list_servers")
            let servers = list?.result?["structuredContent"]?["servers"]?.arrayValue ?? []
            #expect(servers.map { $0["enabled"] } == [true, false])
            #expect(servers.map { $0["status"] } == ["ready", "ready"])
        }
    }

    @Test func auditIsWrittenBeforeTheResponse() async throws {
        try await Harness.with(servers: ["alpha": server("alpha")], portal: PortalDefinition(id: "p", servers: ["alpha"])) { h in
            let session = await h.session()
            _ = await call(session, "alpha_echo", ["text": "secret-value"])
            var query = AuditQuery()
            query.kind = .call
            let rows = try await h.store.query(query)
            #expect(rows.count == 1)
            let event = try #require(rows.first?.event)
            #expect(event.server == "alpha" && event.tool == "echo" && event.outcome == .ok)
            #expect(event.argumentBytes == #"{"text":"secret-value"}"#.utf8.count)
            #expect(event.argumentHash?.count == 64)
        }
    }

    @Test func failsClosedWhenAuditCannotBeWritten() async throws {
        try await Harness.with(servers: ["alpha": server("alpha")], portal: PortalDefinition(id: "p", servers: ["alpha"]), audit: FailingAudit()) { h in
            let session = h.openSession(sessionID: "s")
            let reply = await session.handle(.request(id: 0, method: "initialize", params: ["protocolVersion": "2025-11-25"]))
            #expect(reply?.error?["code"] == .int(-32603))
            let call = await call(session, "alpha_echo")
            #expect(call?.error != nil && call?.result == nil)
        }
    }

    @Test func slowServerTimesOutOthersKeepWorking() async throws {
        let hanging = server("slow") { _ in
            // A server that never answers: a stream that never yields nor ends.
            let never = AsyncStream<Int>(Int.self) { _ in }
            for await _ in never {}
            return [:]
        }
        try await Harness.with(servers: ["slow": hanging, "fast": server("fast")], portal: PortalDefinition(id: "p", servers: ["slow", "fast"]), timeout: 0.3) { h in
            let session = await h.session()
            async let slow = call(session, "slow_echo")
            let fast = await call(session, "fast_echo", ["text": "ok"])
            #expect(fast?.result?["structuredContent"]?["echo"] == "ok")
            let timedOut = await slow
            #expect(timedOut?.error?["code"] == .int(-32002))
            #expect(timedOut?.error?["message"]?.stringValue?.contains("did not answer") == true)
        }
    }

    @Test func capabilitiesAreMergedFromTheServers() async throws {
        let withResources = ToolServer(name: "docs", instructions: "Docs.", tools: [],
                                       resources: [.init(uri: "docs://a", name: "a", description: "A") { "{}" }])
        for (servers, expectResources) in [(["alpha": server("alpha")], false), (["alpha": server("alpha"), "docs": withResources], true)] {
            try await Harness.with(servers: servers, portal: PortalDefinition(id: "p", servers: servers.keys.sorted())) { h in
                let session = h.openSession(sessionID: "s")
                let reply = await session.handle(.request(id: 0, method: "initialize", params: ["protocolVersion": "2025-06-18", "capabilities": [:]]))
                let capabilities = reply?.result?["capabilities"]
                #expect(reply?.result?["protocolVersion"] == "2025-06-18")
                #expect(capabilities?["tools"] != nil)
                #expect((capabilities?["resources"] != nil) == expectResources)
                #expect(capabilities?["prompts"] == nil)
                if expectResources { #expect(reply?.result?["instructions"]?.stringValue?.contains("[docs] Docs.") == true) }
            }
        }
    }

    @Test func pagingWithOpaqueCursor() throws {
        let items = (0..<2500).map { JSON.int($0) }
        let first = try PortalSession.page(items, key: "tools", cursor: nil)
        #expect(first["tools"]?.arrayValue?.count == 1000)
        let second = try PortalSession.page(items, key: "tools", cursor: first["nextCursor"])
        #expect(second["tools"]?.arrayValue?.first == .int(1000))
        #expect(throws: JSONRPCError.self) { try PortalSession.page(items, key: "tools", cursor: "bogus") }
    }
}

@Suite("Tool pinning")
struct PinningTests {
    @Test func changedDefinitionIsHeldUntilApproved() async throws {
        let folder = NSTemporaryDirectory() + "portal-pin-\(UUID().uuidString)"
        let portal = PortalDefinition(id: "p", servers: ["alpha"])
        try await Harness.with(servers: ["alpha": server("alpha", description: "v1")], portal: portal, folder: folder) { h in
            #expect(await toolNames(await h.session()).contains("alpha_echo"))
        }
        try await Harness.with(servers: ["alpha": server("alpha", description: "v2: now also emails your files")], portal: portal, folder: folder) { h in
            let session = await h.session()
            #expect(await !toolNames(session).contains("alpha_echo"))
            #expect(await call(session, "alpha_echo")?.error?["code"] == .int(-32602))
            let pending = try await h.store.allPins().filter { $0.state == .pending }
            #expect(pending.map(\.tool) == ["echo"])
            var query = AuditQuery()
            query.kind = .pinChanged
            #expect(try await h.store.query(query).count == 1)
            #expect(try await h.store.approve(server: "alpha", tool: "echo"))
            #expect(await toolNames(session).contains("alpha_echo"))
        }
    }

    @Test func newToolsOnAKnownServerFollowTheRule() async throws {
        let folder = NSTemporaryDirectory() + "portal-pin-\(UUID().uuidString)"
        var portal = PortalDefinition(id: "p", servers: ["alpha"])
        portal.allowWrites = true
        let one = ToolServer(name: "alpha", instructions: "", tools: [server("alpha").tools[0]])
        try await Harness.with(servers: ["alpha": one], portal: portal, newTools: .hold, folder: folder) { h in
            #expect(await toolNames(await h.session()).contains("alpha_echo"))
        }
        try await Harness.with(servers: ["alpha": server("alpha")], portal: portal, newTools: .hold, folder: folder) { h in
            let names = await toolNames(await h.session())
            #expect(names.contains("alpha_echo") && !names.contains("alpha_write"))
        }
        try await Harness.with(servers: ["alpha": server("alpha")], portal: portal, newTools: .allow, folder: folder) { h in
            #expect(await toolNames(await h.session()).contains("alpha_echo"))
        }
    }
}

@Suite("Audit store") struct AuditStoreTests {
    /// Rows keep every field as recorded: text, empty text, NULLs, numbers;
    /// records from many callers at once all land (batched or not).
    @Test(arguments: [SQLiteStore.Writer.journal, .direct])
    func rowsKeepEveryField(writer: SQLiteStore.Writer) async throws {
        let store = try SQLiteStore(folder: NSTemporaryDirectory() + "audit-test-\(UUID().uuidString)", writer: writer)
        defer { store.close() }
        var event = AuditEvent(time: Date(timeIntervalSince1970: 1_700_000_000.25), kind: .call, portal: "p", sessionID: "s-1",
                               principal: "ada", server: "wiki", tool: "search", method: "tools/call", outcome: .error, error: "")
        event.durationMicros = 1234
        event.argumentBytes = 56
        event.argumentHash = "ab" + String(repeating: "0", count: 62)
        event.resultBytes = 789
        event.detail = #"{"rule":"r1","ünïcode":"✓"}"#
        event.executionID = "x-1"
        try await store.record(event)
        let bare = AuditEvent(kind: .list, portal: "p", principal: "anonymous", outcome: .ok)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<200 { group.addTask { try await store.record(bare) } }
            try await group.waitForAll()
        }
        var query = AuditQuery()
        query.limit = 1000
        let rows = try await store.query(query)
        #expect(rows.count == 201)
        let stored = try #require(rows.first { $0.event.kind == .call }).event
        #expect(stored == event)
        let plain = try #require(rows.first { $0.event.kind == .list }).event
        #expect(plain.sessionID == nil && plain.error == nil && plain.detail == nil && plain.executionID == nil && plain.argumentHash == nil)
        query.executionID = "x-1"
        #expect(try await store.query(query).map(\.event.tool) == ["search"])
    }
}
