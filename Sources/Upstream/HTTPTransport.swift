import AsyncHTTPClient
import Foundation
import Logging
import MCPWire
import NIOCore
import NIOHTTP1

/// Talks to a remote MCP server over Streamable HTTP (2025-03-26 and later)
/// or the legacy HTTP+SSE transport (2024-11-05). In `auto` mode it tries
/// Streamable HTTP first and falls back to SSE when the server turns the
/// initialize POST away with 400, 404 or 405, as the spec's
/// backwards-compatibility section describes.
public final class HTTPTransport: MessageTransport, @unchecked Sendable {
    public let url: String
    public let headers: [String: String]
    let client: HTTPClient
    /// The fast path for plain-http servers (nil for https, or when a
    /// configured header could not be written safely: AsyncHTTPClient then
    /// refuses it with its own error).
    let pool: HTTP1Pool?
    /// What every POST on the fast path starts with.
    let poolHead: HTTP1Pool.RequestHead?
    let logger: Logger
    private let lock = NSLockish()
    private var mode: ServerMode
    private var sessionID: String?
    private var protocolVersion: String?
    private var onMessage: (@Sendable (InboundMessage) -> Void)?
    private var onClose: (@Sendable ((any Error)?) -> Void)?
    private var sseEndpoint: String?
    private var streams: [UUID: Task<Void, Never>] = [:]
    private var closed = false

    enum ServerMode { case auto, streamable, sse }

    /// How long one POST may take, connecting included (the HTTP client keeps
    /// retrying a refused connection until this deadline).
    let requestTimeout: TimeAmount

    public init(url: String, mode: String, headers: [String: String], requestTimeout: Duration = .seconds(30),
                client: HTTPClient = .shared, logger: Logger) {
        self.requestTimeout = .nanoseconds(Int64(requestTimeout.components.seconds) * 1_000_000_000 + requestTimeout.components.attoseconds / 1_000_000_000)
        self.url = url
        self.headers = headers
        // The path and query as written (percent-encoded, a trailing slash
        // kept); the host with an IPv6 address's brackets for Host, without
        // them to connect.
        if let parsed = URLComponents(string: url), parsed.scheme?.lowercased() == "http",
           let host = parsed.percentEncodedHost, !host.isEmpty {
            let port = parsed.port ?? 80
            let address = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            let head = Self.poolHead(host: host, port: port, path: parsed.percentEncodedPath, query: parsed.percentEncodedQuery, headers: headers)
            poolHead = head
            pool = head == nil ? nil : HTTP1Pool(host: address, port: port)
            if head == nil {
                logger.warning("a configured header cannot be written as it is; this server's requests go through the general HTTP client",
                               metadata: ["upstream.url": "\(Self.redacted(url))"])
            }
        } else {
            pool = nil
            poolHead = nil
        }
        self.client = client
        self.logger = logger
        self.mode = mode == "sse" ? .sse : mode == "streamable-http" ? .streamable : .auto
    }

    public func connect(
        onMessage: @escaping @Sendable (InboundMessage) -> Void,
        onClose: @escaping @Sendable ((any Error)?) -> Void
    ) async throws {
        let mode = lock.withLock {
            self.onMessage = onMessage
            self.onClose = onClose
            return self.mode
        }
        if mode == .sse { try await connectSSE() }
    }

    /// Called by the client once `initialize` has answered, so later requests
    /// carry `MCP-Protocol-Version`, and the GET stream can open.
    public func didInitialize(protocolVersion: String) {
        let (mode, hasSession) = lock.withLock { () -> (ServerMode, Bool) in
            self.protocolVersion = protocolVersion
            return (self.mode, self.sessionID != nil)
        }
        if mode == .streamable, hasSession { openServerStream() }
    }

    public func send(_ message: JSONRPCMessage) async throws {
        let mode = lock.withLock { self.mode }
        switch mode {
        case .sse: try await postSSE(message)
        case .streamable: try await postStreamable(message)
        case .auto:
            do {
                try await postStreamable(message)
                lock.withLock { self.mode = .streamable }
            } catch let error as FallbackToSSE {
                logger.info("upstream refused Streamable HTTP; trying legacy SSE", metadata: ["upstream.status": "\(error.status)"])
                lock.withLock { self.mode = .sse }
                try await connectSSE()
                try await postSSE(message)
            }
        }
    }

    public func close() async {
        let (tasks, session, version) = lock.withLock { () -> ([Task<Void, Never>], String?, String?) in
            closed = true
            onMessage = nil
            defer { streams = [:] }
            return (Array(streams.values), sessionID, protocolVersion)
        }
        tasks.forEach { $0.cancel() }
        pool?.close()
        if let session, lock.withLock({ mode }) == .streamable {
            // Tell the server the session is over; it may refuse (405), which is fine.
            var request = baseRequest(url)
            request.method = .DELETE
            request.headers.replaceOrAdd(name: MCP.Header.sessionID, value: session)
            if let version { request.headers.replaceOrAdd(name: MCP.Header.protocolVersion, value: version) }
            _ = try? await client.execute(request, timeout: .seconds(2))
        }
    }

    struct FallbackToSSE: Error { var status: UInt }

    /// A URL fit for logs and error messages: no user info, no query (either
    /// may hold a secret from `${env:...}`).
    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "(url)" }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return components.string ?? "(url)"
    }

    func baseRequest(_ url: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        return request
    }

    func deliver(_ bytes: [UInt8], related: JSON?) {
        bytes.withUnsafeBytes { deliver($0, related: related) }
    }

    /// The same over an answer's bytes in place.
    func deliver(_ bytes: UnsafeRawBufferPointer, related: JSON?) {
        guard let onMessage = lock.withLock({ self.onMessage }) else { return }
        switch Result(catching: { () throws(JSONRPCError) in try JSONRPCMessage.parse(bytes: bytes) }) {
        case .success(.single(let message)): onMessage(InboundMessage(message: message, relatedRequestID: related))
        case .success(.batch(let messages)): messages.forEach { onMessage(InboundMessage(message: $0, relatedRequestID: related)) }
        case .failure(let error): logger.warning("upstream sent a message that is not JSON-RPC", metadata: ["error": "\(error)"])
        }
    }

    func fail(_ error: any Error) {
        let onClose = lock.withLock { () -> (@Sendable ((any Error)?) -> Void)? in
            defer { self.onClose = nil }
            return closed ? nil : self.onClose
        }
        onClose?(error)
    }

    // MARK: Streamable HTTP

    /// What a POST came back with, from either HTTP client.
    struct PostAnswer {
        enum Body {
            case bytes(ByteBuffer)
            /// An event stream, read by the closure.
            case events(@Sendable (HTTPTransport, JSON?) async -> Void)
        }
        var status: UInt
        /// As sent (compare ignoring case).
        var contentType: String
        var sessionID: String?
        var body: Body
    }

    func postStreamable(_ message: JSONRPCMessage) async throws {
        let (session, version, mode) = lock.withLock { (sessionID, protocolVersion, self.mode) }
        let answer: PostAnswer
        do {
            answer = try await post(message.serialized(), session: session, version: version)
        } catch {
            // The server is gone: end this connection so the client marks the
            // server unavailable and reconnects with backoff.
            let failure = TransportError("POST \(Self.redacted(url)) failed: \(error)")
            if mode != .auto { fail(failure) }
            throw failure
        }
        if mode == .auto, message.method == MCP.Method.initialize, [400, 404, 405].contains(answer.status) {
            throw FallbackToSSE(status: answer.status)
        }
        try accept(answer, for: message, session: session)
    }

    /// Acts on what a POST came back with: session bookkeeping, errors, and
    /// the messages in the answer (plain JSON, or an event stream read aside).
    func accept(_ answer: PostAnswer, for message: JSONRPCMessage, session: String?) throws {
        let status = answer.status
        if status == 404, session != nil {
            let error = TransportError("upstream session expired (404)")
            fail(error)
            throw error
        }
        guard (200..<300).contains(status) else {
            var detail = ""
            if case .bytes(let bytes) = answer.body { detail = String(decoding: bytes.readableBytesView.prefix(4096), as: UTF8.self) }
            throw TransportError("upstream answered HTTP \(status): \(detail)")
        }
        if message.method == MCP.Method.initialize {
            // Settled before the answer is delivered: the client's handshake
            // continues at once and asks whether the server stream can open.
            lock.withLock {
                if let newSession = answer.sessionID { self.sessionID = newSession }
                if self.mode == .auto { self.mode = .streamable }
            }
        }
        if status == 202 { return }
        let related = message.id
        switch answer.body {
        case .events(let read):
            trackStream { transport in await read(transport, related) }
        case .bytes(let bytes) where answer.contentType.hasPrefixIgnoringASCIICase("application/json"):
            bytes.withUnsafeReadableBytes { deliver($0, related: related) }
        case .bytes:
            if message.kind == .request {
                throw TransportError("upstream answered with unexpected Content-Type \"\(answer.contentType)\"")
            }
        }
    }

    /// Starts a request on the pooled client without waiting for it: the
    /// answer is delivered from the event loop straight to the client's
    /// callbacks. Returns false where this path does not apply (https,
    /// before the transport is settled, initialize), so the caller sends the
    /// ordinary way.
    public func startRequest(_ message: JSONRPCMessage, onFailure: @escaping @Sendable (any Error) -> Void) -> Bool {
        guard let pool, message.kind == .request, message.method != MCP.Method.initialize else { return false }
        let (session, version, mode) = lock.withLock { (sessionID, protocolVersion, self.mode) }
        guard mode == .streamable else { return false }
        guard let request = poolRequest(message.serialized(), session: session, version: version) else { return false }
        pool.start(request, timeout: requestTimeout) { result in
            do {
                try self.accept(Self.postAnswer(try result.get()), for: message, session: session)
            } catch {
                if !(error is TransportError) { self.fail(TransportError("POST \(Self.redacted(self.url)) failed: \(error)")) }
                onFailure(error)
            }
        }
        return true
    }

    /// The fixed part of every POST on the fast path: the request line,
    /// Host (unless configured), the configured headers (but those the
    /// transport sets itself), Content-Type and Accept.
    static func poolHead(host: String, port: Int, path: String, query: String?, headers: [String: String]) -> HTTP1Pool.RequestHead? {
        let path = path.isEmpty ? "/" : path
        let own: Set<String> = ["content-type", "accept", "content-length", "transfer-encoding", "connection",
                                MCP.Header.sessionID.lowercased(), MCP.Header.protocolVersion.lowercased()]
        let configured = headers.sorted { $0.key < $1.key }.filter { !own.contains($0.key.lowercased()) }.map { (name: $0.key, value: $0.value) }
        var fields = configured.contains { $0.name.lowercased() == "host" } ? [] : [(name: "Host", value: port == 80 ? host : "\(host):\(port)")]
        fields += configured
        fields += [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
        return HTTP1Pool.RequestHead(method: .POST, uri: query.map { "\(path)?\($0)" } ?? path, fields: fields)
    }

    /// One POST on the fast path; nil when the session id or version the
    /// server gave could not be sent back safely.
    func poolRequest(_ body: [UInt8], session: String?, version: String?) -> HTTP1Pool.Request? {
        poolHead?.request(adding: [(MCP.Header.sessionID, session), (MCP.Header.protocolVersion, version)], body: body)
    }

    static func postAnswer(_ answer: HTTP1Pool.Answer) -> PostAnswer {
        switch answer {
        case .complete(let head, let body):
            return PostAnswer(status: UInt(head.status), contentType: head.contentType, sessionID: head.sessionID, body: .bytes(body))
        case .streaming(let head, let body):
            return PostAnswer(status: UInt(head.status), contentType: "text/event-stream", sessionID: head.sessionID,
                              body: .events { transport, related in await transport.readEvents(body, related: related) })
        }
    }

    /// POSTs one message: over the small pooled client for plain http, over
    /// AsyncHTTPClient for https.
    func post(_ bytes: [UInt8], session: String?, version: String?) async throws -> PostAnswer {
        if let pool {
            guard let request = poolRequest(bytes, session: session, version: version) else {
                throw TransportError("POST \(Self.redacted(url)): the server's session id or protocol version cannot be sent back in a header")
            }
            let answer = try await pool.execute(request, timeout: requestTimeout)
            return Self.postAnswer(answer)
        }
        var request = baseRequest(url)
        request.method = .POST
        request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        request.headers.replaceOrAdd(name: "Accept", value: "application/json, text/event-stream")
        if let session { request.headers.replaceOrAdd(name: MCP.Header.sessionID, value: session) }
        if let version { request.headers.replaceOrAdd(name: MCP.Header.protocolVersion, value: version) }
        request.body = .bytes(ByteBuffer(bytes: bytes))
        let response = try await client.execute(request, timeout: requestTimeout)
        let contentType = response.headers.first(name: "Content-Type") ?? ""
        let sessionID = response.headers.first(name: MCP.Header.sessionID)
        if contentType.hasPrefixIgnoringASCIICase("text/event-stream"), (200..<300).contains(response.status.code) {
            return PostAnswer(status: response.status.code, contentType: contentType, sessionID: sessionID,
                              body: .events { transport, related in await transport.readEvents(response.body, related: related) })
        }
        let body = try await response.body.collect(upTo: 64 << 20)
        return PostAnswer(status: response.status.code, contentType: contentType, sessionID: sessionID, body: .bytes(body))
    }

    /// Runs a stream reader that removes itself when done, so a long session
    /// does not keep one finished task per streamed answer.
    func trackStream(_ body: @escaping @Sendable (HTTPTransport) async -> Void) {
        let key = UUID()
        lock.withLock {
            streams[key] = Task { [weak self] in
                guard let self else { return }
                await body(self)
                _ = self.lock.withLock { self.streams.removeValue(forKey: key) }
            }
        }
    }

    func readEvents<Body: AsyncSequence>(_ body: Body, related: JSON?) async where Body.Element == ByteBuffer {
        var parser = SSEParser()
        do {
            for try await chunk in body {
                for event in try parser.feed(chunk.readableBytesView) where event.event == nil || event.event == "message" {
                    if event.data.isEmpty { continue }
                    deliver(Array(event.data.utf8), related: related)
                }
            }
        } catch {
            if !Task.isCancelled { logger.debug("upstream event stream ended", metadata: ["error": "\(error)"]) }
        }
    }

    func openServerStream() {
        let task = Task { [weak self] in
            guard let self else { return }
            var request = self.baseRequest(self.url)
            request.method = .GET
            request.headers.replaceOrAdd(name: "Accept", value: "text/event-stream")
            let (session, version) = self.lock.withLock { (self.sessionID, self.protocolVersion) }
            if let session { request.headers.replaceOrAdd(name: MCP.Header.sessionID, value: session) }
            if let version { request.headers.replaceOrAdd(name: MCP.Header.protocolVersion, value: version) }
            let response: HTTPClientResponse
            do {
                response = try await self.client.execute(request, timeout: .hours(24))
            } catch {
                if !Task.isCancelled { self.fail(TransportError("GET stream failed: \(error)")) }
                return
            }
            guard response.status == .ok, response.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true
            else { return }  // 405: the server has no such stream
            await self.readEvents(response.body, related: nil)
            // The server's own stream ended: it restarted or went away. Reconnect.
            if !Task.isCancelled { self.fail(TransportError("the server closed its event stream")) }
        }
        lock.withLock { streams[UUID()] = task }
    }

    // MARK: Legacy HTTP+SSE

    func connectSSE() async throws {
        var request = baseRequest(url)
        request.method = .GET
        request.headers.replaceOrAdd(name: "Accept", value: "text/event-stream")
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .hours(24))
        } catch {
            throw TransportError("GET \(Self.redacted(url)) failed: \(error)")
        }
        guard response.status == .ok else { throw TransportError("SSE endpoint answered HTTP \(response.status.code)") }
        let (endpoints, continuation) = AsyncStream<String>.makeStream()
        let base = URL(string: url)
        let task = Task { [weak self] in
            var parser = SSEParser()
            var error: (any Error)? = TransportError("SSE stream ended")
            do {
                for try await chunk in response.body {
                    for event in try parser.feed(chunk.readableBytesView) {
                        if event.event == "endpoint" {
                            // Only an endpoint on the server's own origin: the configured
                            // headers (credentials) are sent there.
                            let resolved = URL(string: event.data, relativeTo: base)?.absoluteURL
                            if let resolved, resolved.scheme == base?.scheme, resolved.host == base?.host, resolved.port == base?.port {
                                continuation.yield(resolved.absoluteString)
                            } else {
                                self?.logger.warning("SSE endpoint on another origin refused")
                                continuation.finish()
                            }
                        } else if event.event == nil || event.event == "message" {
                            self?.deliver(Array(event.data.utf8), related: nil)
                        }
                    }
                }
            } catch let thrown {
                error = thrown
            }
            continuation.finish()
            self?.fail(error ?? TransportError("SSE stream ended"))
        }
        lock.withLock { streams[UUID()] = task }
        var iterator = endpoints.makeAsyncIterator()
        guard let endpoint = await iterator.next() else { throw TransportError("SSE stream ended before the endpoint event") }
        lock.withLock { sseEndpoint = endpoint }
    }

    func postSSE(_ message: JSONRPCMessage) async throws {
        guard let endpoint = lock.withLock({ sseEndpoint }) else { throw TransportError("SSE endpoint not known") }
        var request = baseRequest(endpoint)
        request.method = .POST
        request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: message.serialized()))
        let response = try await client.execute(request, timeout: requestTimeout)
        guard (200..<300).contains(response.status.code) else {
            throw TransportError("SSE message endpoint answered HTTP \(response.status.code)")
        }
        _ = try? await response.body.collect(upTo: 1 << 20)
    }
}
