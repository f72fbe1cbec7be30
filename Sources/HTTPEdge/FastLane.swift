#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import MCPWire
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Upstream

/// The hot path, served on the event loop: a POST of one JSON-RPC request
/// to an open Streamable HTTP session is admitted by the same checks as
/// the route (``MCPEndpoint/admitHead(portalID:headers:)`` and
/// ``MCPEndpoint/admitBody(portal:headers:body:)``), run by the session
/// with a completion, and answered from the loop: plain JSON when the
/// response comes first, an SSE stream when something comes before it.
/// Everything else (initialize, notifications, batches, GET, DELETE,
/// refusals, the legacy transport, health) goes on to Hummingbird's
/// router unchanged, so errors are made in one place.
struct FastLane: Sendable {
    let endpoint: MCPEndpoint

    /// Where a POST that may take the lane is going: `/mcp` (the default
    /// portal) or `/{portal}/mcp`.
    struct Target {
        var portal: String?
    }

    func target(of head: HTTPRequestHead) -> Target? {
        guard head.method == .POST, head.version == .http1_1, head.headers.contains(name: MCPEndpoint.sessionHeader.canonicalName),
              !Self.closes(head), !head.headers.contains(name: "expect") else { return nil }
        var path = head.uri.utf8[...]
        if let query = path.firstIndex(of: UInt8(ascii: "?")) { path = path[..<query] }
        let suffix = "/mcp".utf8
        guard path.count >= suffix.count, path.suffix(suffix.count).elementsEqual(suffix) else { return nil }
        let prefix = path.dropLast(suffix.count)
        if prefix.isEmpty { return Target(portal: nil) }
        guard prefix.first == UInt8(ascii: "/"), prefix.count > 1, !prefix.dropFirst().contains(UInt8(ascii: "/")) else { return nil }
        return Target(portal: String(decoding: prefix.dropFirst(), as: UTF8.self))
    }

    /// Whether the connection ends after this request's answer: a `close`
    /// token in Connection (in any spelling), or HTTP/1.0 without keep-alive.
    /// (Hummingbird itself closes only on exactly `Connection: close`; the
    /// lane closes in the other cases.)
    static func closes(_ head: HTTPRequestHead) -> Bool { !head.isKeepAlive }

    /// The request to run, or nil when the route should have it.
    func admit(_ target: Target, head: HTTPRequestHead, body: ByteBuffer) -> (JSONRPCMessage, SessionRegistry.Entry)? {
        guard case .accepted(let portal) = endpoint.admitHead(portalID: target.portal, headers: head.headers),
              case .request(let message, let entry) = body.withUnsafeReadableBytes({
                  endpoint.admitBody(portal: portal, headers: head.headers, body: $0)
              }) else { return nil }
        return (message, entry)
    }

    /// Bodies up to this size are parsed on the event loop; a larger one
    /// goes to the route, whose handler runs off the loop (and refuses what
    /// is over the configured limit).
    var maxBodyBytes: Int { min(endpoint.limits.maxBodyBytes, 64 << 10) }
}

/// The lane in a connection's pipeline, right after NIO's HTTP/1.1 codec
/// and before Hummingbird's conversion to HTTP types and its connection
/// state handler: what the lane answers costs neither. Requests on a
/// connection are answered in order: while one is being answered (here or
/// by Hummingbird), what comes after it waits in a queue and reads are
/// held, as HTTP/1.1 pipelining needs.
final class FastLaneHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// One request answered by the lane.
    final class Answer {
        let call: Int
        let edge: EdgeSession
        let requestID: JSON
        var stream = 0
        var token = 0
        /// The response head is written; `streaming` says which kind.
        var started = false
        var streaming = false
        /// Events waiting while the client does not read (the newest kept).
        var backlog: [EdgeSession.Event] = []
        init(call: Int, edge: EdgeSession, requestID: JSON) {
            self.call = call
            self.edge = edge
            self.requestID = requestID
        }
    }

    /// Events kept per streamed answer while the client does not read;
    /// older ones are dropped from the live stream (the session's resume
    /// buffer still has them), as on the route's streams.
    static let backlogLimit = 256

    enum State {
        case idle
        /// The body read so far: nil before its first part, which is kept
        /// as read (most bodies come whole; only a later part copies).
        case collecting(HTTPRequestHead, FastLane.Target, ByteBuffer?)
        /// Hummingbird has the request until its response ends.
        case passing(requestEnded: Bool)
        case answering(Answer)
        /// The connection is ending (a request asked to close it, a request
        /// did not parse, the channel went inactive): nothing more is started.
        case closing
    }

    let lane: FastLane
    /// Whole JSON answers go out here, as one buffer past the response encoder.
    let writer: HeadWriter
    private var state = State.idle
    private var date = HTTPDate()
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    /// The server is shutting down (graceful quiesce): nothing more is read
    /// but the rest of a request already begun, and Hummingbird's state
    /// handler, after the lane, is told once the lane has no request of its
    /// own in hand (so that one is answered first). A request is never
    /// started when its answer could not go out.
    private var quiescePending = false
    private var quiescing = false
    /// The client closed its side after sending (half-close): Hummingbird is
    /// told once everything read before it is answered, since it ends its
    /// request stream (and then the connection) when told.
    private var inputClosedPending = false
    /// A request that did not parse went to Hummingbird: once its answer
    /// (400) is written, the connection is closed here.
    private var awaitingErrorAnswer = false
    /// An error read after the queued parts (a request that does not parse):
    /// it reaches Hummingbird, which answers 400 and closes, only once the
    /// requests before it are answered.
    private var pendingError: (any Error)?
    private var readPending = false
    private var calls = 0
    /// The request Hummingbird has asked to close the connection: after its
    /// response, nothing more is answered here (Hummingbird closes it).
    private var closeAfterPassing = false
    private var context: ChannelHandlerContext?

    init(lane: FastLane, writer: HeadWriter) {
        self.lane = lane
        self.writer = writer
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// The connection is gone: a stream being answered is detached, so its
    /// events wait in the session's buffer for a resume, and nothing queued
    /// is started (handlers are removed a loop turn after this).
    func channelInactive(context: ChannelHandlerContext) {
        endConnection()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        endConnection()
        self.context = nil
    }

    private func endConnection() {
        if case .answering(let answer) = state { answer.edge.detach(answer.stream, token: answer.token) }
        state = .closing
        queued.removeAll()
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        queued.append(unwrapInboundIn(data))
        drain(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pendingError = error
        drain(context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescePending = true
            quiescing = true
            drain(context)
        } else if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            inputClosedPending = true
            drain(context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .answering(let answer) = state, !answer.backlog.isEmpty {
            writeBacklog(answer, context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if canRead, queued.isEmpty {
            context.read()
        } else {
            readPending = true
        }
    }

    /// Reads go on while a request is answered, one read ahead: a client
    /// that sends its next request after this answer finds the socket
    /// still registered for reading (no epoll change twice per call, which
    /// holding reads cost); what a pipelining client sends meanwhile waits
    /// in `queued`, and nothing more is read until it is taken. Nothing is
    /// read once shutting down or closing.
    private var canRead: Bool {
        switch state {
        case .idle, .passing(requestEnded: true), .answering: !quiescing
        case .collecting, .passing(requestEnded: false): true
        case .closing: false
        }
    }

    /// Moves queued parts on as far as the state allows.
    private func drain(_ context: ChannelHandlerContext) {
        var fired = false
        loop: while let part = queued.first {
            switch state {
            case .answering, .passing(requestEnded: true):
                break loop
            case .closing:
                queued.removeAll()
            case .passing(requestEnded: false):
                queued.removeFirst()
                if case .end = part { state = .passing(requestEnded: true) }
                context.fireChannelRead(wrapInboundOut(part))
                fired = true
            case .idle where quiescing:
                // Shutting down: what has not started yet never starts (as in
                // Hummingbird); the client may send it again elsewhere.
                queued.removeAll()
            case .idle:
                queued.removeFirst()
                if case .head(let head) = part, let target = lane.target(of: head) {
                    state = .collecting(head, target, nil)
                } else {
                    // Not for the lane; or the rest of a request Hummingbird answered early.
                    if case .head(let head) = part {
                        state = .passing(requestEnded: false)
                        closeAfterPassing = FastLane.closes(head)
                    }
                    context.fireChannelRead(wrapInboundOut(part))
                    fired = true
                }
            case .collecting(let head, let target, var body):
                queued.removeFirst()
                state = .idle // the state lets go of the buffer, so appending to it does not copy it
                switch part {
                case .body(let chunk):
                    if body == nil { body = chunk } else { body!.writeImmutableBuffer(chunk) }
                    if body!.readableBytes > lane.maxBodyBytes {
                        // Hummingbird takes it (or refuses it, 413) and reads the rest.
                        pass(head, body: body, end: nil, context: context)
                        fired = true
                    } else {
                        state = .collecting(head, target, body)
                    }
                case .end(let trailers):
                    if let (message, entry) = lane.admit(target, head: head, body: body ?? ByteBuffer()) {
                        answer(message, entry: entry, context: context)
                    } else {
                        pass(head, body: body, end: .some(trailers), context: context)
                        fired = true
                    }
                case .head:
                    // A head inside a request: let Hummingbird report it.
                    pass(head, body: body, end: nil, context: context)
                    context.fireChannelRead(wrapInboundOut(part))
                    fired = true
                }
            }
        }
        if fired { context.fireChannelReadComplete() }
        if let error = pendingError, queued.isEmpty {
            switch state {
            case .answering, .passing(requestEnded: true):
                break // after the answer in progress
            case .closing:
                pendingError = nil
            case .idle, .collecting, .passing(requestEnded: false):
                // A request cut short by the error is Hummingbird's to refuse;
                // it answers 400, and the connection closes after that.
                state = .closing
                awaitingErrorAnswer = true
                pendingError = nil
                context.fireErrorCaught(error)
            }
        }
        if quiescePending {
            let event = ChannelShouldQuiesceEvent()
            switch state {
            case .collecting, .answering:
                break // after the request the lane has in hand
            case .passing:
                // Hummingbird closes after the response it is writing: the
                // lane starts nothing queued behind it (as for Connection: close).
                quiescePending = false
                closeAfterPassing = true
                context.fireUserInboundEventTriggered(event)
            case .idle:
                // Nothing in hand (what was read is answered): Hummingbird closes now.
                quiescePending = false
                context.fireUserInboundEventTriggered(event)
            case .closing:
                // Ending already: telling Hummingbird could cut its 400 off.
                // Once that is written the connection closes; if none is
                // coming, it closes now.
                quiescePending = false
                if !awaitingErrorAnswer { context.close(promise: nil) }
            }
        }
        if inputClosedPending, queued.isEmpty {
            let event = ChannelEvent.inputClosed
            switch state {
            case .answering, .passing(requestEnded: true):
                break // after the answer in progress
            case .collecting:
                // A request the client never finished: dropped.
                state = .idle
                inputClosedPending = false
                context.fireUserInboundEventTriggered(event)
            case .idle, .passing(requestEnded: false), .closing:
                inputClosedPending = false
                context.fireUserInboundEventTriggered(event)
            }
        }
        if readPending, canRead, queued.isEmpty {
            readPending = false
            context.read()
        }
    }

    /// Hands a collected request to Hummingbird.
    private func pass(_ head: HTTPRequestHead, body: ByteBuffer?, end: HTTPHeaders??, context: ChannelHandlerContext) {
        state = .passing(requestEnded: end != nil)
        closeAfterPassing = FastLane.closes(head)
        context.fireChannelRead(wrapInboundOut(.head(head)))
        if let body, body.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(.body(body))) }
        if let end { context.fireChannelRead(wrapInboundOut(.end(end))) }
    }

    // MARK: Answering

    private func answer(_ message: JSONRPCMessage, entry: SessionRegistry.Entry, context: ChannelHandlerContext) {
        calls += 1
        let answer = Answer(call: calls, edge: entry.edge, requestID: message.id ?? .null)
        state = .answering(answer)
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        let call = answer.call
        let sink = EdgeSession.Sink(
            yield: { event in loop.execute { handler.value.deliver(event, call: call) } },
            finish: { loop.execute { handler.value.streamEnded(call: call) } })
        let requestID = message.id ?? .null
        (answer.stream, answer.token) = entry.edge.openRequestStream(for: requestID, sink: sink)
        let stream = answer.stream
        entry.portal.handle(message) { response in
            entry.edge.finish(response ?? .error(id: requestID, .internalError("no answer")), stream: stream)
        }
    }

    private func current(_ call: Int) -> Answer? {
        guard case .answering(let answer) = state, answer.call == call else { return nil }
        return answer
    }

    /// An event for the request being answered: the first decides between
    /// plain JSON (the response itself) and an SSE stream.
    private func deliver(_ event: EdgeSession.Event, call: Int) {
        guard let answer = current(call), let context else { return }
        if !answer.started {
            answer.started = true
            if event.final, !event.keepAlive {
                writeJSON(event.message, status: .ok, context: context)
                complete(context)
                return
            }
            answer.streaming = true
            var head = responseHead(.ok)
            head.headers.add(name: "Content-Type", value: "text/event-stream")
            head.headers.add(name: "Cache-Control", value: "no-cache, no-transform")
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        }
        answer.backlog.append(event)
        // The answer ends with it: all of it goes out now.
        guard !event.final else { return endStream(answer, context: context) }
        // A client that does not read: keep the newest events until it does.
        guard context.channel.isWritable else {
            if answer.backlog.count > Self.backlogLimit { answer.backlog.removeFirst(answer.backlog.count - Self.backlogLimit) }
            return
        }
        writeBacklog(answer, context: context)
    }

    /// Writes the events waiting for a streamed answer (the final one never
    /// waits: it ends the answer at once, see ``endStream``).
    private func writeBacklog(_ answer: Answer, context: ChannelHandlerContext) {
        for event in answer.backlog { context.write(wrapOutboundOut(.body(.byteBuffer(event.bytes))), promise: nil) }
        answer.backlog = []
        context.flush()
    }

    /// The stream ended without a final event (the session closed, the
    /// portal is shutting down): end the response.
    private func streamEnded(call: Int) {
        guard let answer = current(call), let context else { return }
        if answer.started {
            endStream(answer, context: context)
        } else {
            writeJSON(.error(id: answer.requestID, .internalError("the request ended without an answer")), status: .internalServerError, context: context)
            complete(context)
        }
    }

    /// Ends a streamed answer: what waits goes out, writable or not (at
    /// most backlogLimit events, the response among them if it came).
    private func endStream(_ answer: Answer, context: ChannelHandlerContext) {
        for event in answer.backlog { context.write(wrapOutboundOut(.body(.byteBuffer(event.bytes))), promise: nil) }
        answer.backlog = []
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        complete(context)
    }

    /// A whole response with a JSON body, written as one buffer.
    private func writeJSON(_ message: JSONRPCMessage, status: HTTPResponseStatus, context: ChannelHandlerContext) {
        writer.write(Self.jsonResponse(message.serialized(), status: status, date: date.now(), allocator: context.channel.allocator), promise: nil)
    }

    /// The bytes NIO's encoder would write for a response with the lane's
    /// head (Date, Server, Content-Type, Content-Length) and `body`, made
    /// without building a head to encode.
    static func jsonResponse(_ body: [UInt8], status: HTTPResponseStatus, date: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 192 + body.count)
        if status == .ok {
            buffer.writeStaticString("HTTP/1.1 200 OK\r\nDate: ")
        } else {
            buffer.writeString("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nDate: ")
        }
        buffer.writeString(date)
        buffer.writeStaticString("\r\nServer: ")
        buffer.writeString(PortalApplication.serverName)
        buffer.writeStaticString("\r\nContent-Type: application/json\r\nContent-Length: ")
        buffer.writeString(String(body.count))
        buffer.writeStaticString("\r\n\r\n")
        buffer.writeBytes(body)
        return buffer
    }

    /// A response head with what every response of the portal carries,
    /// as Hummingbird writes them on the route: Date (RFC 9110 6.6.1) and Server.
    private func responseHead(_ status: HTTPResponseStatus) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: status,
                         headers: ["Date": date.now(), "Server": PortalApplication.serverName])
    }

    private func complete(_ context: ChannelHandlerContext) {
        state = .idle
        drain(context)
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        context.write(data, promise: promise)
        if case .end = part, case .closing = state, awaitingErrorAnswer {
            // The answer to a request that did not parse: the last one.
            awaitingErrorAnswer = false
            context.flush()
            context.close(promise: nil)
            return
        }
        // Hummingbird finished its response: the next request may go.
        if case .end = part, case .passing = state {
            guard !closeAfterPassing else {
                // The client asked to close (in any spelling): it is the last answer.
                state = .closing
                queued.removeAll()
                context.flush()
                context.close(promise: nil)
                return
            }
            state = .idle
            drain(context)
        }
    }
}

/// Hummingbird's HTTP/1.1 child channel with the fast lane in front of its
/// HTTP types codec and connection-state handler (the lane holds a graceful
/// shutdown back until its own request is answered).
struct PortalHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let lane: FastLane

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: Self.decoderLimits
            )
            let writer = HeadWriter()
            try channel.pipeline.syncOperations.addHandler(writer, position: .first)
            try channel.pipeline.syncOperations.addHandler(FastLaneHandler(lane: lane, writer: writer))
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    /// Hummingbird's own limits (HTTP1Channel.Configuration's defaults).
    static var decoderLimits: NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 80 * 1024
        limits.maxHeaderListSize = 80 * 1024
        limits.maxHeaderFieldCount = 1000
        return limits
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: asyncChannel, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with the fast lane in every connection.
    static func portal(_ lane: FastLane) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in PortalHTTPChannel(responder: responder, lane: lane) }
    }
}

/// The current time as an HTTP date, formatted again only when the second
/// changes. One per connection: nothing shared on the request path.
struct HTTPDate {
    private var second = -1
    private var text = ""

    mutating func now() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        if time.tv_sec != second {
            second = time.tv_sec
            text = Self.format(second)
        }
        return text
    }

    /// `Thu, 03 Dec 2026 13:52:04 GMT` (IMF-fixdate).
    static func format(_ seconds: Int) -> String {
        var clock = time_t(seconds)
        var parts = tm()
        gmtime_r(&clock, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(1900 + Int(parts.tm_year)) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
