import Foundation
import MCPWire
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A small pooled HTTP/1.1 client for the hot leg to plain-http upstreams:
/// kept-alive connections, one request at a time each, and a JSON answer
/// handed back whole in a single hop from the event loop. (AsyncHTTPClient
/// stays for TLS, long-lived streams and everything else; on this path it
/// cost several times the CPU per call.)
final class HTTP1Pool: Sendable {
    enum Answer: Sendable {
        /// The whole response, for anything but an event stream.
        case complete(ResponseParser.Head, ByteBuffer)
        /// An event stream: its body arrives on `body` as it comes.
        case streaming(ResponseParser.Head, AsyncThrowingStream<ByteBuffer, any Error>)
    }

    struct PoolError: Error, CustomStringConvertible {
        var description: String
    }

    /// A request as it goes on the wire, head and body in one buffer, written
    /// in one go. (NIO's request encoder, its header validator and the
    /// decoder's write observation cost more per call than the rest of this
    /// hop; the pool writes bytes its caller built with ``RequestHead``.)
    struct Request: Sendable {
        var method: HTTPMethod
        var bytes: ByteBuffer
    }

    /// The part of a request head that stays the same from call to call
    /// (request line, Host, configured fields), serialized and checked once.
    struct RequestHead: Sendable {
        let method: HTTPMethod
        private let prefix: ByteBuffer

        /// Nil when a field could break the message's framing: a name that
        /// is not a token, or a value with CR, LF, NUL or another control
        /// character (RFC 9110 5.1, 5.5).
        init?(method: HTTPMethod, uri: String, fields: [(name: String, value: String)]) {
            // The answer parser frames bodies as for these methods: a HEAD
            // or CONNECT answer is framed differently (RFC 9112 6.3).
            guard method != .HEAD, method != .CONNECT else { return nil }
            guard !uri.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else { return nil }
            var prefix = ByteBuffer()
            prefix.writeString("\(method.rawValue) \(uri) HTTP/1.1\r\n")
            for field in fields {
                guard Self.write(field.name, field.value, to: &prefix) else { return nil }
            }
            self.method = method
            self.prefix = prefix
        }

        /// The whole request: the fixed head, `fields` (a nil value is left
        /// out), Content-Length and the body. Nil when a field is unsafe.
        func request(adding fields: [(name: String, value: String?)], body: [UInt8]) -> Request? {
            var bytes = ByteBuffer()
            bytes.reserveCapacity(prefix.readableBytes + 128 + body.count)
            bytes.writeImmutableBuffer(prefix)
            for field in fields {
                guard let value = field.value else { continue }
                guard Self.write(field.name, value, to: &bytes) else { return nil }
            }
            bytes.writeString("Content-Length: \(body.count)\r\n\r\n")
            bytes.writeBytes(body)
            return Request(method: method, bytes: bytes)
        }

        private static func write(_ name: String, _ value: String, to buffer: inout ByteBuffer) -> Bool {
            guard !name.isEmpty, name.utf8.allSatisfy(ASCII.isTokenByte),
                  value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }) else { return false }
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
            return true
        }
    }

    let host: String
    let port: Int
    let group: any EventLoopGroup
    /// Kept-alive connections by event loop: a caller on a loop gets one of
    /// that loop's, so the call and its answer never leave the thread.
    private let idle = Mutex<[ObjectIdentifier: [Connection]]>([:])
    static let maxIdle = 64
    /// The largest plain answer kept in memory (as on the AsyncHTTPClient path).
    static let maxBody = 64 << 20

    init(host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.group = group
    }

    typealias Completion = @Sendable (Result<Answer, any Error>) -> Void

    /// Sends one request and waits for its answer.
    func execute(_ request: Request, timeout: TimeAmount) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            start(request, timeout: timeout) { continuation.resume(with: $0) }
        }
    }

    /// Sends one request; `completion` runs once, on the connection's event
    /// loop, with the answer. No task or executor hop on the way. A request
    /// that fails on a reused connection before it was written (the server
    /// had closed it) is sent once more on a new one.
    func start(_ request: Request, timeout: TimeAmount, completion: @escaping Completion) {
        guard let connection = takeIdle() else {
            startFresh(request, timeout: timeout, completion: completion)
            return
        }
        send(request, on: connection, timeout: timeout) { result in
            if case .failure(let error) = result, error is StaleConnection {
                self.startFresh(request, timeout: timeout, completion: completion)
            } else {
                completion(result)
            }
        }
    }

    private func startFresh(_ request: Request, timeout: TimeAmount, completion: @escaping Completion) {
        connect(timeout: timeout).whenComplete { connected in
            switch connected {
            case .failure(let error):
                completion(.failure(PoolError(description: "cannot connect to \(self.host):\(self.port): \(error)")))
            case .success(let connection):
                self.send(request, on: connection, timeout: timeout) { result in
                    if case .failure(let error) = result, error is StaleConnection {
                        completion(.failure(PoolError(description: "connection to \(self.host):\(self.port) closed before an answer")))
                    } else {
                        completion(result)
                    }
                }
            }
        }
    }

    func close() {
        for connection in idle.withLock({ pool in defer { pool = [:] }; return pool.values.flatMap { $0 } }) { connection.channel.close(promise: nil) }
    }

    /// The event loop the caller runs on, if it runs on one.
    private var callerLoop: (any EventLoop)? { MultiThreadedEventLoopGroup.currentEventLoop }

    private func takeIdle() -> Connection? {
        let preferred = callerLoop.map { ObjectIdentifier($0) }
        return idle.withLock { pool in
            func take(_ key: ObjectIdentifier) -> Connection? {
                while let connection = pool[key]?.popLast() {
                    if connection.channel.isActive { return connection }
                }
                return nil
            }
            if let preferred, let connection = take(preferred) { return connection }
            for key in Array(pool.keys) where key != preferred {  // a copy: taking changes the pool
                if let connection = take(key) { return connection }
            }
            return nil
        }
    }

    fileprivate func release(_ connection: Connection) {
        let key = ObjectIdentifier(connection.channel.eventLoop)
        let kept = idle.withLock { pool -> Bool in
            guard connection.channel.isActive, pool[key, default: []].count < Self.maxIdle else { return false }
            pool[key, default: []].append(connection)
            return true
        }
        if !kept { connection.channel.close(promise: nil) }
    }

    /// A kept-alive connection and the handler that runs its exchanges.
    struct Connection: Sendable {
        let channel: any Channel
        let handler: AnswerHandler
    }

    private func connect(timeout: TimeAmount) -> EventLoopFuture<Connection> {
        let bootstrap = ClientBootstrap(group: callerLoop ?? group.next())
            .connectTimeout(min(timeout, .seconds(10)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Requests are written as bytes; answers are read from
                    // bytes (ResponseParser), with no HTTP codec between.
                    let writer = HeadWriter()
                    try channel.pipeline.syncOperations.addHandler(writer)
                    try channel.pipeline.syncOperations.addHandler(AnswerHandler(writer: writer))
                }
            }
        return bootstrap.connect(host: host, port: port).flatMapThrowing { channel in
            Connection(channel: channel, handler: try channel.pipeline.syncOperations.handler(type: AnswerHandler.self))
        }
    }

    struct StaleConnection: Error {}

    private func send(_ request: Request, on connection: Connection, timeout: TimeAmount, completion: @escaping Completion) {
        let exchange = Exchange(pool: self, connection: connection, completion: completion)
        connection.channel.eventLoop.executeHere {
            connection.handler.send(request, exchange: exchange, timeout: timeout)
        }
    }
}

/// One request's progress on one connection. Touched only on the
/// connection's event loop.
final class Exchange: @unchecked Sendable {
    let pool: HTTP1Pool
    let connection: HTTP1Pool.Connection
    var channel: any Channel { connection.channel }
    private var completion: HTTP1Pool.Completion?
    var head: ResponseParser.Head?
    var body: ByteBuffer?
    var stream: AsyncThrowingStream<ByteBuffer, any Error>.Continuation?
    var receivedAnything = false
    /// The request reached the socket: from here on it is never sent again.
    var written = false

    init(pool: HTTP1Pool, connection: HTTP1Pool.Connection, completion: @escaping HTTP1Pool.Completion) {
        self.pool = pool
        self.connection = connection
        self.completion = completion
    }

    func answer(_ answer: HTTP1Pool.Answer) {
        let completion = self.completion
        self.completion = nil
        completion?(.success(answer))
    }

    func fail(_ error: any Error) {
        let completion = self.completion
        self.completion = nil
        completion?(.failure(error))
        stream?.finish(throwing: error)
        stream = nil
    }
}

/// Reads answers for the exchange in progress on its connection.
final class AnswerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var current: Exchange?
    private var keepAlive = true
    private let writer: HeadWriter
    private var parser = ResponseParser()
    /// What one read completed, handled once the parser is done with it
    /// (handling can close the channel, which reads the parser's end).
    private var events: [ResponseParser.Event] = []
    /// The other of two buffers taking turns with `events`, so handling a
    /// read allocates nothing.
    private var spareEvents: [ResponseParser.Event] = []
    /// When the exchange in progress must have its answer; nil when there
    /// is none, or when it streams (the caller's timeout governs a stream).
    private var deadline: NIODeadline?
    private var timeout: TimeAmount = .zero
    /// One timer per connection: a call only sets `deadline`, and the
    /// timer, when it fires before the deadline in force (a later call's),
    /// is set again for it. (Scheduling and cancelling a task per call was
    /// about 2% of the portal's CPU.)
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    init(writer: HeadWriter) {
        self.writer = writer
    }

    /// Starts `exchange`: writes the request and waits for its answer. On the
    /// connection's event loop.
    func send(_ request: HTTP1Pool.Request, exchange: Exchange, timeout: TimeAmount) {
        let loop = exchange.channel.eventLoop
        let written = loop.makePromise(of: Void.self)
        guard current == nil, writer.write(request.bytes, promise: written) else {
            written.fail(HTTP1Pool.StaleConnection())
            exchange.fail(HTTP1Pool.StaleConnection())
            return
        }
        current = exchange
        let deadline = NIODeadline.now() + timeout
        self.deadline = deadline
        self.timeout = timeout
        // A timer set for this deadline or an earlier one (which sets itself
        // again) will do; one set for a later deadline would fire too late.
        if let armed = timerDeadline, armed <= deadline {} else {
            timer?.cancel()
            setTimer(at: deadline, on: exchange.channel)
        }
        written.futureResult.whenComplete { result in
            switch result {
            case .success: exchange.written = true
            case .failure:
                // Sent again on a new connection only when the server has said nothing yet.
                self.failCurrent(exchange.receivedAnything
                    ? HTTP1Pool.PoolError(description: "the connection failed while the request was being written")
                    : HTTP1Pool.StaleConnection())
            }
        }
    }

    /// Holds the handler until it fires or the connection ends (no weak
    /// reference: a side table for the handler's reference counts).
    private func setTimer(at deadline: NIODeadline, on channel: any Channel) {
        timerDeadline = deadline
        timer = channel.eventLoop.scheduleTask(deadline: deadline) { [self] in
            timer = nil
            timerDeadline = nil
            guard current != nil, let due = self.deadline else { return }
            if due <= .now() {
                failCurrent(HTTP1Pool.PoolError(description: "no answer within \(timeout)"))
                channel.close(promise: nil)
            } else {
                setTimer(at: due, on: channel)
            }
        }
    }

    func failCurrent(_ error: any Error) {
        guard let exchange = current else { return }
        current = nil
        deadline = nil
        exchange.fail(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard current != nil else {
            // Bytes with no request out answer nothing: the connection is not trusted again.
            context.close(promise: nil)
            return
        }
        do {
            try parser.feed(unwrapInboundIn(data)) { events.append($0) }
        } catch {
            handleEvents(context: context)
            failCurrent(error)
            context.close(promise: nil)
            return
        }
        handleEvents(context: context)
    }

    private func handleEvents(context: ChannelHandlerContext) {
        guard !events.isEmpty else { return }
        var read: [ResponseParser.Event] = []
        swap(&read, &events)
        swap(&events, &spareEvents)
        defer {
            read.removeAll(keepingCapacity: true)
            spareEvents = read
        }
        for (index, event) in read.enumerated() {
            if index > 0, case .end = read[index - 1] {
                // More after an answer, in the same read: sent before any
                // next request, so it answers nothing. The connection is
                // not trusted again (a request started meanwhile fails, or
                // is sent again elsewhere if nothing of it went out).
                context.close(promise: nil)
                return
            }
            handle(event, context: context, lastOfRead: index == read.count - 1)
        }
    }

    private func handle(_ event: ResponseParser.Event, context: ChannelHandlerContext, lastOfRead: Bool) {
        guard let exchange = current else {
            // An answer nobody asked for: the connection cannot be trusted.
            context.close(promise: nil)
            return
        }
        exchange.receivedAnything = true
        switch event {
        case .head(let head):
            keepAlive = head.keepAlive
            exchange.head = head
            if head.contentType.utf8.startsWithASCIICaseInsensitive("text/event-stream") {
                let (stream, continuation) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
                exchange.stream = continuation
                deadline = nil  // a stream lives as long as the call; the caller's timeout governs it
                exchange.answer(.streaming(head, stream))
            } else {
                exchange.body = nil
            }
        case .body(var buffer):
            if let stream = exchange.stream {
                stream.yield(buffer)
            } else if (exchange.body?.readableBytes ?? 0) + buffer.readableBytes > HTTP1Pool.maxBody {
                failCurrent(HTTP1Pool.PoolError(description: "answer larger than \(HTTP1Pool.maxBody) bytes"))
                context.close(promise: nil)
            } else if exchange.body == nil {
                exchange.body = buffer  // most answers come in one part: kept as read
            } else {
                exchange.body!.writeBuffer(&buffer)
            }
        case .end:
            current = nil
            deadline = nil
            // Back in the pool before the caller hears of the answer, so the
            // caller's next request finds it. Not reused: a connection with
            // bytes after the answer (they answer nothing, and would be read
            // as the next request's answer), or one the server answered
            // before the whole request was written (left mid-request).
            let clean = lastOfRead && !parser.inMessage
            if keepAlive, exchange.written, clean { exchange.pool.release(exchange.connection) } else { context.close(promise: nil) }
            if let stream = exchange.stream {
                stream.finish()
            } else if let head = exchange.head {
                exchange.answer(.complete(head, exchange.body ?? ByteBuffer()))
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        deadline = nil
        // A body that runs to the end of the connection ends here.
        do {
            try parser.finish { events.append($0) }
        } catch {}
        handleEvents(context: context)
        if let exchange = current {
            current = nil
            exchange.fail(exchange.receivedAnything || exchange.written
                ? HTTP1Pool.PoolError(description: "connection closed before the answer was complete")
                : HTTP1Pool.StaleConnection())
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failCurrent(error)
        context.close(promise: nil)
    }
}

extension EventLoop {
    /// Runs `work` now when already on this loop, else queues it there.
    func executeHere(_ work: @escaping @Sendable () -> Void) {
        if inEventLoop { work() } else { execute(work) }
    }
}
