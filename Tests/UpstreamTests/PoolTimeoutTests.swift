import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import Upstream

/// The pool's answer timeout: one timer per connection, set again when it
/// fires before the deadline of the request in progress.
@Suite struct PoolTimeoutTests {
    /// A server that answers the first request on each connection and
    /// then says nothing more on it.
    final class FirstOnly: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var received = ""
        var answered = false
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += String(buffer: unwrapInboundIn(data))
            guard !answered, received.contains("\r\n\r\n") else { return }
            answered = true
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")), promise: nil)
        }
    }

    func server() async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(FirstOnly()) } }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func status(_ answer: HTTP1Pool.Answer) -> Int {
        guard case .complete(let head, _) = answer else { return 0 }
        return head.status
    }

    @Test func aRequestGetsItsOwnDeadlineOnAKeptAliveConnection() async throws {
        let server = try await server()
        defer { server.close(promise: nil) }
        let pool = HTTP1Pool(host: "127.0.0.1", port: try #require(server.localAddress?.port))
        let head = try #require(HTTP1Pool.RequestHead(method: .POST, uri: "/", fields: [("Host", "127.0.0.1")]))
        let request = try #require(head.request(adding: [], body: []))
        // Answered; its connection is kept for the next request, with a timer still set for this one's deadline.
        #expect(status(try await pool.execute(request, timeout: .milliseconds(300))) == 200)
        // Not answered: it fails at its own deadline, not at the earlier one the timer was first set for.
        let started = ContinuousClock.now
        let failure = await #expect(throws: HTTP1Pool.PoolError.self) { try await pool.execute(request, timeout: .seconds(2)) }
        #expect(ContinuousClock.now - started >= .seconds(2), "failed before its own deadline")
        #expect(failure?.description.contains("no answer within") == true)
        // That connection was closed: the next request goes on a new one, which answers.
        #expect(status(try await pool.execute(request, timeout: .seconds(5))) == 200)
        // A shorter deadline than the one the connection's timer is set for is kept too.
        let shorter = ContinuousClock.now
        await #expect(throws: HTTP1Pool.PoolError.self) { try await pool.execute(request, timeout: .milliseconds(300)) }
        #expect(ContinuousClock.now - shorter < .seconds(2), "failed only at the earlier request's later deadline")
    }

    /// A server that sends more after its answer to the first request
    /// (`extra`: another answer, part of one, a stray line end), and
    /// answers every later one plainly.
    final class AnswersTwice: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        final class Count: Sendable {
            let value = Mutex(0)
            let connections = Mutex(0)
        }
        let requests: Count
        let extra: String
        var received = ""
        init(requests: Count, extra: String) {
            self.requests = requests
            self.extra = extra
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += String(buffer: unwrapInboundIn(data))
            guard received.contains("\r\n\r\n") else { return }
            received = ""
            let first = requests.value.withLock { count in defer { count += 1 }; return count == 0 }
            let answer = first
                ? "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n\"first\"" + extra
                : "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n\"second\""
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
        }
    }

    /// An answer nobody asked for is never taken as the next request's:
    /// the connection it came on is not used again.
    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n\"smuggled\"",  // a whole answer
        "HTTP/1.1 200 OK\r\nX-Part: ",  // part of one
        "\r\n",  // a stray line end
    ])
    func anUnaskedForAnswerIsNotTheNextRequestsAnswer(extra: String) async throws {
        let requests = AnswersTwice.Count()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                requests.connections.withLock { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AnswersTwice(requests: requests, extra: extra)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let pool = HTTP1Pool(host: "127.0.0.1", port: try #require(server.localAddress?.port))
        let head = try #require(HTTP1Pool.RequestHead(method: .POST, uri: "/", fields: [("Host", "127.0.0.1")]))
        let request = try #require(head.request(adding: [], body: []))
        func body(_ answer: HTTP1Pool.Answer) -> String {
            guard case .complete(_, let bytes) = answer else { return "" }
            return String(buffer: bytes)
        }
        #expect(body(try await pool.execute(request, timeout: .seconds(5))) == #""first""#)
        #expect(body(try await pool.execute(request, timeout: .seconds(5))) == #""second""#)
        #expect(requests.value.withLock { $0 } == 2)
        #expect(requests.connections.withLock { $0 } == 2, "the connection with the unasked-for answer was used again")
    }

    /// Answers every request with an event stream in chunks, ended each time.
    final class Streams: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var received = ""
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received += String(buffer: unwrapInboundIn(data))
            guard received.contains("\r\n\r\n") else { return }
            received = ""
            context.write(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream\r\nTransfer-Encoding: chunked\r\n\r\n")), promise: nil)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "9\r\ndata: a\n\n\r\n")), promise: nil)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "9\r\ndata: b\n\n\r\n0\r\n\r\n")), promise: nil)
        }
    }

    /// An event stream comes as a stream (its type in any case), whole and
    /// in order, and its connection serves the next request once it ends.
    @Test func anEventStreamComesAsItIsReadAndFreesItsConnection() async throws {
        let connections = AnswersTwice.Count()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                connections.connections.withLock { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Streams()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let pool = HTTP1Pool(host: "127.0.0.1", port: try #require(server.localAddress?.port))
        let head = try #require(HTTP1Pool.RequestHead(method: .POST, uri: "/", fields: [("Host", "127.0.0.1")]))
        let request = try #require(head.request(adding: [], body: []))
        for _ in 0..<2 {
            guard case .streaming(let head, let body) = try await pool.execute(request, timeout: .seconds(5)) else {
                Issue.record("not answered as a stream")
                return
            }
            #expect(head.status == 200)
            var text = ""
            for try await part in body { text += String(buffer: part) }
            #expect(text == "data: a\n\ndata: b\n\n")
        }
        #expect(connections.connections.withLock { $0 } == 1, "the stream's connection was not used again")
    }
}
