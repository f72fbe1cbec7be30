import Testing
@testable import MCPWire

@Suite("Lossless JSON")
struct JSONTests {
    @Test("numbers keep their text and keys their order", arguments: [
        #"{"b":1.0,"a":12345678901234567890123,"c":-0.5e-10,"d":[1E+2,0,-0]}"#,
        #"{"z":null,"y":true,"x":false,"w":"data:text/plain;base64,AAAA"}"#,
        #"[]"#, #"{}"#, #""\u00e9\ud83d\ude00""#,
    ])
    func roundTrip(_ text: String) throws {
        let value = try JSON.parse(text)
        let again = try JSON.parse(value.text)
        #expect(again == value)
        #expect(value.serializedCount == value.serialized().count)
        if !text.contains("\\u") { #expect(value.text == text) }
    }

    @Test func escapes() throws {
        let value = try JSON.parse(#""line\nbreak \"quoted\" \\ tab\t \u0001 \/""#)
        #expect(value == .string("line\nbreak \"quoted\" \\ tab\t \u{01} /"))
        #expect(value.text == #""line\nbreak \"quoted\" \\ tab\t \u0001 /""#)
        let nested: JSON = ["k\"ey": value, "list": [.null, .bool(true), .bool(false), .number("-1.5e3"), [:], []]]
        #expect(nested.serializedCount == nested.serialized().count)
        #expect(value.serializedCount == value.serialized().count)
        let controls = JSON.string("a\rb\u{1F}\u{7F}é")
        #expect(controls.text == "\"a\\rb\\u001f\u{7F}é\"")
        #expect(controls.serializedCount == controls.serialized().count)
    }

    @Test("bad JSON is an error with an offset", arguments: [
        "", "{", #"{"a":}"#, "[1,]", "01", "1.", "-", #""abc"#, "tru", #"{"a" 1}"#, "[1] x", "\"\u{01}\"",
    ])
    func rejects(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test func loneSurrogatesBecomeReplacementCharacters() throws {
        #expect(try JSON.parse(#""\ud83d\ud83d\ude00""#) == .string("\u{FFFD}\u{1F600}"))
        #expect(try JSON.parse(#""\ude00x""#) == .string("\u{FFFD}x"))
        #expect(try JSON.parse(#""\ud83dx""#) == .string("\u{FFFD}x"))
    }

    @Test func duplicateKeysAreRefused() {
        #expect(throws: JSONParseError.self) { try JSON.parse(#"{"name":"a","arguments":{},"name":"b"}"#) }
        let many = "{" + (0..<20).map { "\"k\($0)\":1" }.joined(separator: ",") + ",\"k3\":2}"
        #expect(throws: JSONParseError.self) { try JSON.parse(many) }
        #expect((try? JSON.parse(#"{"a":{"x":1},"b":{"x":1}}"#)) != nil)
        // A key of an inner object is not a key of the outer one, before or
        // after it, however many keys there are.
        let wide = "{" + (0..<20).map { "\"k\($0)\":{\"k\($0 + 1)\":[{\"k\($0)\":1}]}" }.joined(separator: ",") + "}"
        #expect((try? JSON.parse(wide)) != nil)
        #expect(throws: JSONParseError.self) { try JSON.parse(#"{"a":{"b":1},"c":[{"a":2}],"a":3}"#) }
    }

    /// Containers inside containers come back whole and in order: each is
    /// made from its own members when it closes.
    @Test func nestedContainersKeepTheirOwnMembers() throws {
        let text = #"{"a":[1,{"b":[2,3],"c":{}},[],[4,[5]]],"d":{"e":{"f":[6]},"g":7},"h":[{"i":8},{"j":9}]}"#
        let value = try JSON.parse(text)
        #expect(value.text == text)
        #expect(value["a"]?.arrayValue?.count == 4)
        #expect(value["d"]?.objectValue?.keys == ["e", "g"])
        #expect(value["h"]?.arrayValue?.last?["j"] == .number("9"))
    }

    @Test func invalidUTF8IsAnErrorNotACrash() {
        #expect(throws: JSONParseError.self) { try JSON.parse([0x22, 0xFF, 0xFE, 0x22]) }
        // After eight ASCII bytes (the word-at-a-time check), and in a key.
        #expect(throws: JSONParseError.self) { try JSON.parse(Array(#""abcdefghij"#.utf8) + [0xC3, 0x28, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSON.parse(Array(#"{"abcdefgh"#.utf8) + [0xE2, 0x82, 0x22, 0x3A, 0x31, 0x7D]) }
    }

    /// ASCII text and text with multi-byte characters at every position
    /// around the eight-byte words read back as written.
    @Test func stringsReadBackAsWritten() throws {
        for text in ["", "a", "abcdefgh", "abcdefghi", "ünïcode ✓ 🎉", "abcdefg✓", "✓abcdefghijklmno", String(repeating: "x", count: 100) + "é"] {
            let parsed = try JSON.parse(Array(("{\"\(text)\":\"\(text)\"}").utf8))
            #expect(parsed[text]?.stringValue == text)
        }
    }

    @Test func depthIsBounded() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep, maxDepth: 64) }
        let fine = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect((try? JSON.parse(fine, maxDepth: 64)) != nil)
    }

    @Test func objectEditsKeepPositions() throws {
        var value = try JSON.parse(#"{"a":1,"b":2,"c":3}"#)
        value["b"] = "x"
        value["d"] = 4
        value["a"] = nil
        #expect(value.text == #"{"b":"x","c":3,"d":4}"#)
    }
}

@Suite("JSON-RPC envelope")
struct JSONRPCTests {
    func code(_ text: String) -> Int? {
        do {
            _ = try JSONRPCMessage.parse(Array(text.utf8))
            return nil
        } catch {
            return error.code
        }
    }

    @Test func classifies() throws {
        guard case .single(let request) = try JSONRPCMessage.parse(Array(#"{"jsonrpc":"2.0","id":"x","method":"tools/list","extra":{"keep":1}}"#.utf8)) else {
            Issue.record("expected a single message"); return
        }
        #expect(request.kind == .request)
        #expect(request.object["extra"]?["keep"] == .number("1"))
        guard case .single(let note) = try JSONRPCMessage.parse(Array(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.utf8)) else { return }
        #expect(note.kind == .notification)
        guard case .batch(let batch) = try JSONRPCMessage.parse(Array(#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"m"}}]"#.utf8)) else { return }
        #expect(batch.map(\.kind) == [.response, .errorResponse])
    }

    @Test func errorCodes() {
        #expect(code("{nope") == -32700)
        #expect(code(#"{"jsonrpc":"2.0"}"#) == -32600)
        #expect(code(#"{"jsonrpc":"1.0","id":1,"method":"x"}"#) == -32600)
        #expect(code(#"{"jsonrpc":"2.0","id":{},"method":"x"}"#) == -32600)
        #expect(code(#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#) == -32600)
        #expect(code("[]") == -32600)
        #expect(code("42") == -32600)
        #expect(code(#"{"jsonrpc":"2.0","id":1,"method":"x"}"#) == nil)
    }
}

@Suite("SSE codec")
struct SSETests {
    @Test func parsesAcrossChunksAndLineEndings() throws {
        var parser = SSEParser()
        let wire = "event: endpoint\r\ndata: /messages?x=1\r\n\r\n: comment\nid: 7\ndata: {\"a\":\ndata: 1}\n\nda"
        var events: [SSEEvent] = []
        for byte in Array(wire.utf8) { events += try parser.feed([byte]) }
        events += try parser.feed(Array("ta: tail\n\n".utf8))
        #expect(events == [
            SSEEvent(event: "endpoint", data: "/messages?x=1"),
            SSEEvent(id: "7", data: "{\"a\":\n1}"),
            SSEEvent(id: "7", data: "tail"),
        ])
        #expect(parser.lastEventID == "7")
    }

    @Test func encodeThenParse() throws {
        let event = SSEEvent(id: "42", event: "message", data: "one\ntwo")
        var parser = SSEParser()
        #expect(try parser.feed(event.encoded()) == [event])
    }
}
