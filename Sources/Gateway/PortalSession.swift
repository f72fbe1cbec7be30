import CodeMode
import Foundation
import Logging
import MCPWire
import PortalCore
import Synchronization
import Upstream

/// One client's MCP session with a portal: negotiation, the servers this
/// session has turned on, routing of every method, and the requests the
/// portal makes of the client on behalf of a server. Its few pieces of
/// state sit behind a lock held for a moment, so concurrent calls of one
/// session run side by side without hopping executors.
public final class PortalSession: Sendable {
    public let id: String
    public let portal: PortalDefinition
    public let principal: Principal
    /// Code Mode sessions see two tools that run code instead of every tool.
    public let codeMode: Bool
    let gateway: Gateway
    let outbound: any SessionOutbound
    let state: Mutex<State>

    struct State {
        var protocolVersion: String?
        var initialized = false
        /// Servers turned on for this session (`portal_toggle_servers`).
        var enabledServers: Set<String>
        var clientRequests: [String: CheckedContinuation<JSONRPCMessage, Never>] = [:]
        var nextClientRequest = 1
        /// Calls forwarded upstream, by the client's request id: which server
        /// and which upstream id, so `notifications/cancelled` can reach it.
        var inFlight: [JSON: (client: UpstreamClient, id: Int)] = [:]
        var subscriptions: Set<String> = []
        var listener: UUID?
        /// Its opening is audited (closing is audited only then).
        var opened = false
        var closed = false
        /// What the client said it can do in `initialize` (sampling, elicitation, roots).
        var clientCapabilities: JSON?
        /// Code Mode executions running, by the client's request id.
        var executions: [JSON: ExecutionCancellation] = [:]
    }

    func inFlightCall(_ id: JSON) -> (client: UpstreamClient, id: Int)? { state.withLock { $0.inFlight[id] } }

    /// The protocol version agreed in `initialize`, nil before it.
    public var protocolVersion: String? { state.withLock { $0.protocolVersion } }
    private var enabledServers: Set<String> { state.withLock { $0.enabledServers } }

    /// Portal tool names; they never collide with `{server}_{tool}` names
    /// because no server id is `portal`.
    static let listServersTool = "portal_list_servers"
    static let toggleServersTool = "portal_toggle_servers"
    static let pageSize = 1000

    init(gateway: Gateway, portal: PortalDefinition, principal: Principal, id: String, codeMode: Bool, outbound: any SessionOutbound) {
        self.gateway = gateway
        self.portal = portal
        self.principal = principal
        self.codeMode = codeMode
        self.id = id
        self.outbound = outbound
        self.state = Mutex(State(enabledServers: Set(portal.servers)))
    }

    /// Starts relaying list changes and server notifications to the client.
    /// The pool holds the session until ``close()`` removes the listener.
    /// (No weak references to a session anywhere: one would move its
    /// reference counts to a side table, slower on every retain, and a
    /// session is retained many times in every call.)
    public func start() {
        state.withLock { s in
            guard s.listener == nil, !s.closed else { return }
            s.listener = gateway.pool.addListener { [self] server, event in
                Task { await self.relay(server: server, event: event) }
            }
        }
    }

    public func close() async {
        let (listener, tasks, waiters, executions, opened) = state.withLock { s in
            defer {
                s.closed = true
                s.listener = nil
                s.inFlight = [:]
                s.clientRequests = [:]
                s.executions = [:]
            }
            return (s.listener, Array(s.inFlight.values), Array(s.clientRequests.values), Array(s.executions.values), s.opened && !s.closed)
        }
        for execution in executions { execution.cancel() }
        if let listener { gateway.pool.removeListener(listener) }
        for call in tasks { await call.client.cancel(call.id, reason: "the session closed") }
        for continuation in waiters {
            continuation.resume(returning: .error(id: nil, JSONRPCError(code: -32000, message: "session closed")))
        }
        guard opened else { return }
        try? await gateway.record(AuditEvent(kind: .sessionClose, portal: portal.id, sessionID: id, principal: principal.subject, outcome: .ok))
    }

    // MARK: Dispatch

    /// Handles one message from the client. Requests get a response;
    /// notifications and responses return nil.
    public func handle(_ message: JSONRPCMessage) async -> JSONRPCMessage? {
        switch message.kind {
        case .request:
            let id = message.id ?? .null
            do {
                return try await handleRequest(message)
            } catch let error as JSONRPCError {
                return .error(id: id, error)
            } catch {
                return .error(id: id, .internalError("\(error)"))
            }
        case .notification:
            await handleNotification(message)
            return nil
        case .response, .errorResponse:
            if let key = message.id?.stringValue, let continuation = state.withLock({ $0.clientRequests.removeValue(forKey: key) }) {
                continuation.resume(returning: message)
            }
            return nil
        case nil:
            return .error(id: message.id, .invalidRequest("not a request, notification or response"))
        }
    }

    /// The same for callers on an event loop: `completion` runs once with
    /// the response (nil for notifications and responses). A call of an
    /// upstream tool starts here and completes from the thread that has
    /// its answer, with no task on the way; everything else runs in a task.
    public func handle(_ message: JSONRPCMessage, completion: @escaping @Sendable (JSONRPCMessage?) -> Void) {
        if message.kind == .request, message.method == MCP.Method.toolsCall, !codeMode, protocolVersion != nil,
           let params = message.params?.objectValue, let name = try? Self.toolName(params), !Self.isPortalTool(name) {
            let id = message.id ?? .null
            startInvoke(name: name, params: params, downstreamID: id, relatedTo: id, executionID: nil) { result in
                switch result {
                case .success(let response): completion(response)
                case .failure(let error): completion(.error(id: id, error))
                }
            }
            return
        }
        Task { completion(await handle(message)) }
    }

    func handleRequest(_ message: JSONRPCMessage) async throws -> JSONRPCMessage {
        let id = message.id ?? .null
        let method = message.method ?? ""
        if method != MCP.Method.initialize, method != MCP.Method.ping, protocolVersion == nil {
            throw JSONRPCError.invalidRequest("the session is not initialized; send initialize first")
        }
        if let params = message.params, params.objectValue == nil {
            throw JSONRPCError.invalidParams("params must be an object")
        }
        let params = message.params?.objectValue ?? [:]
        switch method {
        case MCP.Method.initialize: return .response(id: id, result: try await initialize(params))
        case MCP.Method.ping: return .response(id: id, result: [:])
        case MCP.Method.toolsList: return .response(id: id, result: try await listTools(params))
        case MCP.Method.toolsCall: return try await callTool(message, params: params)
        case MCP.Method.resourcesList:
            return .response(id: id, result: try await listMerged(MCP.Method.resourcesList, key: "resources", capability: "resources", params: params) { server, item in
                Self.prefixURI(item, key: "uri", server: server)
            })
        case MCP.Method.resourceTemplatesList:
            return .response(id: id, result: try await listMerged(MCP.Method.resourceTemplatesList, key: "resourceTemplates", capability: "resources", params: params) { server, item in
                Self.prefixURI(item, key: "uriTemplate", server: server)
            })
        case MCP.Method.promptsList:
            return .response(id: id, result: try await listMerged(MCP.Method.promptsList, key: "prompts", capability: "prompts", params: params) { server, item in
                var item = item
                if let name = item["name"]?.stringValue { item["name"] = .string(ToolNaming.exposedName(server: server, tool: name)) }
                return item
            })
        case MCP.Method.resourcesRead, MCP.Method.resourcesSubscribe, MCP.Method.resourcesUnsubscribe:
            return try await routeByURI(message, params: params)
        case MCP.Method.promptsGet:
            return try await routePrompt(message, params: params)
        case MCP.Method.completionComplete:
            return try await routeCompletion(message, params: params)
        case MCP.Method.loggingSetLevel:
            for server in activeServers(capability: "logging") {
                _ = try? await server.client.request(method: method, params: message.params, timeout: gateway.timeout(for: server))
            }
            return .response(id: id, result: [:])
        default:
            throw JSONRPCError.methodNotFound(method)
        }
    }

    func handleNotification(_ message: JSONRPCMessage) async {
        switch message.method {
        case MCP.Method.initialized:
            state.withLock { $0.initialized = true }
        case MCP.Method.cancelled:
            guard let requestID = message.params?["requestId"] else { return }
            if let execution = state.withLock({ $0.executions[requestID] }) { execution.cancel() }
            if let call = state.withLock({ $0.inFlight[requestID] }) {
                let reason = message.params?["reason"]?.stringValue ?? "cancelled by the client"
                await call.client.cancel(call.id, reason: reason)
            }
        case MCP.Method.rootsListChanged:
            for server in activeServers(capability: nil) { await server.client.notify(message) }
        default:
            break
        }
    }

    // MARK: Lifecycle

    func initialize(_ params: JSONObject) async throws -> JSON {
        guard let requested = params["protocolVersion"]?.stringValue else {
            throw JSONRPCError.invalidParams("initialize needs a protocolVersion string")
        }
        let version = MCP.supportedProtocolVersions.contains(requested) ? requested : MCP.latestProtocolVersion
        state.withLock {
            $0.protocolVersion = version
            $0.clientCapabilities = params["capabilities"]
        }
        try await gateway.record(AuditEvent(kind: .sessionOpen, portal: portal.id, sessionID: id, principal: principal.subject,
                                            method: MCP.Method.initialize, outcome: .ok))
        let closedMeanwhile = state.withLock { s -> Bool in
            s.opened = true
            return s.closed
        }
        if closedMeanwhile {
            // Closed (its stream dropped) while the opening was recorded: close() skipped the closing record.
            try? await gateway.record(AuditEvent(kind: .sessionClose, portal: portal.id, sessionID: id, principal: principal.subject, outcome: .ok))
        }
        // Only an opened session listens to the pool (which holds it until close()).
        start()
        var instructions = codeMode
            ? "mcp-portal \"\(portal.id)\" in Code Mode: find tools with \(CodeModeTools.search), then call them from JavaScript with \(CodeModeTools.execute)."
            : "mcp-portal \"\(portal.id)\": tools of several servers, named {server}_{tool}. "
                + "Use \(Self.listServersTool) to see the servers and \(Self.toggleServersTool) to turn some off for this session."
        for server in portal.servers.compactMap({ gateway.pool.state($0) }) {
            if let text = server.initializeResult?["instructions"]?.stringValue, !text.isEmpty {
                instructions += "\n\n[\(server.id)] \(text)"
            }
        }
        return [
            "protocolVersion": .string(version),
            "capabilities": mergedCapabilities(),
            "serverInfo": ["name": "mcp-portal", "title": .string("mcp-portal: \(portal.id)"), "version": "0.1.0"],
            "instructions": .string(instructions),
        ]
    }

    /// The portal's capabilities: tools always (the portal has its own), and
    /// each other capability when a server of the portal has it. A server
    /// that has not connected yet counts as having them all, so a session
    /// opened early is not left without them.
    func mergedCapabilities() -> JSON {
        var capabilities: JSONObject = ["tools": ["listChanged": true]]
        let known = portal.servers.compactMap { gateway.pool.state($0) }
        func anyServer(_ check: (JSON) -> Bool) -> Bool {
            known.contains { server in server.initializeResult.map { check($0["capabilities"] ?? [:]) } ?? true }
        }
        if anyServer({ $0["resources"] != nil }) {
            var resources: JSONObject = ["listChanged": true]
            if anyServer({ $0["resources"]?["subscribe"] == .bool(true) }) { resources["subscribe"] = true }
            capabilities["resources"] = .object(resources)
        }
        if anyServer({ $0["prompts"] != nil }) { capabilities["prompts"] = ["listChanged": true] }
        if anyServer({ $0["logging"] != nil }) { capabilities["logging"] = [:] }
        if anyServer({ $0["completions"] != nil }) { capabilities["completions"] = [:] }
        return .object(capabilities)
    }

    // MARK: Tools

    func listTools(_ params: JSONObject) async throws -> JSON {
        var tools: [JSON]
        if codeMode {
            tools = CodeModeTools.definitions(gateway.config.codemode)
        } else {
            for server in portal.servers { await gateway.pool.refreshTools(server, notify: false) }
            let catalog = gateway.catalog(for: portal)
            tools = Self.portalTools
            tools += catalog.tools.filter { enabledServers.contains($0.server) }.map(\.definition)
        }
        try await gateway.record(AuditEvent(kind: .list, portal: portal.id, sessionID: id, principal: principal.subject,
                                            method: MCP.Method.toolsList, outcome: .ok))
        return try Self.page(tools, key: "tools", cursor: params["cursor"])
    }

    func callTool(_ message: JSONRPCMessage, params: JSONObject) async throws -> JSONRPCMessage {
        let id = message.id ?? .null
        let name = try Self.toolName(params)
        if codeMode {
            guard name == CodeModeTools.search || name == CodeModeTools.execute else {
                throw JSONRPCError(code: JSONRPCError.invalidParamsCode, message: "Unknown tool: \(name). In Code Mode, call tools from \(CodeModeTools.execute).")
            }
            return .response(id: id, result: try await runCode(params, mode: name == CodeModeTools.search ? .search : .execute, requestID: id))
        }
        if name == Self.listServersTool { return .response(id: id, result: listServers()) }
        if name == Self.toggleServersTool { return .response(id: id, result: await toggleServers(params["arguments"]?.objectValue ?? [:])) }
        return try await invoke(name: name, params: params, downstreamID: id, relatedTo: id, executionID: nil)
    }

    /// The tool name of a tools/call, after the checks every call gets.
    static func toolName(_ params: JSONObject) throws(JSONRPCError) -> String {
        guard let name = params["name"]?.stringValue else { throw JSONRPCError.invalidParams("tools/call needs a tool name") }
        if let arguments = params["arguments"], arguments.objectValue == nil, !arguments.isNull {
            throw JSONRPCError.invalidParams("arguments must be an object")
        }
        return name
    }

    static func isPortalTool(_ name: String) -> Bool { name == listServersTool || name == toggleServersTool }

    /// Calls one upstream tool by its portal name: the path every call
    /// takes, direct or from Code Mode. Policy (deny by hiding), then the
    /// call, then the audit record; the response carries `downstreamID`.
    func invoke(name: String, params: JSONObject, downstreamID: JSON, relatedTo: JSON, executionID: String?) async throws -> JSONRPCMessage {
        try await withCheckedThrowingContinuation { continuation in
            startInvoke(name: name, params: params, downstreamID: downstreamID, relatedTo: relatedTo, executionID: executionID) {
                continuation.resume(with: $0.mapError { $0 as any Error })
            }
        }
    }

    /// ``invoke`` for callers on an event loop: each step continues from the
    /// thread that finished the one before (the upstream connection, the
    /// audit writer), and `completion` runs once at the end.
    func startInvoke(name: String, params: JSONObject, downstreamID: JSON, relatedTo: JSON, executionID: String?,
                     completion: @escaping @Sendable (Result<JSONRPCMessage, JSONRPCError>) -> Void) {
        let catalog = gateway.catalog(for: portal)
        // Deny by hiding: a tool this session cannot see answers as unknown.
        guard let route = catalog.routes[name], enabledServers.contains(route.server),
              let server = gateway.pool.state(route.server) else {
            return completion(.failure(JSONRPCError(code: JSONRPCError.invalidParamsCode, message: "Unknown tool: \(name)")))
        }
        var event = AuditEvent(kind: .call, portal: portal.id, sessionID: id, principal: principal.subject,
                               server: route.server, tool: route.tool, method: MCP.Method.toolsCall, outcome: .ok)
        event.executionID = executionID
        let argumentText = params["arguments"].map { $0.serialized() } ?? []
        event.argumentBytes = argumentText.count
        event.argumentHash = Hex.sha256(argumentText)
        var upstreamParams = params
        upstreamParams["name"] = .string(route.tool)
        let gateway = self.gateway
        let call = event
        // No DLP rules at all: nothing to screen either way.
        let screening = screensAnything
        // The end of every path: the call's audit record, then the answer.
        let finish: @Sendable (AuditEvent, JSONRPCMessage) -> Void = { event, response in
            gateway.record(event) { error in completion(error.map { .failure($0) } ?? .success(response)) }
        }
        let send: @Sendable (JSONObject) -> Void = { [self] upstreamParams in
            let metrics = gateway.metrics(server: route.server, tool: route.tool)
            let started = ContinuousClock.now
            // The call's record and answer, once the result is screened.
            let answered: @Sendable (Result<JSONRPCMessage, JSONRPCError>) -> Void = { screened in
                let response: JSONRPCMessage
                switch screened {
                case .success(let value): response = value
                case .failure(let error): return completion(.failure(error))
                }
                var event = call
                event.durationMicros = Self.micros(ContinuousClock.now - started)
                metrics.calls.increment()
                metrics.latency.recordNanoseconds(event.durationMicros * 1000)
                if let error = response.error {
                    event.outcome = error["code"]?.intValue == JSONRPCError.dlpBlockedCode ? .denied : .error
                    event.error = error["message"]?.stringValue
                    metrics.errors.increment()
                } else if response.result?["isError"] == .bool(true) {
                    event.outcome = .error
                    event.error = "tool returned isError"
                }
                event.resultBytes = response.result?.serializedCount ?? 0
                finish(event, response)
            }
            startForward(downstreamID: downstreamID, relatedTo: relatedTo, to: server, method: MCP.Method.toolsCall,
                         params: .object(upstreamParams)) { response in
                guard screening, let result = response.result else { return answered(.success(response)) }
                self.startScreen(result, direction: .fromServer, server: route.server, tool: route.tool, method: MCP.Method.toolsCall,
                                 path: "$.result", executionID: executionID) { screened in
                    answered(screened.map { outcome in
                        var response = response
                        switch outcome {
                        case .pass(let result): response.result = result
                        case .blocked(let error): response = .error(id: downstreamID, error)
                        }
                        return response
                    })
                }
            }
        }
        guard screening, let arguments = params["arguments"] else { return send(upstreamParams) }
        let unscreened = upstreamParams
        startScreen(arguments, direction: .toServer, server: route.server, tool: route.tool, method: MCP.Method.toolsCall,
                    path: "$.arguments", executionID: executionID) { screened in
            switch screened {
            case .failure(let error):
                completion(.failure(error))
            case .success(.blocked(let error)):
                var event = call
                event.outcome = .denied
                event.error = error.message
                finish(event, .error(id: downstreamID, error))
            case .success(.pass(let arguments)):
                var upstreamParams = unscreened
                upstreamParams["arguments"] = arguments
                send(upstreamParams)
            }
        }
    }

    /// Sends a request to a server on behalf of the client: maps ids and
    /// progress tokens, relays what the server says about the call, honours
    /// cancellation, and always returns a response with the client's id.
    func forward(_ message: JSONRPCMessage, to server: UpstreamPool.ServerState, method: String, params: JSON?) async -> JSONRPCMessage {
        await forward(downstreamID: message.id ?? .null, relatedTo: message.id ?? .null, to: server, method: method, params: params)
    }

    /// As above for a call the portal makes itself: `downstreamID` keys the
    /// call (for cancellation); what the server says about it goes to the
    /// client's stream of `relatedTo`.
    func forward(downstreamID: JSON, relatedTo: JSON, to server: UpstreamPool.ServerState, method: String, params: JSON?) async -> JSONRPCMessage {
        await withCheckedContinuation { continuation in
            startForward(downstreamID: downstreamID, relatedTo: relatedTo, to: server, method: method, params: params) {
                continuation.resume(returning: $0)
            }
        }
    }

    /// ``forward`` with a completion, which runs once on the thread that has the answer.
    func startForward(downstreamID: JSON, relatedTo: JSON, to server: UpstreamPool.ServerState, method: String, params: JSON?,
                      completion: @escaping @Sendable (JSONRPCMessage) -> Void) {
        let serverID = server.id
        let timeout = gateway.timeout(for: server)
        let sink = CallSink(
            notify: { [outbound] note in await outbound.send(Self.namingServer(note, serverID), relatedTo: relatedTo) },
            request: { [self] request in
                await askClient(request, relatedTo: relatedTo, timeout: timeout)
            })
        // The closures hold the session until the call ends (its timeout bounds that).
        let client = server.client
        client.start(method: method, params: params, sink: sink, timeout: timeout, registered: { [self] upstreamID in
            state.withLock { $0.inFlight[downstreamID] = (client, upstreamID) }
        }, completion: { [self] result in
            state.withLock { _ = $0.inFlight.removeValue(forKey: downstreamID) }
            switch result {
            case .success(var response):
                response.id = downstreamID
                completion(response)
            case .failure(let error as JSONRPCError):
                completion(.error(id: downstreamID, error))
            case .failure(let error):
                completion(.error(id: downstreamID, .upstreamUnavailable("server \(serverID): \(error)")))
            }
        })
    }

    /// Sends a server's request (sampling, elicitation, roots) to the client
    /// on the stream of the call that caused it, and waits for the answer.
    /// It is asked only of a client that declared the capability, and gets
    /// the call's timeout to answer.
    func askClient(_ request: JSONRPCMessage, relatedTo: JSON?, timeout: Duration) async -> JSONRPCMessage {
        let needs = [MCP.Method.samplingCreateMessage: "sampling", MCP.Method.elicitationCreate: "elicitation", MCP.Method.rootsList: "roots"]
        let method = request.method ?? ""
        guard let capability = needs[method], state.withLock({ $0.clientCapabilities?[capability] != nil }) else {
            return .error(id: request.id, JSONRPCError(code: JSONRPCError.methodNotFoundCode, message: "the client does not support \(method)"))
        }
        let key = state.withLock { s in
            defer { s.nextClientRequest += 1 }
            return "portal-\(s.nextClientRequest)"
        }
        var forwarded = request
        forwarded.id = .string(key)
        let outbound = self.outbound
        let message = forwarded
        let answer = await withCheckedContinuation { continuation in
            let open = state.withLock { s -> Bool in
                guard !s.closed else { return false }
                s.clientRequests[key] = continuation
                return true
            }
            guard open else {
                continuation.resume(returning: .error(id: nil, JSONRPCError(code: -32000, message: "session closed")))
                return
            }
            Task { await outbound.send(message, relatedTo: relatedTo) }
            Task { [self] in
                try? await Task.sleep(for: timeout)
                guard let waiter = state.withLock({ $0.clientRequests.removeValue(forKey: key) }) else { return }
                waiter.resume(returning: .error(id: nil, JSONRPCError(code: -32001, message: "the client did not answer \(method) in time")))
            }
        }
        var reply = answer
        reply.id = request.id
        return reply
    }

    static let portalTools: [JSON] = [
        [
            "name": .string(listServersTool),
            "description": "List the servers behind this portal: status, tool count, and whether each is on for this session.",
            "inputSchema": ["type": "object", "properties": [:]],
            "annotations": ["readOnlyHint": true],
        ],
        [
            "name": .string(toggleServersTool),
            "description": "Turn servers on or off for this session only, to keep the tool list short. Tool lists change accordingly.",
            "inputSchema": [
                "type": "object",
                "properties": [
                    "enable": ["type": "array", "items": ["type": "string"], "description": "Server ids to turn on"],
                    "disable": ["type": "array", "items": ["type": "string"], "description": "Server ids to turn off"],
                ],
            ],
            "annotations": ["readOnlyHint": false, "destructiveHint": false, "idempotentHint": true],
        ],
    ]

    func listServers() -> JSON {
        let catalog = gateway.catalog(for: portal)
        var servers: [JSON] = []
        for state in portal.servers.compactMap({ gateway.pool.state($0) }) {
            var entry: JSONObject = [
                "id": .string(state.id),
                "status": state.ready ? "ready" : "unavailable",
                "tools": .int(catalog.tools.filter { $0.server == state.id }.count),
                "enabled": .bool(enabledServers.contains(state.id)),
            ]
            if let reason = state.reason, !state.ready { entry["reason"] = .string(reason) }
            if let info = state.initializeResult?["serverInfo"] { entry["serverInfo"] = info }
            servers.append(.object(entry))
        }
        let structured: JSON = ["servers": .array(servers)]
        return ["content": [["type": "text", "text": .string(structured.text)]], "structuredContent": structured]
    }

    func toggleServers(_ arguments: JSONObject) async -> JSON {
        var unknown: [String] = []
        let before = enabledServers
        var after = before
        for (key, on) in [("enable", true), ("disable", false)] {
            for value in arguments[key]?.arrayValue ?? [] {
                guard let server = value.stringValue, portal.servers.contains(server) else {
                    unknown.append(value.stringValue ?? value.text)
                    continue
                }
                if on { after.insert(server) } else { after.remove(server) }
            }
        }
        if !unknown.isEmpty {
            return ["content": [["type": "text", "text": .string("Unknown server ids: \(unknown.joined(separator: ", ")). Known: \(portal.servers.joined(separator: ", "))")]], "isError": true]
        }
        state.withLock { $0.enabledServers = after }
        if before != after {
            await outbound.send(.notification(method: MCP.Method.toolsListChanged), relatedTo: nil)
        }
        let structured: JSON = ["enabled": .array(portal.servers.filter { after.contains($0) }.map(JSON.string))]
        return ["content": [["type": "text", "text": .string(structured.text)]], "structuredContent": structured]
    }

    // MARK: Resources, prompts, completion

    func activeServers(capability: String?) -> [UpstreamPool.ServerState] {
        let enabledServers = self.enabledServers
        return portal.servers.filter { enabledServers.contains($0) }.compactMap { gateway.pool.state($0) }.filter { state in
            state.ready && (capability == nil || state.initializeResult?["capabilities"]?[capability!] != nil)
        }
    }

    /// Lists `key` from every server that has the capability, each item
    /// renamed by `rename`, and pages the merged list.
    func listMerged(_ method: String, key: String, capability: String, params: JSONObject,
                    rename: @Sendable (String, JSON) -> JSON) async throws -> JSON {
        var items: [JSON] = []
        for server in activeServers(capability: capability) {
            do {
                let found = try await server.client.listAll(method: method, key: key)
                items += found.map { rename(server.id, $0) }
            } catch {
                gateway.logger.warning("listing failed", metadata: ["upstream.id": "\(server.id)", "mcp.method": "\(method)", "error": "\(error)"])
            }
        }
        try await gateway.record(AuditEvent(kind: .list, portal: portal.id, sessionID: id, principal: principal.subject, method: method, outcome: .ok))
        return try Self.page(items, key: key, cursor: params["cursor"])
    }

    /// Resource URIs are namespaced as `{server}+{uri}`: still a valid URI
    /// (the scheme gains a prefix) and routable back to its server.
    static func prefixURI(_ item: JSON, key: String, server: String) -> JSON {
        var item = item
        if let uri = item[key]?.stringValue { item[key] = .string("\(server)+\(uri)") }
        return item
    }

    static func splitURI(_ uri: String) -> (server: String, uri: String)? {
        guard let plus = uri.firstIndex(of: "+") else { return nil }
        return (String(uri[..<plus]), String(uri[uri.index(after: plus)...]))
    }

    func server(named id: String, capability: String) throws -> UpstreamPool.ServerState {
        guard portal.servers.contains(id), enabledServers.contains(id), let state = gateway.pool.state(id) else {
            throw JSONRPCError.invalidParams("no server \"\(id)\" in this portal session")
        }
        return state
    }

    func routeByURI(_ message: JSONRPCMessage, params: JSONObject) async throws -> JSONRPCMessage {
        guard let uri = params["uri"]?.stringValue else { throw JSONRPCError.invalidParams("uri is required") }
        guard let (serverID, original) = Self.splitURI(uri) else {
            throw JSONRPCError(code: -32002, message: "Resource not found: \(uri)")
        }
        let server = try server(named: serverID, capability: "resources")
        var upstreamParams = params
        upstreamParams["uri"] = .string(original)
        let method = message.method ?? ""
        if method == MCP.Method.resourcesSubscribe { _ = state.withLock { $0.subscriptions.insert(uri) } }
        if method == MCP.Method.resourcesUnsubscribe { _ = state.withLock { $0.subscriptions.remove(uri) } }
        let started = ContinuousClock.now
        var response = await forward(message, to: server, method: method, params: .object(upstreamParams))
        if method == MCP.Method.resourcesRead, let result = response.result {
            switch try await screen(result, direction: .fromServer, server: serverID, tool: nil, method: method, path: "$.result", executionID: nil) {
            case .pass(let screened): response.result = screened
            case .blocked(let error): response = .error(id: message.id, error)
            }
        }
        if var contents = response.result?["contents"]?.arrayValue {
            for index in contents.indices { contents[index] = Self.prefixURI(contents[index], key: "uri", server: serverID) }
            response.result?["contents"] = .array(contents)
        }
        var event = AuditEvent(kind: .read, portal: portal.id, sessionID: id, principal: principal.subject, server: serverID,
                               method: method, outcome: response.error == nil ? .ok : .error, error: response.error?["message"]?.stringValue)
        event.detail = original
        event.durationMicros = Self.micros(ContinuousClock.now - started)
        event.resultBytes = response.result?.serializedCount ?? 0
        try await gateway.record(event)
        return response
    }

    func splitName(_ name: String) throws -> (UpstreamPool.ServerState, String) {
        guard let underscore = name.firstIndex(of: "_") else { throw JSONRPCError.invalidParams("Unknown prompt: \(name)") }
        let serverID = String(name[..<underscore])
        let server = try server(named: serverID, capability: "prompts")
        return (server, String(name[name.index(after: underscore)...]))
    }

    func routePrompt(_ message: JSONRPCMessage, params: JSONObject) async throws -> JSONRPCMessage {
        guard let name = params["name"]?.stringValue else { throw JSONRPCError.invalidParams("name is required") }
        let (server, original) = try splitName(name)
        var upstreamParams = params
        upstreamParams["name"] = .string(original)
        if let arguments = params["arguments"] {
            switch try await screen(arguments, direction: .toServer, server: server.id, tool: nil, method: MCP.Method.promptsGet,
                                    path: "$.arguments", executionID: nil) {
            case .pass(let screened): upstreamParams["arguments"] = screened
            case .blocked(let error): return .error(id: message.id, error)
            }
        }
        var response = await forward(message, to: server, method: MCP.Method.promptsGet, params: .object(upstreamParams))
        if let result = response.result {
            switch try await screen(result, direction: .fromServer, server: server.id, tool: nil, method: MCP.Method.promptsGet,
                                    path: "$.result", executionID: nil) {
            case .pass(let screened): response.result = screened
            case .blocked(let error): response = .error(id: message.id, error)
            }
        }
        try await gateway.record(AuditEvent(kind: .prompt, portal: portal.id, sessionID: id, principal: principal.subject, server: server.id,
                                            tool: original, method: MCP.Method.promptsGet, outcome: response.error == nil ? .ok : .error,
                                            error: response.error?["message"]?.stringValue))
        return response
    }

    func routeCompletion(_ message: JSONRPCMessage, params: JSONObject) async throws -> JSONRPCMessage {
        guard var ref = params["ref"]?.objectValue else { throw JSONRPCError.invalidParams("ref is required") }
        let server: UpstreamPool.ServerState
        switch ref["type"]?.stringValue {
        case "ref/prompt":
            guard let name = ref["name"]?.stringValue else { throw JSONRPCError.invalidParams("ref.name is required") }
            let (found, original) = try splitName(name)
            server = found
            ref["name"] = .string(original)
        case "ref/resource":
            guard let uri = ref["uri"]?.stringValue, let (serverID, original) = Self.splitURI(uri) else {
                throw JSONRPCError.invalidParams("ref.uri must be a URI from this portal")
            }
            server = try self.server(named: serverID, capability: "resources")
            ref["uri"] = .string(original)
        default:
            throw JSONRPCError.invalidParams("ref.type must be ref/prompt or ref/resource")
        }
        var upstreamParams = params
        upstreamParams["ref"] = .object(ref)
        return await forward(message, to: server, method: MCP.Method.completionComplete, params: .object(upstreamParams))
    }

    // MARK: Relaying server events

    func relay(server: String, event: UpstreamEvent) async {
        guard portal.servers.contains(server), enabledServers.contains(server), protocolVersion != nil else { return }
        switch event {
        case .toolsChanged:
            await outbound.send(.notification(method: MCP.Method.toolsListChanged), relatedTo: nil)
        case .resourcesChanged:
            await outbound.send(.notification(method: MCP.Method.resourcesListChanged), relatedTo: nil)
        case .promptsChanged:
            await outbound.send(.notification(method: MCP.Method.promptsListChanged), relatedTo: nil)
        case .notification(var message):
            if message.method == MCP.Method.resourceUpdated, let uri = message.params?["uri"]?.stringValue {
                let prefixed = "\(server)+\(uri)"
                guard state.withLock({ $0.subscriptions.contains(prefixed) }) else { return }
                message.params?["uri"] = .string(prefixed)
            } else {
                message = Self.namingServer(message, server)
            }
            await outbound.send(message, relatedTo: nil)
        case .ready, .unavailable:
            break
        }
    }

    /// Log messages name their server in `logger` (`notes` or `notes/db`),
    /// so a client can tell the servers behind the portal apart.
    static func namingServer(_ message: JSONRPCMessage, _ server: String) -> JSONRPCMessage {
        guard message.method == MCP.Method.message else { return message }
        var message = message
        let logger = message.params?["logger"]?.stringValue
        message.params?["logger"] = .string(logger.map { "\(server)/\($0)" } ?? server)
        return message
    }

    static func micros(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }

    // MARK: Paging

    /// Pages a merged list with the portal's own opaque cursor.
    static func page(_ items: [JSON], key: String, cursor: JSON?) throws -> JSON {
        var start = 0
        if let cursor, !cursor.isNull {
            guard let text = cursor.stringValue, let data = Data(base64Encoded: text),
                  let decoded = String(data: data, encoding: .utf8), decoded.hasPrefix("offset:"),
                  let offset = Int(decoded.dropFirst(7)), offset >= 0, offset <= items.count else {
                throw JSONRPCError.invalidParams("invalid cursor")
            }
            start = offset
        }
        let end = min(items.count, start + pageSize)
        var result: JSONObject = [key: .array(Array(items[start..<end]))]
        if end < items.count {
            result["nextCursor"] = .string(Data("offset:\(end)".utf8).base64EncodedString())
        }
        return .object(result)
    }
}
