import NIOCore
import Testing
@testable import Upstream

/// The pool's response parser (RFC 9112 framing), fed whole and in every
/// split a connection could deliver.
@Suite struct ResponseParserTests {
    /// What a parser made of some reads: one line per response (its head,
    /// then its whole body), and the error it stopped at, if any.
    struct Outcome: Equatable, CustomStringConvertible {
        var responses: [String] = []
        var error: String?
        var description: String { "\(responses) \(error ?? "")" }
    }

    func parse(_ reads: [String], closeAfter: Bool = false) -> Outcome {
        var parser = ResponseParser()
        var outcome = Outcome()
        var current: String?
        let handle: (ResponseParser.Event) -> Void = { event in
            switch event {
            case .head(let head):
                current = "\(head.status) \(head.contentType) \(head.sessionID ?? "-") \(head.keepAlive ? "keep" : "close") "
            case .body(let bytes):
                current! += String(buffer: bytes)
            case .end:
                outcome.responses.append(current!)
                current = nil
            }
        }
        do {
            for read in reads { try parser.feed(ByteBuffer(string: read), handle) }
            if closeAfter { try parser.finish(handle) }
        } catch {
            outcome.error = "\(error)"
        }
        return outcome
    }

    /// The same bytes give the same responses however they are split into reads.
    func expectSameInEverySplit(_ text: String, closeAfter: Bool = false, _ expected: Outcome) {
        #expect(parse([text], closeAfter: closeAfter) == expected)
        let bytes = Array(text.utf8)
        for cut in 1..<bytes.count {
            let reads = [String(decoding: bytes[..<cut], as: UTF8.self), String(decoding: bytes[cut...], as: UTF8.self)]
            let got = parse(reads, closeAfter: closeAfter)
            #expect(got == expected, "split at \(cut)")
            if got != expected { return }
        }
        // And one byte at a time.
        #expect(parse(bytes.map { String(decoding: [$0], as: UTF8.self) }, closeAfter: closeAfter) == expected)
    }

    @Test func aLengthFramedAnswer() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nmcp-session-id: s-1\r\nContent-Length: 11\r\n\r\n{\"a\":[1,2]}"
        expectSameInEverySplit(text, Outcome(responses: [#"200 application/json s-1 keep {"a":[1,2]}"#]))
    }

    @Test func aChunkedAnswerWithExtensionsAndTrailers() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Type: text/event-stream\r\n\r\n"
            + "5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer-Field: x\r\n\r\n"
        expectSameInEverySplit(text, Outcome(responses: ["200 text/event-stream - keep hello 0123456789"]))
    }

    @Test func answersBackToBackInterimAnswersAndNoBodies() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            + "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
            + "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
            + "HTTP/1.1 304 Not Modified\r\n\r\n"
            + "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"  // bare LFs
        expectSameInEverySplit(text, Outcome(responses: ["202  - keep ", "204  - keep ", "304  - keep ", "200  - keep ok"]))
    }

    @Test func whetherTheConnectionStaysOpen() {
        #expect(parse(["HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n"]).responses == ["200  - close "])
        #expect(parse(["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"]).responses == ["200  - close "])
        #expect(parse(["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"]).responses == ["200  - keep "])
        // HTTP/1.0 with a transfer coding: never reused (RFC 9112 6.1).
        #expect(parse(["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"]).responses
            == ["200  - close ok"])
        // Whitespace before a chunk's extensions is fine.
        #expect(parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 ;x=y\r\nok\r\n0\r\n\r\n"]).responses == ["200  - keep ok"])
        // Both framings: the transfer coding counts, and the connection is not reused.
        #expect(parse(["HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"]).responses
            == ["200  - close ok"])
    }

    /// No length and no chunking: the body runs until the connection ends.
    @Test func aBodyToTheEndOfTheConnection() {
        expectSameInEverySplit("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}", closeAfter: true,
                               Outcome(responses: ["200 application/json - close {}"]))
        expectSameInEverySplit("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", closeAfter: true,
                               Outcome(responses: ["200  - close zz"]))
    }

    @Test("what is not a well-framed answer is an error", arguments: [
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNo-Colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\u{01}b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 garbage\r\nhello\r\n0\r\n\r\n",
    ])
    func refuses(_ text: String) {
        #expect(parse([text]).error != nil, "\(text.debugDescription)")
    }

    @Test func anAnswerCutShortIsAnErrorWhenTheConnectionEnds() {
        #expect(parse(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"], closeAfter: true).error != nil)
        #expect(parse(["HTTP/1.1 200 OK\r\nContent-Le"], closeAfter: true).error != nil)
        #expect(parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"], closeAfter: true).error != nil)
        // Between answers, the end of the connection is no error.
        #expect(parse(["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], closeAfter: true) == Outcome(responses: ["200  - keep "]))
    }

    @Test func aHeadLongerThanTheLimitIsRefused() {
        let long = "HTTP/1.1 200 OK\r\nX-Filler: " + String(repeating: "a", count: ResponseParser.maxHead)
        #expect(parse([long]).error?.contains("longer than") == true)
        // Whole in one read, too.
        #expect(parse([long + "\r\nContent-Length: 0\r\n\r\n"]).error?.contains("longer than") == true)
    }
}
