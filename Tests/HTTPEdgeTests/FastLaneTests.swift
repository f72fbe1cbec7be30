import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import HTTPEdge

/// The fast lane in a pipeline of its own, with a stand-in for Hummingbird
/// after it that records what reaches it.
@Suite struct FastLaneTests {
    final class Hummingbird: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        var requests: [String] = []
        var quiesced = false
        var errors = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .head(let head) = unwrapInboundIn(data) { requests.append(head.uri) }
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ChannelShouldQuiesceEvent { quiesced = true }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { errors += 1 }
    }

    func pipeline() throws -> (EmbeddedChannel, Hummingbird) {
        let portal = try PortalApplication(config: testConfig(), logger: Logger(label: "lane-test"))
        let channel = EmbeddedChannel()
        let hummingbird = Hummingbird()
        try channel.pipeline.syncOperations.addHandler(FastLaneHandler(lane: FastLane(endpoint: portal.endpoint)))
        try channel.pipeline.syncOperations.addHandler(hummingbird)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, hummingbird)
    }

    func get(_ uri: String) -> HTTPServerRequestPart { .head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)) }

    /// Shutdown while Hummingbird has a request: it is told at once (it
    /// closes after that response), and a request pipelined behind is not
    /// started, since its answer could not go out.
    @Test func nothingQueuedStartsOnceHummingbirdWillCloseForShutdown() throws {
        let (channel, hummingbird) = try pipeline()
        try channel.writeInbound(get("/first"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(hummingbird.quiesced)
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        try channel.writeInbound(get("/second"))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        #expect(hummingbird.requests == ["/first"])
        #expect(!channel.isActive)
    }

    /// Without a shutdown the same pipelined request is passed on in turn.
    @Test func aPipelinedRequestIsPassedOnAfterTheOneBefore() throws {
        let (channel, hummingbird) = try pipeline()
        try channel.writeInbound(get("/first"))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        try channel.writeInbound(get("/second"))
        #expect(hummingbird.requests == ["/first"])
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
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

    /// A request that does not parse goes to Hummingbird, which answers 400
    /// and closes; a shutdown right after is not passed on, so it cannot
    /// close the connection before that answer is written.
    @Test func aShutdownDoesNotCutOffTheAnswerToARequestThatDidNotParse() throws {
        let (channel, hummingbird) = try pipeline()
        channel.pipeline.fireErrorCaught(HTTPParserError.invalidMethod)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(hummingbird.errors == 1)
        #expect(!hummingbird.quiesced)
        _ = try? channel.finish()
    }
}
