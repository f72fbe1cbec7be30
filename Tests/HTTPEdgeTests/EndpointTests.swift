import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MCPWire
import NIOCore
import PortalCore
import Testing
@testable import Gateway
@testable import HTTPEdge

let mcpSession = HTTPField.Name("Mcp-Session-Id")!
let mcpVersion = HTTPField.Name("MCP-Protocol-Version")!

func testConfig() -> PortalConfig {
    var config = PortalConfig.embeddedDefaults
    config.listen.port = 0
    config.storage.path = NSTemporaryDirectory() + "edge-test-\(UUID().uuidString)"
    config.limits.maxBodyBytes = 4096
    return config
}

func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

func parse(_ response: TestResponse) throws -> JSON { try JSON.parse(String(buffer: response.body)) }

let initialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"VERSION","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#

/// Runs the real application on a free port with a test client.
func withPortal(_ test: @escaping @Sendable (PortalApplication, any TestClientProtocol) async throws -> Void) async throws {
    let portal = try PortalApplication(config: testConfig(), logger: Logger(label: "edge-test"))
    try await portal.application().test(.live) { client in
        await portal.pool.waitUntilSettled()
        try await test(portal, client)
    }
}

func open(_ client: any TestClientProtocol, version: String = "2025-11-25", path: String = "/mcp") async throws -> String {
    try await client.execute(uri: path, method: .post, headers: [.contentType: "application/json", .accept: "application/json, text/event-stream"],
                             body: body(initialize.replacingOccurrences(of: "VERSION", with: version))) { response in
        #expect(response.status == .ok)
        return try #require(response.headers[mcpSession])
    }
}

func post(_ client: any TestClientProtocol, _ text: String, session: String?, version: String? = "2025-11-25",
          extra: HTTPFields = [:], path: String = "/mcp") async throws -> TestResponse {
    var headers: HTTPFields = [.contentType: "application/json", .accept: "application/json, text/event-stream"]
    if let session { headers[mcpSession] = session }
    if let version { headers[mcpVersion] = version }
    headers.append(contentsOf: extra)
    return try await client.execute(uri: path, method: .post, headers: headers, body: body(text)) { $0 }
}

@Suite("Streamable HTTP endpoint")
struct EndpointTests {
    @Test func sessionLifecycle() async throws {
        try await withPortal { _, client in
            let session = try await open(client)
            #expect(session.count == 64 && session.allSatisfy(\.isHexDigit))
            let note = try await post(client, #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, session: session)
            #expect(note.status == .accepted)
            let list = try await post(client, #"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#, session: session)
            #expect(list.status == .ok)
            #expect(list.headers[.contentType] == "application/json")
            let names = try parse(list)["result"]?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            #expect(names.contains("directory_get_person"))
            #expect(names.contains("notes_create_note"))
            #expect(!names.contains("notes_delete_note"), "writes are denied unless granted")
            let call = try await post(client, #"{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"directory_get_person","arguments":{"id":"u1002"}}}"#, session: session)
            #expect(try parse(call)["result"]?["structuredContent"]?["name"] == "Bruno Okafor")
            #expect(try parse(call)["id"] == "c")
            let deleted = try await client.execute(uri: "/mcp", method: .delete, headers: [mcpSession: session, mcpVersion: "2025-11-25"]) { $0.status }
            #expect(deleted == .noContent)
            let after = try await post(client, #"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#, session: session)
            #expect(after.status == .notFound)
        }
    }

    @Test func badInputGetsPreciseErrorsAndServingGoesOn() async throws {
        try await withPortal { _, client in
            let session = try await open(client)
            func check(_ text: String, session: String?, version: String? = "2025-11-25", extra: HTTPFields = [:],
                       status: HTTPResponse.Status, code: Int?) async throws {
                let response = try await post(client, text, session: session, version: version, extra: extra)
                #expect(response.status == status, "\(text)")
                if let code { #expect(try parse(response)["error"]?["code"] == .int(code), "\(text)") }
            }
            try await check("{not json", session: session, status: .badRequest, code: -32700)
            try await check(#"{"jsonrpc":"2.0"}"#, session: session, status: .badRequest, code: -32600)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"no/such"}"#, session: session, status: .ok, code: -32601)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#, session: session, status: .ok, code: -32602)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}}"#, session: session, status: .ok, code: -32602)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, session: nil, status: .badRequest, code: -32600)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, session: String(repeating: "0", count: 64), status: .notFound, code: -32001)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":""# + String(repeating: "x", count: 5000) + #""}}"#,
                            session: session, status: .contentTooLarge, code: -32600)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, session: session, version: "1999-01-01", status: .badRequest, code: -32600)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, session: session, version: nil, status: .badRequest, code: -32600)
            try await check(#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, session: session, status: .badRequest, code: -32600)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, session: session, extra: [.origin: "http://evil.example"], status: .forbidden, code: nil)
            try await check(#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, session: session, extra: [.origin: "http://localhost:3000"], status: .ok, code: nil)
            let ok = try await post(client, #"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"directory_list_departments"}}"#, session: session)
            #expect(try parse(ok)["result"]?["structuredContent"]?["departments"]?.arrayValue?.isEmpty == false)
        }
    }

    @Test func batchesOnlyWhereTheVersionAllowsThem() async throws {
        try await withPortal { _, client in
            let session = try await open(client, version: "2025-03-26")
            let batch = try await post(client, #"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#,
                                       session: session, version: "2025-03-26")
            #expect(batch.status == .ok)
            let ids = try parse(batch).arrayValue?.compactMap { $0["id"]?.intValue }.sorted()
            #expect(ids == [1, 2])
            // 2025-03-26 clients may omit the version header.
            let bare = try await post(client, #"{"jsonrpc":"2.0","id":3,"method":"ping"}"#, session: session, version: nil)
            #expect(bare.status == .ok)
        }
    }

    @Test func healthReadinessAndMetrics() async throws {
        try await withPortal { _, client in
            let session = try await open(client)
            _ = try await post(client, #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"directory_list_departments"}}"#, session: session)
            #expect(try await client.execute(uri: "/healthz", method: .get) { $0.status } == .ok)
            let ready = try await client.execute(uri: "/readyz", method: .get) { try parse($0) }
            #expect(ready["servers"]?["notes"] == "ready")
            let metrics = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(metrics.contains(#"mcp_portal_tool_calls_total{server="directory",tool="list_departments"}"#))
        }
    }

    /// A session idle past the limit is swept: its next request is a 404
    /// (-32001), while a session used within the limit stays.
    @Test func anExpiredSessionIs404() async throws {
        try await withPortal { portal, client in
            let session = try await open(client)
            #expect(portal.registry.expire(idle: .seconds(3600)).isEmpty)
            #expect(try await post(client, #"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#, session: session).status == .ok)
            #expect(portal.registry.expire(idle: .zero).map(\.edge.id) == [session])
            let after = try await post(client, #"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#, session: session)
            #expect(after.status == .notFound)
            #expect(try parse(after)["error"]?["code"] == .int(-32001))
        }
    }

    /// A session whose opening cannot be audited is refused and dropped:
    /// it stops listening to the pool (which would otherwise hold it).
    @Test func aSessionWhoseOpeningCannotBeAuditedIsDropped() async throws {
        try await withPortal { portal, client in
            _ = try await open(client)
            #expect(portal.pool.listenerCount == 1)
            portal.store.close()
            let refused = try await post(client, initialize.replacingOccurrences(of: "VERSION", with: "2025-11-25"), session: nil)
            #expect(try parse(refused)["error"]?["code"] == .int(-32603))
            #expect(refused.headers[mcpSession] == nil)
            #expect(portal.pool.listenerCount == 1)
        }
    }

    /// A stream response whose body never runs (the connection failed
    /// before its head was written) still ends its stream: the session is
    /// no longer listening, so it can expire.
    @Test(.timeLimit(.minutes(1))) func aStreamWhoseBodyNeverRunsStillEnds() async throws {
        let edge = EdgeSession(id: "s", legacy: false, bufferLimit: 16)
        let (ended, signal) = AsyncStream<Void>.makeStream()
        do {
            let (token, events) = edge.openStandalone()
            #expect(edge.isListening)
            let response = MCPEndpoint.sse(events, of: edge, onEnd: {
                edge.detach(EdgeSession.standalone, token: token)
                signal.yield()
            })
            #expect(response.status == .ok)
        }
        // Waits for the ending itself (the time limit turns a hang into a failure).
        var waiting = ended.makeAsyncIterator()
        #expect(await waiting.next() != nil, "the stream's ending never ran")
        #expect(!edge.isListening)
    }

    @Test func unknownPortalIs404() async throws {
        try await withPortal { _, client in
            let response = try await post(client, initialize.replacingOccurrences(of: "VERSION", with: "2025-11-25"), session: nil, path: "/nope/mcp")
            #expect(response.status == .notFound)
        }
    }
}

@Suite("Stream resumption")
struct ResumptionTests {
    @Test func replaysWhatAStreamMissed() async throws {
        let edge = EdgeSession(id: "s", legacy: false, bufferLimit: 16)
        let (stream, token, events) = edge.openRequestStream(for: 7)
        var iterator = events.makeAsyncIterator()
        await edge.send(.notification(method: "notifications/progress", params: ["progress": 1]), relatedTo: 7)
        let first = try #require(await iterator.next())
        edge.detach(stream, token: token)
        await edge.send(.notification(method: "notifications/progress", params: ["progress": 2]), relatedTo: 7)
        edge.finish(.response(id: 7, result: ["done": true]), stream: stream)
        let resumed = try edge.resume(after: first.id)
        var replayed: [JSONRPCMessage] = []
        for await event in resumed.events { replayed.append(event.message) }
        #expect(replayed.map { $0.params?["progress"] ?? $0.result?["done"] } == [2, true])
        #expect(throws: EdgeSession.ResumeError.self) { try edge.resume(after: 999) }
    }

    @Test func standaloneMessagesWaitForTheStream() async throws {
        let edge = EdgeSession(id: "s", legacy: false, bufferLimit: 16)
        await edge.send(.notification(method: "notifications/tools/list_changed"), relatedTo: nil)
        var iterator = edge.openStandalone().events.makeAsyncIterator()
        #expect(await iterator.next()?.message.method == "notifications/tools/list_changed")
    }

    @Test func aSecondStreamIsNotEndedByTheFirstWritersEnd() async throws {
        let edge = EdgeSession(id: "s", legacy: false, bufferLimit: 16)
        let first = edge.openStandalone()
        let second = edge.openStandalone()
        // The first writer ends (its stream was replaced) and detaches with its own token.
        var firstIterator = first.events.makeAsyncIterator()
        #expect(await firstIterator.next() == nil)
        edge.detach(EdgeSession.standalone, token: first.token)
        await edge.send(.notification(method: "notifications/tools/list_changed"), relatedTo: nil)
        var iterator = second.events.makeAsyncIterator()
        #expect(await iterator.next()?.message.method == "notifications/tools/list_changed")
    }

    @Test func keepAlivesDoNotTurnAPlainAnswerIntoAStream() async throws {
        let edge = EdgeSession(id: "s", legacy: false, bufferLimit: 16)
        let (stream, _, events) = edge.openRequestStream(for: 1)
        edge.keepAlive()
        edge.finish(.response(id: 1, result: [:]), stream: stream)
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next()?.final == true)
    }
}

@Suite("Origin policy")
struct OriginTests {
    @Test func wildcardPorts() {
        let policy = OriginPolicy(allowed: ["http://localhost:*", "https://app.example.com"])
        #expect(policy.allows("http://localhost:6274"))
        #expect(policy.allows("http://localhost"))
        #expect(policy.allows("https://app.example.com"))
        #expect(!policy.allows("http://localhost.evil.com"))
        #expect(!policy.allows("http://localhost:80x"))
        #expect(!policy.allows("https://evil.example"))
    }
}

@Suite struct HTTPDates {
    @Test(arguments: [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"), // RFC 9110's example
        (1_796_304_724, "Thu, 03 Dec 2026 13:32:04 GMT"),
    ])
    func imfFixdate(_ seconds: Int, _ text: String) {
        #expect(HTTPDate.format(seconds) == text)
    }
}
