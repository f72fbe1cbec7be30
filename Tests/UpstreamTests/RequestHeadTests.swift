import Logging
import NIOCore
import Testing
@testable import Upstream

@Suite struct RequestHeadTests {
    @Test func aRequestIsTheFixedHeadThenItsOwnFieldsThenTheBody() throws {
        let head = try #require(HTTP1Pool.RequestHead(method: .POST, uri: "/mcp?team=a", fields: [("Host", "127.0.0.1:9000"), ("X-Api-Key", "k1")]))
        let request = try #require(head.request(adding: [("Mcp-Session-Id", "s-1"), ("MCP-Protocol-Version", nil)], body: Array("{}".utf8)))
        #expect(request.method == .POST)
        #expect(String(buffer: request.bytes) == "POST /mcp?team=a HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nX-Api-Key: k1\r\nMcp-Session-Id: s-1\r\nContent-Length: 2\r\n\r\n{}")
        // The fixed part is reused: a second request does not repeat the first's fields.
        let second = try #require(head.request(adding: [], body: []))
        #expect(String(buffer: second.bytes) == "POST /mcp?team=a HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nX-Api-Key: k1\r\nContent-Length: 0\r\n\r\n")
    }

    @Test(arguments: ["a\r\nX-Injected: 1", "a\nb", "a\0b", "a\u{7F}"])
    func aValueThatCouldBreakTheFramingIsRefused(_ value: String) throws {
        #expect(HTTP1Pool.RequestHead(method: .POST, uri: "/", fields: [("X-Key", value)]) == nil)
        let head = try #require(HTTP1Pool.RequestHead(method: .POST, uri: "/", fields: []))
        #expect(head.request(adding: [("Mcp-Session-Id", value)], body: []) == nil)
    }

    @Test(arguments: ["", "X Key", "X:Key", "Ключ"])
    func aNameThatIsNotATokenIsRefused(_ name: String) {
        #expect(HTTP1Pool.RequestHead(method: .POST, uri: "/", fields: [(name, "v")]) == nil)
    }

    /// Their answers are framed otherwise than the pool's parser frames them.
    @Test func headAndConnectAreRefused() {
        #expect(HTTP1Pool.RequestHead(method: .HEAD, uri: "/", fields: []) == nil)
        #expect(HTTP1Pool.RequestHead(method: .CONNECT, uri: "/", fields: []) == nil)
    }

    @Test func aURIWithSpacesOrControlsIsRefused() {
        #expect(HTTP1Pool.RequestHead(method: .POST, uri: "/a b", fields: []) == nil)
        #expect(HTTP1Pool.RequestHead(method: .POST, uri: "/a\r\n", fields: []) == nil)
    }

    @Test func aTabInAValueIsAllowed() {
        #expect(HTTP1Pool.RequestHead(method: .POST, uri: "/", fields: [("X-Key", "a\tb")]) != nil)
    }

    @Test func theTransportSetsItsOwnFieldsAndKeepsAConfiguredHost() throws {
        let head = try #require(HTTPTransport.poolHead(host: "10.0.0.1", port: 80, path: "", query: nil,
                                                      headers: ["accept": "text/plain", "Authorization": "Bearer t"]))
        let text = String(buffer: try #require(head.request(adding: [], body: [])).bytes)
        #expect(text == "POST / HTTP/1.1\r\nHost: 10.0.0.1\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 0\r\n\r\n")
        let hosted = try #require(HTTPTransport.poolHead(host: "10.0.0.1", port: 8080, path: "/mcp", query: nil, headers: ["Host": "tools.example"]))
        #expect(String(buffer: try #require(hosted.request(adding: [], body: [])).bytes).hasPrefix("POST /mcp HTTP/1.1\r\nHost: tools.example\r\nContent-Type"))
    }

    @Test func theURLIsSentAsWrittenAndAnIPv6HostKeepsItsBrackets() throws {
        let logger = Logger(label: "test")
        let encoded = HTTPTransport(url: "http://127.0.0.1:9000/a%20b/mcp/?x=%2F&y=1", mode: "streamable-http", headers: [:], logger: logger)
        let request = try #require(encoded.poolRequest([], session: nil, version: nil))
        #expect(String(buffer: request.bytes).hasPrefix("POST /a%20b/mcp/?x=%2F&y=1 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"))
        #expect(encoded.pool?.host == "127.0.0.1" && encoded.pool?.port == 9000)

        let v6 = HTTPTransport(url: "http://[::1]:8080/mcp", mode: "auto", headers: [:], logger: logger)
        #expect(String(buffer: try #require(v6.poolRequest([], session: nil, version: nil)).bytes).hasPrefix("POST /mcp HTTP/1.1\r\nHost: [::1]:8080\r\n"))
        #expect(v6.pool?.host == "::1")

        // A header that cannot be written safely: no fast path (the general client refuses it itself).
        let unsafe = HTTPTransport(url: "http://127.0.0.1:9000/mcp", mode: "auto", headers: ["X-Key": "a\r\nb"], logger: logger)
        #expect(unsafe.pool == nil && unsafe.poolRequest([], session: nil, version: nil) == nil)
        // https never takes it.
        #expect(HTTPTransport(url: "https://example.com/mcp", mode: "auto", headers: [:], logger: logger).pool == nil)
    }
}
