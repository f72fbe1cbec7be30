import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import Upstream
@testable import HTTPEdge

/// The fast lane in a pipeline of its own, with a stand-in for Hummingbird
/// after it that records what reaches it.
@Suite struct FastLaneTests {
    final class Hummingbird: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        var requests: [String] = []
        var quiesced = false
        var inputClosed = false
        var errors = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .head(let head) = unwrapInboundIn(data) { requests.append(head.uri) }
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ChannelShouldQuiesceEvent { quiesced = true }
            if let event = event as? ChannelEvent, event == .inputClosed { inputClosed = true }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { errors += 1 }
    }

    /// Counts the reads that reach the socket.
    final class Reads: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = Any
        var count = 0
        func read(context: ChannelHandlerContext) {
            count += 1
            context.read()
        }
    }

    func pipeline(reads: Reads = Reads()) throws -> (EmbeddedChannel, Hummingbird) {
        let portal = try PortalApplication(config: testConfig(), logger: Logger(label: "lane-test"))
        let channel = EmbeddedChannel()
        let hummingbird = Hummingbird()
        let writer = HeadWriter()
        try channel.pipeline.syncOperations.addHandler(writer)
        try channel.pipeline.syncOperations.addHandler(reads)
        try channel.pipeline.syncOperations.addHandler(FastLaneHandler(lane: FastLane(endpoint: portal.endpoint), writer: writer))
        try channel.pipeline.syncOperations.addHandler(hummingbird)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, hummingbird)
    }

    func get(_ uri: String) -> HTTPServerRequestPart { .head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)) }

    /// Whole GET requests, pipelined.
    func send(_ channel: EmbeddedChannel, _ uris: String...) throws {
        for uri in uris {
            try channel.writeInbound(get(uri))
            try channel.writeInbound(HTTPServerRequestPart.end(nil))
        }
    }

    /// Hummingbird's response to the request it has.
    func answer(_ channel: EmbeddedChannel, _ status: HTTPResponseStatus = .ok) throws {
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
    }

    /// Shutdown while Hummingbird has a request: it is told at once (it
    /// closes after that response), and a request pipelined behind is not
    /// started, since its answer could not go out.
    @Test func nothingQueuedStartsOnceHummingbirdWillCloseForShutdown() throws {
        let (channel, hummingbird) = try pipeline()
        try channel.writeInbound(get("/first"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(hummingbird.quiesced)
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        try send(channel, "/second")
        try answer(channel)
        #expect(hummingbird.requests == ["/first"])
        #expect(!channel.isActive)
    }

    /// While a request is answered the socket is still read, one read
    /// ahead (a client's next request finds it registered for reading, no
    /// epoll change per call); what arrives waits, and nothing more is read
    /// until it is taken.
    @Test func readsGoOnOneReadAheadWhileARequestIsAnswered() throws {
        let reads = Reads()
        let (channel, hummingbird) = try pipeline(reads: reads)
        try send(channel, "/first")
        channel.read()
        #expect(reads.count == 1, "no read while a request was answered")
        try send(channel, "/second")
        channel.read()
        #expect(reads.count == 1, "read on while a request waited")
        try answer(channel)
        #expect(hummingbird.requests == ["/first", "/second"])
        #expect(reads.count == 2, "the withheld read was not made once the waiting request was taken")
        _ = try channel.finish()
    }

    /// Without a shutdown the same pipelined request is passed on in turn.
    @Test func aPipelinedRequestIsPassedOnAfterTheOneBefore() throws {
        let (channel, hummingbird) = try pipeline()
        try send(channel, "/first", "/second")
        #expect(hummingbird.requests == ["/first"])
        try answer(channel)
        #expect(hummingbird.requests == ["/first", "/second"])
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    /// Shutdown with nothing in hand: Hummingbird is told at once.
    @Test func anIdleConnectionPassesTheShutdownOn() throws {
        let (channel, hummingbird) = try pipeline()
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(hummingbird.quiesced)
        _ = try channel.finish()
    }

    /// A request that does not parse goes to Hummingbird, which answers 400;
    /// a shutdown meanwhile is not passed on (it could cut that answer off),
    /// and the connection closes once the 400 is written.
    @Test func aShutdownDoesNotCutOffTheAnswerToARequestThatDidNotParse() throws {
        let (channel, hummingbird) = try pipeline()
        channel.pipeline.fireErrorCaught(HTTPParserError.invalidMethod)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(hummingbird.errors == 1)
        #expect(!hummingbird.quiesced)
        #expect(channel.isActive)
        try answer(channel, .badRequest)
        #expect(!channel.isActive)
    }

    /// The same without a shutdown: the 400 is the connection's last answer.
    @Test func theAnswerToARequestThatDidNotParseClosesTheConnection() throws {
        let (channel, _) = try pipeline()
        channel.pipeline.fireErrorCaught(HTTPParserError.invalidMethod)
        try answer(channel, .badRequest)
        #expect(!channel.isActive)
    }

    /// A shutdown while the lane reads a request of its own waits for it;
    /// what was pipelined behind is not started.
    @Test func aShutdownWaitsForTheRequestTheLaneIsReading() throws {
        let (channel, hummingbird) = try pipeline()
        let laneRequest = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/mcp",
                                          headers: ["Mcp-Session-Id": "no-such-session", "Content-Type": "application/json"])
        try channel.writeInbound(HTTPServerRequestPart.head(laneRequest))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!hummingbird.quiesced) // the lane has the request in hand
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: #"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        // Not admitted (no such session): Hummingbird refuses it, and is told now.
        #expect(hummingbird.requests == ["/mcp"])
        #expect(hummingbird.quiesced)
        try send(channel, "/second")
        try answer(channel, .notFound)
        #expect(hummingbird.requests == ["/mcp"])
        #expect(!channel.isActive)
    }

    /// Once the connection is gone, nothing queued is started (handlers
    /// are removed a loop turn later).
    @Test func nothingStartsAfterTheConnectionWentInactive() throws {
        let (channel, hummingbird) = try pipeline()
        try send(channel, "/first", "/second")
        channel.pipeline.fireChannelInactive()
        try answer(channel)
        #expect(hummingbird.requests == ["/first"])
    }

    /// A client that half-closes after pipelining gets every answer:
    /// Hummingbird hears of the closed input only after the last request.
    @Test func aHalfCloseWaitsForTheRequestsReadBeforeIt() throws {
        let (channel, hummingbird) = try pipeline()
        try send(channel, "/first", "/second")
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(!hummingbird.inputClosed)
        try answer(channel)
        #expect(hummingbird.requests == ["/first", "/second"])
        #expect(!hummingbird.inputClosed)
        try answer(channel)
        #expect(hummingbird.inputClosed)
        _ = try? channel.finish()
    }

    /// A lane answer is written as one buffer, byte for byte what NIO's
    /// response encoder writes for the same head and body.
    @Test(arguments: [HTTPResponseStatus.ok, .notFound, .internalServerError])
    func aJSONAnswerIsWhatTheEncoderWouldWrite(status: HTTPResponseStatus) throws {
        let body = Array(#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#.utf8)
        let date = "Thu, 03 Dec 2026 19:40:00 GMT"
        let channel = EmbeddedChannel(handler: HTTPResponseEncoder())
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: [
            "Date": date, "Server": PortalApplication.serverName,
            "Content-Type": "application/json", "Content-Length": String(body.count),
        ])
        try channel.writeOutbound(HTTPServerResponsePart.head(head))
        try channel.writeOutbound(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: body))))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        var encoded = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { encoded.writeBuffer(&part) }
        let lane = FastLaneHandler.jsonResponse(body, status: status, date: date, allocator: ByteBufferAllocator())
        #expect(String(buffer: lane) == String(buffer: encoded))
    }
}
