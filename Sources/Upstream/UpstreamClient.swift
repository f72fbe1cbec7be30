import Foundation
import Logging
import MCPWire
import Synchronization

/// Where messages that belong to one call go: progress and other
/// notifications about it, and requests the server makes while serving it
/// (sampling, elicitation, roots). The portal session behind the call
/// implements this.
public struct CallSink: Sendable {
    public var notify: @Sendable (JSONRPCMessage) async -> Void
    /// Answers a server-to-client request; the result is sent upstream.
    public var request: @Sendable (JSONRPCMessage) async -> JSONRPCMessage

    public init(
        notify: @escaping @Sendable (JSONRPCMessage) async -> Void,
        request: @escaping @Sendable (JSONRPCMessage) async -> JSONRPCMessage
    ) {
        self.notify = notify
        self.request = request
    }

    public static let none = CallSink(notify: { _ in }, request: { message in
        .error(id: message.id, JSONRPCError(code: JSONRPCError.methodNotFoundCode, message: "no client session can answer \(message.method ?? "")"))
    })
}

/// What an upstream client tells its owner.
public enum UpstreamEvent: Sendable {
    case ready(initializeResult: JSON)
    case unavailable(reason: String)
    case toolsChanged
    case resourcesChanged
    case promptsChanged
    /// A notification not tied to any call (logging, resource updates, ...).
    case notification(JSONRPCMessage)
}

/// One MCP client session to one upstream server: handshake, request ids,
/// timeouts, progress-token mapping, and reconnection with backoff.
///
/// The call path takes a lock for a moment and never hops between
/// executors: a response to a call that had nothing else in flight resumes
/// its caller straight from the transport. Everything else (progress,
/// server requests, and responses that must follow them) goes through one
/// ordered pump per connection, so a client sees a call's progress before
/// its result.
public final class UpstreamClient: Sendable {
    public enum Status: Sendable, Equatable {
        case connecting
        case ready
        case unavailable(String)
    }

    public let serverID: String
    let makeTransport: @Sendable () -> any MessageTransport
    let connectTimeout: Duration
    let logger: Logger
    let onEvent: @Sendable (UpstreamEvent) -> Void
    private let state = Mutex(State())

    struct State {
        var status: Status = .connecting
        var initializeResult: JSON?
        var tools: [JSON] = []
        var transport: (any MessageTransport)?
        var nextID = 1
        var pending: [Int: Pending] = [:]
        var progressTokens: [String: (original: JSON, requestID: Int)] = [:]
        var readyWaiters: [CheckedContinuation<Void, Never>] = []
        var pump: AsyncStream<LoopEvent>.Continuation?
    }

    struct Pending {
        /// Runs once, with the response or the failure.
        var completion: @Sendable (Result<JSONRPCMessage, any Error>) -> Void
        var sink: CallSink
        var progressToken: String?
        var started: ContinuousClock.Instant
        var deadline: ContinuousClock.Instant
        var timeout: Duration
        var method: String
        /// Something about this call went through the pump, so its response must too.
        var ordered = false
    }

    enum LoopEvent: Sendable {
        case message(InboundMessage)
        case closed((any Error)?)
    }

    public init(
        serverID: String,
        connectTimeout: Duration = .seconds(15),
        logger: Logger,
        onEvent: @escaping @Sendable (UpstreamEvent) -> Void = { _ in },
        makeTransport: @escaping @Sendable () -> any MessageTransport
    ) {
        self.serverID = serverID
        self.connectTimeout = connectTimeout
        self.logger = logger
        self.onEvent = onEvent
        self.makeTransport = makeTransport
    }

    public var status: Status { state.withLock { $0.status } }
    public var initializeResult: JSON? { state.withLock { $0.initializeResult } }
    /// The server's tools, every page, as last fetched.
    public var tools: [JSON] { state.withLock { $0.tools } }

    // MARK: Connection

    /// Keeps the connection up until the task is cancelled: connects,
    /// initializes, serves, and after a failure waits (1 s, doubling to 30 s)
    /// before trying again.
    public func run() async {
        var backoff: Duration = .seconds(1)
        while !Task.isCancelled {
            let started = ContinuousClock.now
            await connectAndServe()
            if Task.isCancelled { break }
            if ContinuousClock.now - started > .seconds(30) { backoff = .seconds(1) }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(30))
        }
        let transport = state.withLock { s -> (any MessageTransport)? in
            defer { s.transport = nil }
            return s.transport
        }
        await transport?.close()
        failAll(TransportError("portal shutting down"))
    }

    private func connectAndServe() async {
        let transport = makeTransport()
        let (events, pump) = AsyncStream<LoopEvent>.makeStream()
        state.withLock {
            $0.status = .connecting
            $0.transport = transport
            $0.pump = pump
        }
        let sweeper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.timeoutTick)
                self.expireOverdueCalls()
            }
        }
        defer { sweeper.cancel() }
        let serve = Task {
            for await event in events {
                switch event {
                case .closed:
                    self.closed()
                    pump.finish()
                    return
                case .message(let inbound):
                    await self.process(inbound)
                }
            }
        }
        do {
            try await transport.connect(
                onMessage: { [weak self] in self?.receive($0) },
                onClose: { pump.yield(.closed($0)) }
            )
            try await handshake(transport)
            await refreshTools()
            markReady()
        } catch {
            markUnavailable("\(error)")
            pump.finish()
            await transport.close()
            serve.cancel()
            return
        }
        await withTaskCancellationHandler {
            await serve.value
        } onCancel: {
            pump.finish()
        }
        await transport.close()
    }

    private func closed() {
        markUnavailable("connection closed")
        failAll(JSONRPCError.upstreamUnavailable("server \(serverID) disconnected during the call"))
    }

    private func handshake(_ transport: any MessageTransport) async throws {
        let params: JSON = [
            "protocolVersion": .string(MCP.latestProtocolVersion),
            "capabilities": ["sampling": [:], "elicitation": [:], "roots": ["listChanged": true]],
            "clientInfo": ["name": "mcp-portal", "version": "0.1.0"],
        ]
        let response = try await send(method: MCP.Method.initialize, params: params, sink: .none, timeout: connectTimeout, requireReady: false)
        guard let result = response.result else {
            throw TransportError("initialize failed: \(response.error?.text ?? "no result")")
        }
        state.withLock { $0.initializeResult = result }
        if let version = result["protocolVersion"]?.stringValue, let http = transport as? HTTPTransport {
            http.didInitialize(protocolVersion: version)
        }
        try await transport.send(.notification(method: MCP.Method.initialized))
    }

    /// Fetches every page of tools/list again.
    public func refreshTools() async {
        guard initializeResult?["capabilities"]?["tools"] != nil else {
            state.withLock { $0.tools = [] }
            return
        }
        do {
            // Called while connecting too, before the client counts as ready.
            let tools = try await listAll(method: MCP.Method.toolsList, key: "tools", requireReady: false)
            state.withLock { $0.tools = tools }
        } catch {
            logger.warning("tools/list failed", metadata: ["upstream.id": "\(serverID)", "error": "\(error)"])
        }
    }

    /// Follows `nextCursor` through every page of a list method.
    public func listAll(method: String, key: String) async throws -> [JSON] {
        try await listAll(method: method, key: key, requireReady: true)
    }

    private func listAll(method: String, key: String, requireReady: Bool) async throws -> [JSON] {
        var items: [JSON] = []
        var cursor: JSON?
        for _ in 0..<1000 {
            var params = JSONObject()
            if let cursor { params["cursor"] = cursor }
            let response = try await send(method: method, params: .object(params), sink: .none, timeout: connectTimeout, requireReady: requireReady)
            if let error = response.error { throw JSONRPCError(code: error["code"]?.intValue ?? -32603, message: error["message"]?.stringValue ?? "error") }
            items += response.result?[key]?.arrayValue ?? []
            cursor = response.result?["nextCursor"]
            if cursor == nil || cursor == .null { break }
        }
        return items
    }

    private func markReady() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.status = .ready
            defer { s.readyWaiters = [] }
            return s.readyWaiters
        }
        // The owner hears first, so whoever waited sees the new state.
        onEvent(.ready(initializeResult: initializeResult ?? .null))
        logger.info("upstream ready", metadata: ["upstream.id": "\(serverID)"])
        waiters.forEach { $0.resume() }
    }

    private func markUnavailable(_ reason: String) {
        let (waiters, wasUnavailable) = state.withLock { s -> ([CheckedContinuation<Void, Never>], Bool) in
            let was: Bool
            if case .unavailable = s.status { was = true } else { was = false }
            s.status = .unavailable(reason)
            defer { s.readyWaiters = [] }
            return (s.readyWaiters, was)
        }
        if !wasUnavailable {
            logger.warning("upstream unavailable", metadata: ["upstream.id": "\(serverID)", "error": "\(reason)"])
        }
        onEvent(.unavailable(reason: reason))
        waiters.forEach { $0.resume() }
    }

    /// Waits until the first connection attempt has finished either way.
    public func waitUntilSettled() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let settled = state.withLock { s -> Bool in
                if s.status != .connecting { return true }
                s.readyWaiters.append(waiter)
                return false
            }
            if settled { waiter.resume() }
        }
    }

    // MARK: Calls

    /// Sends a request and returns the server's response (a result or an
    /// error response). Throws a ``JSONRPCError`` when the server is
    /// unavailable or does not answer within `timeout`.
    /// `registered` learns the upstream request id, which ``cancel(_:reason:)`` takes.
    public func request(method: String, params: JSON?, sink: CallSink = .none, timeout: Duration = .seconds(30),
                        registered: (@Sendable (Int) -> Void)? = nil) async throws -> JSONRPCMessage {
        try await send(method: method, params: params, sink: sink, timeout: timeout, requireReady: true, registered: registered)
    }

    /// The same for callers on an event loop: `completion` runs once, with
    /// the response or the error, on the thread that has it (for a
    /// plain-http server, the connection's event loop). No task is made
    /// on the way unless the server is still connecting.
    public func start(method: String, params: JSON?, sink: CallSink = .none, timeout: Duration = .seconds(30),
                      registered: (@Sendable (Int) -> Void)? = nil,
                      completion: @escaping @Sendable (Result<JSONRPCMessage, any Error>) -> Void) {
        guard status != .connecting else {
            Task {
                await waitUntilSettled()
                self.begin(method: method, params: params, sink: sink, timeout: timeout, requireReady: true, registered: registered, completion: completion)
            }
            return
        }
        begin(method: method, params: params, sink: sink, timeout: timeout, requireReady: true, registered: registered, completion: completion)
    }

    private func send(method: String, params: JSON?, sink: CallSink, timeout: Duration, requireReady: Bool,
                      registered: (@Sendable (Int) -> Void)? = nil) async throws -> JSONRPCMessage {
        if requireReady, status == .connecting { await waitUntilSettled() }
        // The upstream id, and whether the task was cancelled before it was known.
        let call = Mutex<(id: Int?, cancelled: Bool)>((nil, false))
        let cancel: @Sendable (Int) -> Void = { id in Task { await self.cancel(id, reason: "the client cancelled the request") } }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                begin(method: method, params: params, sink: sink, timeout: timeout, requireReady: requireReady, registered: { id in
                    let cancelled = call.withLock { state in
                        state.id = id
                        return state.cancelled
                    }
                    registered?(id)
                    if cancelled { cancel(id) }
                }, completion: { continuation.resume(with: $0) })
            }
        } onCancel: {
            let id = call.withLock { state in
                state.cancelled = true
                return state.id
            }
            if let id { cancel(id) }
        }
    }

    /// Registers the call (id, deadline, progress token) and starts it on
    /// the transport; `finish` completes it exactly once. `registered` runs
    /// under the client's lock, before anything can finish the call, so
    /// what it records is always cleared by the completion after it; it
    /// must not call back into this client.
    private func begin(method: String, params: JSON?, sink: CallSink, timeout: Duration, requireReady: Bool,
                       registered: (@Sendable (Int) -> Void)?,
                       completion: @escaping @Sendable (Result<JSONRPCMessage, any Error>) -> Void) {
        var params = params
        let progressOriginal = params?["_meta"]?["progressToken"]
        let registration = state.withLock { s -> Result<(Int, any MessageTransport), JSONRPCError> in
            if requireReady, s.status != .ready {
                let reason: String
                if case .unavailable(let text) = s.status { reason = text } else { reason = "connecting" }
                return .failure(.upstreamUnavailable("server \(serverID) is unavailable: \(reason)"))
            }
            guard let transport = s.transport else { return .failure(.upstreamUnavailable("server \(serverID) is not connected")) }
            let id = s.nextID
            s.nextID += 1
            var token: String?
            if let progressOriginal {
                token = "\(serverID)-p\(id)"
                s.progressTokens[token!] = (progressOriginal, id)
            }
            let now = ContinuousClock.now
            s.pending[id] = Pending(completion: completion, sink: sink, progressToken: token, started: now, deadline: now + timeout,
                                    timeout: timeout, method: method)
            registered?(id)
            return .success((id, transport))
        }
        let id: Int, transport: any MessageTransport
        switch registration {
        case .success(let registered): (id, transport) = registered
        case .failure(let error): return completion(.failure(error))
        }
        if progressOriginal != nil {
            var meta = params?["_meta"]?.objectValue ?? [:]
            meta["progressToken"] = .string("\(serverID)-p\(id)")
            params?["_meta"] = .object(meta)
        }
        let message = JSONRPCMessage.request(id: .int(id), method: method, params: params)
        let failed: @Sendable (any Error) -> Void = { error in
            self.finish(id, with: .failure(JSONRPCError.upstreamUnavailable("server \(self.serverID): \(error)")))
        }
        // Plain-http servers: the request starts here and its answer comes
        // back from the event loop, with no task in between.
        if (transport as? HTTPTransport)?.startRequest(message, onFailure: failed) == true { return }
        // The send runs beside the wait: a transport that blocks (a server
        // that holds an HTTP request open) cannot outlast the timeout.
        Task {
            do {
                try await transport.send(message)
            } catch {
                failed(error)
            }
        }
    }

    /// Completes a call once: later answers for it (a late response after a
    /// timeout) find nothing and are dropped.
    private func finish(_ id: Int, with result: Result<JSONRPCMessage, any Error>) {
        let completion = state.withLock { s -> (@Sendable (Result<JSONRPCMessage, any Error>) -> Void)? in
            guard let entry = s.pending.removeValue(forKey: id) else { return nil }
            if let token = entry.progressToken { s.progressTokens[token] = nil }
            return entry.completion
        }
        completion?(result)
    }

    /// Fails the calls whose time is up and tells the server to stop them.
    /// One sweep every tick of the connection's timer, instead of a timer per call.
    private func expireOverdueCalls() {
        let now = ContinuousClock.now
        let (overdue, transport) = state.withLock { s in
            (s.pending.filter { $0.value.deadline <= now }.map { ($0.key, $0.value.timeout, $0.value.method) }, s.transport)
        }
        for (id, timeout, method) in overdue {
            finish(id, with: .failure(JSONRPCError.upstreamUnavailable("server \(serverID) did not answer within \(timeout)")))
            // initialize is never cancelled (the spec forbids it); the connection is dropped instead.
            guard method != MCP.Method.initialize else { continue }
            Task { try? await transport?.send(.notification(method: MCP.Method.cancelled, params: ["requestId": .int(id), "reason": "timed out in mcp-portal"])) }
        }
    }

    /// How often overdue calls are looked for: timeouts fire up to this late.
    static let timeoutTick: Duration = .milliseconds(100)

    /// Cancels an in-flight request: tells the server and stops waiting.
    public func cancel(_ id: Int, reason: String) async {
        guard let transport = state.withLock({ s in s.pending[id] != nil ? s.transport : nil }) else { return }
        finish(id, with: .failure(JSONRPCError(code: -32800, message: "Request cancelled")))
        try? await transport.send(.notification(method: MCP.Method.cancelled, params: ["requestId": .int(id), "reason": .string(reason)]))
    }

    private func failAll(_ error: any Error) {
        for id in state.withLock({ Array($0.pending.keys) }) { finish(id, with: .failure(error)) }
    }

    // MARK: Inbound

    /// Called by the transport for every message. A response to a call with
    /// nothing queued ahead of it completes at once; the rest is pumped in order.
    private func receive(_ inbound: InboundMessage) {
        let message = inbound.message
        enum Route { case direct(Int), pump, drop }
        let route = state.withLock { s -> Route in
            guard s.pump != nil else { return .drop }
            switch message.kind {
            case .response, .errorResponse:
                guard let id = message.id?.intValue, let entry = s.pending[id] else { return .drop }
                return entry.ordered ? .pump : .direct(id)
            case .notification, .request:
                // Mark the call this belongs to, so its response keeps its place behind it.
                if let id = Self.relatedCall(message, inbound.relatedRequestID, in: s) { s.pending[id]?.ordered = true }
                return .pump
            case nil:
                return .drop
            }
        }
        switch route {
        case .direct(let id): finish(id, with: .success(message))
        case .pump: _ = state.withLock { $0.pump }?.yield(.message(inbound))
        case .drop: break
        }
    }

    private static func relatedCall(_ message: JSONRPCMessage, _ related: JSON?, in s: State) -> Int? {
        if let id = related?.intValue, s.pending[id] != nil { return id }
        if message.method == MCP.Method.progress, let token = message.params?["progressToken"]?.stringValue {
            return s.progressTokens[token]?.requestID
        }
        if let id = message.params?["_meta"]?["relatedRequestId"]?.intValue, s.pending[id] != nil { return id }
        // A request or log line the transport cannot place (stdio, legacy SSE,
        // the GET stream) belongs to a call only when exactly one is running:
        // a guess could show one session's data to another.
        if message.kind == .request || message.method == MCP.Method.message, s.pending.count == 1 { return s.pending.first?.key }
        return nil
    }

    private func process(_ inbound: InboundMessage) async {
        let message = inbound.message
        switch message.kind {
        case .response, .errorResponse:
            if let id = message.id?.intValue { finish(id, with: .success(message)) }
        case .notification:
            await handleNotification(message, related: inbound.relatedRequestID)
        case .request:
            // Unplaceable requests are answered "method not found" (CallSink.none).
            let (sink, transport) = state.withLock { s -> (CallSink, (any MessageTransport)?) in
                let id = Self.relatedCall(message, inbound.relatedRequestID, in: s)
                return (id.flatMap { s.pending[$0]?.sink } ?? .none, s.transport)
            }
            Task {
                var reply = await sink.request(message)
                reply.id = message.id
                try? await transport?.send(reply)
            }
        case nil:
            break
        }
    }

    private func handleNotification(_ message: JSONRPCMessage, related: JSON?) async {
        switch message.method {
        case MCP.Method.progress:
            let found = state.withLock { s -> (JSON, CallSink)? in
                guard let token = message.params?["progressToken"]?.stringValue, let entry = s.progressTokens[token],
                      let call = s.pending[entry.requestID] else { return nil }
                return (entry.original, call.sink)
            }
            guard let (original, sink) = found else { return }
            var forwarded = message
            forwarded.params?["progressToken"] = original
            await sink.notify(forwarded)
        case MCP.Method.cancelled:
            break
        case MCP.Method.toolsListChanged:
            // Not awaited here: the refresh's own answer comes through this pump.
            Task {
                await self.refreshTools()
                self.onEvent(.toolsChanged)
            }
        case MCP.Method.resourcesListChanged:
            onEvent(.resourcesChanged)
        case MCP.Method.promptsListChanged:
            onEvent(.promptsChanged)
        default:
            // Logging tied to a running call goes to that call's client only:
            // the transport says which (Streamable HTTP), or the message does.
            let sink = state.withLock { s -> CallSink? in
                guard let id = Self.relatedCall(message, related, in: s) else { return nil }
                return s.pending[id]?.sink
            }
            if let sink {
                await sink.notify(message)
            } else if message.method == MCP.Method.message {
                // A server's log line outside any call would reach every session: keep it in the portal's log.
                logger.debug("upstream log message", metadata: ["upstream.id": "\(serverID)", "mcp.log": "\(message.params?["data"]?.text ?? "")"])
            } else {
                onEvent(.notification(message))
            }
        }
    }

    /// Sends a notification upstream (roots/list_changed and the like).
    public func notify(_ message: JSONRPCMessage) async {
        guard let transport = state.withLock({ s in s.status == .ready ? s.transport : nil }) else { return }
        try? await transport.send(message)
    }
}
