import Foundation
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
        case complete(HTTPResponseHead, ByteBuffer)
        /// An event stream: its body arrives on `body` as it comes.
        case streaming(HTTPResponseHead, AsyncThrowingStream<ByteBuffer, any Error>)
    }

    struct PoolError: Error, CustomStringConvertible {
        var description: String
    }

    let host: String
    let port: Int
    let group: any EventLoopGroup
    /// Kept-alive connections by event loop: a caller on a loop gets one of
    /// that loop's, so the call and its answer never leave the thread.
    private let idle = Mutex<[ObjectIdentifier: [any Channel]]>([:])
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
    func execute(_ head: HTTPRequestHead, body: ByteBuffer, timeout: TimeAmount) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            start(head, body: body, timeout: timeout) { continuation.resume(with: $0) }
        }
    }

    /// Sends one request; `completion` runs once, on the connection's event
    /// loop, with the answer. No task or executor hop on the way. A request
    /// that fails on a reused connection before it was written (the server
    /// had closed it) is sent once more on a new one.
    func start(_ head: HTTPRequestHead, body: ByteBuffer, timeout: TimeAmount, completion: @escaping Completion) {
        guard let channel = takeIdle() else {
            startFresh(head, body: body, timeout: timeout, completion: completion)
            return
        }
        send(head, body: body, on: channel, timeout: timeout) { result in
            if case .failure(let error) = result, error is StaleConnection {
                self.startFresh(head, body: body, timeout: timeout, completion: completion)
            } else {
                completion(result)
            }
        }
    }

    private func startFresh(_ head: HTTPRequestHead, body: ByteBuffer, timeout: TimeAmount, completion: @escaping Completion) {
        connect(timeout: timeout).whenComplete { connected in
            switch connected {
            case .failure(let error):
                completion(.failure(PoolError(description: "cannot connect to \(self.host):\(self.port): \(error)")))
            case .success(let channel):
                self.send(head, body: body, on: channel, timeout: timeout) { result in
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
        for channel in idle.withLock({ pool in defer { pool = [:] }; return pool.values.flatMap { $0 } }) { channel.close(promise: nil) }
    }

    /// The event loop the caller runs on, if it runs on one.
    private var callerLoop: (any EventLoop)? { MultiThreadedEventLoopGroup.currentEventLoop }

    private func takeIdle() -> (any Channel)? {
        let preferred = callerLoop.map { ObjectIdentifier($0) }
        return idle.withLock { pool in
            for key in [preferred].compactMap({ $0 }) + Array(pool.keys) {
                while let channel = pool[key]?.popLast() {
                    if channel.isActive { return channel }
                }
            }
            return nil
        }
    }

    fileprivate func release(_ channel: any Channel) {
        let key = ObjectIdentifier(channel.eventLoop)
        let kept = idle.withLock { pool -> Bool in
            guard channel.isActive, pool[key, default: []].count < Self.maxIdle else { return false }
            pool[key, default: []].append(channel)
            return true
        }
        if !kept { channel.close(promise: nil) }
    }

    private func connect(timeout: TimeAmount) -> EventLoopFuture<any Channel> {
        let bootstrap = ClientBootstrap(group: callerLoop ?? group.next())
            .connectTimeout(min(timeout, .seconds(10)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(AnswerHandler())
                }
            }
        return bootstrap.connect(host: host, port: port)
    }

    struct StaleConnection: Error {}

    private func send(_ head: HTTPRequestHead, body: ByteBuffer, on channel: any Channel, timeout: TimeAmount, completion: @escaping Completion) {
        do {
            let exchange = Exchange(pool: self, channel: channel, completion: completion)
            channel.eventLoop.executeHere {
                guard let handler = try? channel.pipeline.syncOperations.handler(type: AnswerHandler.self) else {
                    exchange.fail(StaleConnection())
                    return
                }
                handler.start(exchange, timeout: timeout)
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenComplete { result in
                    switch result {
                    case .success: exchange.written = true
                    case .failure: handler.failCurrent(StaleConnection())
                    }
                }
            }
        }
    }
}

/// One request's progress on one connection. Touched only on the
/// connection's event loop.
final class Exchange: @unchecked Sendable {
    let pool: HTTP1Pool
    let channel: any Channel
    private var completion: HTTP1Pool.Completion?
    var head: HTTPResponseHead?
    var body: ByteBuffer?
    var stream: AsyncThrowingStream<ByteBuffer, any Error>.Continuation?
    var receivedAnything = false
    /// The request reached the socket: from here on it is never sent again.
    var written = false
    var timer: Scheduled<Void>?

    init(pool: HTTP1Pool, channel: any Channel, completion: @escaping HTTP1Pool.Completion) {
        self.pool = pool
        self.channel = channel
        self.completion = completion
    }

    func answer(_ answer: HTTP1Pool.Answer) {
        let completion = self.completion
        self.completion = nil
        completion?(.success(answer))
    }

    func fail(_ error: any Error) {
        timer?.cancel()
        let completion = self.completion
        self.completion = nil
        completion?(.failure(error))
        stream?.finish(throwing: error)
        stream = nil
    }
}

/// Reads answers for the exchange in progress on its connection.
final class AnswerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private var current: Exchange?
    private var keepAlive = true

    func start(_ exchange: Exchange, timeout: TimeAmount) {
        current = exchange
        exchange.timer = exchange.channel.eventLoop.scheduleTask(in: timeout) { [weak self] in
            self?.failCurrent(HTTP1Pool.PoolError(description: "no answer within \(timeout)"))
            exchange.channel.close(promise: nil)
        }
    }

    func failCurrent(_ error: any Error) {
        guard let exchange = current else { return }
        current = nil
        exchange.fail(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let exchange = current else { return }
        exchange.receivedAnything = true
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            exchange.head = head
            if head.headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") == true {
                let (stream, continuation) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
                exchange.stream = continuation
                exchange.timer?.cancel()  // a stream lives as long as the call; the caller's timeout governs it
                exchange.answer(.streaming(head, stream))
            } else {
                exchange.body = context.channel.allocator.buffer(capacity: 512)
            }
        case .body(var buffer):
            if let stream = exchange.stream {
                stream.yield(buffer)
            } else if (exchange.body?.readableBytes ?? 0) + buffer.readableBytes > HTTP1Pool.maxBody {
                failCurrent(HTTP1Pool.PoolError(description: "answer larger than \(HTTP1Pool.maxBody) bytes"))
                context.close(promise: nil)
            } else {
                exchange.body?.writeBuffer(&buffer)
            }
        case .end:
            current = nil
            exchange.timer?.cancel()
            if let stream = exchange.stream {
                stream.finish()
            } else if let head = exchange.head {
                exchange.answer(.complete(head, exchange.body ?? ByteBuffer()))
            }
            if keepAlive { exchange.pool.release(context.channel) } else { context.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
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
