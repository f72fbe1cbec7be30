import Foundation
import Logging
import MCPWire

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
public actor UpstreamClient {
    public enum Status: Sendable, Equatable {
        case connecting
        case ready
        case unavailable(String)
    }

    public nonisolated let serverID: String
    let makeTransport: @Sendable () -> any MessageTransport
    let connectTimeout: Duration
    let logger: Logger
    let onEvent: @Sendable (UpstreamEvent) -> Void

    public private(set) var status: Status = .connecting
    public private(set) var initializeResult: JSON?
    private var transport: (any MessageTransport)?
    private var nextID = 1
    private var pending: [Int: Pending] = [:]
    private var progressTokens: [String: (original: JSON, requestID: Int)] = [:]
    private var readyWaiters: [CheckedContinuation<Void, Never>] = []
    private var generation = 0

    struct Pending {
        var continuation: CheckedContinuation<JSONRPCMessage, any Error>
        var sink: CallSink
        var progressToken: String?
        var timer: Task<Void, Never>?
        var started: ContinuousClock.Instant
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

    enum LoopEvent: Sendable {
        case message(InboundMessage)
        case closed((any Error)?)
    }

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
        await transport?.close()
        transport = nil
        failAll(TransportError("portal shutting down"))
    }

    private func connectAndServe() async {
        generation += 1
        status = .connecting
        let transport = makeTransport()
        self.transport = transport
        let (events, continuation) = AsyncStream<LoopEvent>.makeStream()
        let serve = Task { [weak self] in
            for await event in events {
                guard let self else { return }
                if case .closed = event { await self.closed(); continuation.finish(); return }
                if case .message(let inbound) = event { await self.handle(inbound) }
            }
        }
        do {
            try await transport.connect(
                onMessage: { continuation.yield(.message($0)) },
                onClose: { continuation.yield(.closed($0)) }
            )
            try await handshake(transport)
            await refreshTools()
            markReady()
        } catch {
            markUnavailable("\(error)")
            continuation.finish()
            await transport.close()
            serve.cancel()
            return
        }
        await withTaskCancellationHandler {
            await serve.value
        } onCancel: {
            continuation.finish()
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
        initializeResult = result
        if let version = result["protocolVersion"]?.stringValue, let http = transport as? HTTPTransport {
            http.didInitialize(protocolVersion: version)
        }
        try await transport.send(.notification(method: MCP.Method.initialized))
    }

    /// The server's tools, every page, as last fetched.
    public private(set) var tools: [JSON] = []

    /// Fetches every page of tools/list again.
    public func refreshTools() async {
        guard initializeResult?["capabilities"]?["tools"] != nil else {
            tools = []
            return
        }
        do {
            // Called while connecting too, before the client counts as ready.
            tools = try await listAll(method: MCP.Method.toolsList, key: "tools", requireReady: false)
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
        status = .ready
        for waiter in readyWaiters { waiter.resume() }
        readyWaiters = []
        onEvent(.ready(initializeResult: initializeResult ?? .null))
        logger.info("upstream ready", metadata: ["upstream.id": "\(serverID)"])
    }

    private func markUnavailable(_ reason: String) {
        if case .unavailable = status {} else {
            logger.warning("upstream unavailable", metadata: ["upstream.id": "\(serverID)", "error": "\(reason)"])
        }
        status = .unavailable(reason)
        for waiter in readyWaiters { waiter.resume() }
        readyWaiters = []
        onEvent(.unavailable(reason: reason))
    }

    /// Waits until the first connection attempt has finished either way.
    public func waitUntilSettled() async {
        if status != .connecting { return }
        await withCheckedContinuation { readyWaiters.append($0) }
    }

    /// Sends a request and returns the server's response (a result or an
    /// error response). Throws a ``JSONRPCError`` when the server is
    /// unavailable or does not answer within `timeout`.
    public func request(method: String, params: JSON?, sink: CallSink = .none, timeout: Duration = .seconds(30)) async throws -> JSONRPCMessage {
        try await send(method: method, params: params, sink: sink, timeout: timeout, requireReady: true)
    }

    private func send(method: String, params: JSON?, sink: CallSink, timeout: Duration, requireReady: Bool) async throws -> JSONRPCMessage {
        if requireReady {
            if status == .connecting { await waitUntilSettled() }
            guard status == .ready, transport != nil else {
                throw JSONRPCError.upstreamUnavailable("server \(serverID) is unavailable: \(statusReason)")
            }
        }
        guard let transport else { throw JSONRPCError.upstreamUnavailable("server \(serverID) is not connected") }
        let id = nextID
        nextID += 1
        var params = params
        var token: String?
        if let original = params?["_meta"]?["progressToken"] {
            let mapped = "\(serverID)-p\(id)"
            token = mapped
            progressTokens[mapped] = (original, id)
            var meta = params?["_meta"]?.objectValue ?? [:]
            meta["progressToken"] = .string(mapped)
            params?["_meta"] = .object(meta)
        }
        let message = JSONRPCMessage.request(id: .int(id), method: method, params: params)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let timer = Task { [weak self] in
                    try? await Task.sleep(for: timeout)
                    if !Task.isCancelled { await self?.timedOut(id, after: timeout) }
                }
                pending[id] = Pending(continuation: continuation, sink: sink, progressToken: token, timer: timer, started: .now)
                Task {
                    do {
                        try await transport.send(message)
                    } catch {
                        self.finish(id, with: .failure(JSONRPCError.upstreamUnavailable("server \(self.serverID): \(error)")))
                    }
                }
            }
        } onCancel: {
            Task { await self.cancel(id, reason: "the client cancelled the request") }
        }
    }

    private var statusReason: String {
        if case .unavailable(let reason) = status { return reason }
        return "\(status)"
    }

    private func finish(_ id: Int, with result: Result<JSONRPCMessage, any Error>) {
        guard let entry = pending.removeValue(forKey: id) else { return }
        entry.timer?.cancel()
        if let token = entry.progressToken { progressTokens[token] = nil }
        entry.continuation.resume(with: result)
    }

    private func timedOut(_ id: Int, after timeout: Duration) async {
        guard pending[id] != nil else { return }
        try? await transport?.send(.notification(method: MCP.Method.cancelled, params: ["requestId": .int(id), "reason": "timed out in mcp-portal"]))
        finish(id, with: .failure(JSONRPCError.upstreamUnavailable("server \(serverID) did not answer within \(timeout)")))
    }

    /// Cancels an in-flight request: tells the server and stops waiting.
    public func cancel(_ id: Int, reason: String) async {
        guard pending[id] != nil else { return }
        try? await transport?.send(.notification(method: MCP.Method.cancelled, params: ["requestId": .int(id), "reason": .string(reason)]))
        finish(id, with: .failure(JSONRPCError(code: -32800, message: "Request cancelled")))
    }

    private func failAll(_ error: any Error) {
        for id in Array(pending.keys) { finish(id, with: .failure(error)) }
    }

    private func handle(_ inbound: InboundMessage) async {
        let message = inbound.message
        switch message.kind {
        case .response, .errorResponse:
            guard let id = message.id?.intValue else { return }
            finish(id, with: .success(message))
        case .notification:
            await handleNotification(message)
        case .request:
            let relatedID = inbound.relatedRequestID?.intValue
            let sink = relatedID.flatMap { pending[$0]?.sink } ?? mostRecentSink()
            let transport = self.transport
            Task {
                var reply = await sink.request(message)
                reply.id = message.id
                try? await transport?.send(reply)
            }
        case nil:
            break
        }
    }

    /// A request over a transport that does not say which call it belongs to
    /// (stdio) goes to the caller of the newest call still waiting.
    private func mostRecentSink() -> CallSink {
        pending.values.max { $0.started < $1.started }?.sink ?? .none
    }

    private func handleNotification(_ message: JSONRPCMessage) async {
        switch message.method {
        case MCP.Method.progress:
            guard let token = message.params?["progressToken"]?.stringValue, let entry = progressTokens[token],
                  let call = pending[entry.requestID] else { return }
            var forwarded = message
            forwarded.params?["progressToken"] = entry.original
            await call.sink.notify(forwarded)
        case MCP.Method.cancelled:
            break
        case MCP.Method.toolsListChanged:
            await refreshTools()
            onEvent(.toolsChanged)
        case MCP.Method.resourcesListChanged:
            onEvent(.resourcesChanged)
        case MCP.Method.promptsListChanged:
            onEvent(.promptsChanged)
        default:
            // Logging tied to a running call goes to that call's client.
            if let related = message.params?["_meta"]?["relatedRequestId"]?.intValue, let call = pending[related] {
                await call.sink.notify(message)
            } else {
                onEvent(.notification(message))
            }
        }
    }

    /// Sends a notification upstream (roots/list_changed and the like).
    public func notify(_ message: JSONRPCMessage) async {
        guard status == .ready else { return }
        try? await transport?.send(message)
    }
}
