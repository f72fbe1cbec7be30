import HTTPTypes
import NIOHTTP1
import Testing
@testable import HTTPEdge

@Suite struct HeaderTests {
    @Test func nioHeadersAreReadLikeHTTPFields() {
        let nio: HTTPHeaders = ["accept": "application/json", "X-Other": "1", "ACCEPT": "text/event-stream"]
        var fields = HTTPFields()
        fields.append(HTTPField(name: .accept, value: "application/json"))
        fields.append(HTTPField(name: HTTPField.Name("X-Other")!, value: "1"))
        fields.append(HTTPField(name: .accept, value: "text/event-stream"))
        // Every value of a field, in order, joined with ", ", whatever the case of its name.
        #expect(nio[field: .accept] == "application/json, text/event-stream")
        #expect(nio[field: .accept] == fields[field: .accept])
        #expect(nio[field: .contentType] == nil)
        #expect(nio[field: HTTPField.Name("x-other")!] == "1")
        #expect(nio[field: HTTPField.Name("x-othe")!] == nil)
        #expect(nio[field: HTTPField.Name("x-others")!] == nil)
    }

    @Test func asciiChecksIgnoreCaseOnlyForLetters() {
        #expect("Application/JSON; charset=utf-8".hasPrefixIgnoringASCIICase("application/json"))
        #expect(!"application/jso".hasPrefixIgnoringASCIICase("application/json"))
        #expect(!"text/plain".hasPrefixIgnoringASCIICase("application/json"))
        #expect("text/html, Text/Event-Stream;q=0.9".containsIgnoringASCIICase("text/event-stream"))
        #expect("*/*".containsIgnoringASCIICase("*/*"))
        #expect(!"text/event-strea".containsIgnoringASCIICase("text/event-stream"))
        #expect(!"".containsIgnoringASCIICase("a"))
        // Not a letter: '@' (0x40) is not '`' (0x60) in another case.
        #expect(!"@".hasPrefixIgnoringASCIICase("`"))
    }

    @Test(arguments: [
        ("close", true), ("Close", true), ("keep-alive, close", true), (" CLOSE ,x", true), ("\tclose\t", true),
        ("keep-alive", false), ("closed", false), ("enclose", false), ("clo se", false), ("", false),
    ])
    func aCloseTokenInConnectionIsFound(_ value: String, _ closes: Bool) {
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/mcp", headers: ["Connection": value])
        #expect(FastLane.closes(head) == closes)
    }

    @Test func noConnectionHeaderKeepsTheConnectionOnlyInHTTP11() {
        #expect(!FastLane.closes(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/mcp")))
        #expect(FastLane.closes(HTTPRequestHead(version: .http1_0, method: .POST, uri: "/mcp")))
        #expect(!FastLane.closes(HTTPRequestHead(version: .http1_0, method: .POST, uri: "/mcp", headers: ["Connection": "keep-alive"])))
    }
}
