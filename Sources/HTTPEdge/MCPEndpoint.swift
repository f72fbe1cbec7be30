import CodeMode
import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import Logging
import MCPWire
import NIOCore
import NIOHTTP1
import PortalCore
import ServiceLifecycle
import Synchronization

/// The MCP endpoints: Streamable HTTP at `/{portal}/mcp` (POST, GET, DELETE)
/// and the legacy HTTP+SSE transport at `/{portal}/sse` and
/// `/{portal}/messages`. This is where transport rules are enforced and
/// errors become HTTP statuses.
struct MCPEndpoint: Sendable {
    let gateway: Gateway
    let registry: SessionRegistry
    let limits: PortalConfig.Limits
    let origins: OriginPolicy
    let logger: Logger

    static let sessionHeader = HTTPField.Name(MCP.Header.sessionID)!
    static let versionHeader = HTTPField.Name(MCP.Header.protocolVersion)!
    static let lastEventHeader = HTTPField.Name(MCP.Header.lastEventID)!

    // MARK: Errors

    /// An HTTP answer with a JSON-RPC error body, for failures before a
    /// message reaches a session.
    static func failure(_ status: HTTPResponse.Status, _ error: JSONRPCError, id: JSON? = nil) -> Response {
        json(JSONRPCMessage.error(id: id, error).serialized(), status: status)
    }

    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// An SSE response; `onEnd` runs once when it ends, also when its body
    /// never runs (the connection failed before the head was written),
    /// or the stream would stay attached and its session never expire.
    static func sse(_ events: AsyncStream<EdgeSession.Event>, of edge: EdgeSession, headers: HTTPFields = [:],
                    onEnd: @escaping @Sendable () async -> Void, prefix: [ByteBuffer] = []) -> Response {
        var headers = headers
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache, no-transform"
        let end = EndOnce(onEnd)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let onEnd = end.run
            do {
                for buffer in prefix { try await writer.write(buffer) }
                // Streams end when the portal shuts down, so it never waits on them.
                try await withGracefulShutdownHandler {
                    for await event in events {
                        try await writer.write(event.bytes)
                        if event.final { break }
                    }
                } onGracefulShutdown: {
                    edge.closeStreams()
                }
                try await writer.finish(nil)
            } catch {
                await onEnd()
                throw error
            }
            await onEnd()
        })
    }

    /// Runs an ending once: when told, or when dropped untold.
    final class EndOnce: Sendable {
        let body: @Sendable () async -> Void
        let ran = Mutex(false)

        init(_ body: @escaping @Sendable () async -> Void) { self.body = body }

        func run() async {
            if take() { await body() }
        }

        private func take() -> Bool {
            ran.withLock { ran in
                defer { ran = true }
                return !ran
            }
        }

        deinit {
            guard take() else { return }
            let body = self.body
            Task { await body() }
        }
    }

    func checkOrigin(_ request: Request) -> Response? {
        guard let origin = request.headers[.origin], !origins.allows(origin) else { return nil }
        return Self.failure(.forbidden, JSONRPCError(code: -32000, message: "Forbidden: origin \(origin) is not allowed"))
    }

    func portal(_ context: some RequestContext) -> PortalDefinition? {
        let id = context.parameters.get("portal") ?? "default"
        return gateway.portal(id)
    }

    enum Body {
        case bytes([UInt8])
        case refused(Response)
    }

    func readBody(_ request: Request) async -> Body {
        do {
            var body = try await request.body.collect(upTo: limits.maxBodyBytes)
            return .bytes(body.readBytes(length: body.readableBytes) ?? [])
        } catch {
            return .refused(Self.failure(.contentTooLarge, .invalidRequest("body larger than \(limits.maxBodyBytes) bytes")))
        }
    }

    // MARK: Streamable HTTP: POST

    /// What a POST turns out to be once its headers and body are checked:
    /// an answer already (a refusal), or the message(s) to run. Both the
    /// routes and the fast lane admit requests here, so they refuse alike.
    enum Admission {
        case refused(HTTPResponse.Status, JSONRPCError, id: JSON?)
        case initialize(JSONRPCMessage, PortalDefinition)
        /// A notification or a response from the client.
        case notification(JSONRPCMessage, SessionRegistry.Entry)
        case request(JSONRPCMessage, SessionRegistry.Entry)
        case batch([JSONRPCMessage], SessionRegistry.Entry)
    }

    enum HeadAdmission {
        case accepted(PortalDefinition)
        case refused(Admission)
    }

    /// The checks a POST's headers get before its body is read.
    func admitHead(portalID: String?, headers: some RequestHeaders) -> HeadAdmission {
        if let origin = headers[field: .origin], !origins.allows(origin) {
            return .refused(.refused(.forbidden, JSONRPCError(code: -32000, message: "Forbidden: origin \(origin) is not allowed"), id: nil))
        }
        guard let portal = gateway.portal(portalID ?? "default") else { return .refused(.refused(.notFound, .invalidRequest("no such portal"), id: nil)) }
        if let contentType = headers[field: .contentType], !contentType.hasPrefixIgnoringASCIICase("application/json") {
            return .refused(.refused(.unsupportedMediaType, .invalidRequest("Content-Type must be application/json"), id: nil))
        }
        if let accept = headers[field: .accept],
           !(accept.containsIgnoringASCIICase("application/json") || accept.containsIgnoringASCIICase("text/event-stream")
             || accept.containsIgnoringASCIICase("*/*")) {
            return .refused(.refused(.notAcceptable, .invalidRequest("Accept must include application/json and text/event-stream"), id: nil))
        }
        return .accepted(portal)
    }

    /// The checks of the body: JSON-RPC, session, protocol version, batches.
    func admitBody(portal: PortalDefinition, headers: some RequestHeaders, body: [UInt8]) -> Admission {
        body.withUnsafeBytes { admitBody(portal: portal, headers: headers, body: $0) }
    }

    /// The same over the body's bytes in place.
    func admitBody(portal: PortalDefinition, headers: some RequestHeaders, body: UnsafeRawBufferPointer) -> Admission {
        let parsed: JSONRPCMessage.Parsed
        do {
            parsed = try JSONRPCMessage.parse(bytes: body, maxDepth: limits.maxJSONDepth)
        } catch {
            return .refused(.badRequest, error, id: nil)
        }
        let sessionHeader = headers[field: Self.sessionHeader]

        // A new session starts with initialize, alone, without a session id.
        if case .single(let message) = parsed, message.method == MCP.Method.initialize {
            guard message.kind == .request else { return .refused(.badRequest, .invalidRequest("initialize must be a request"), id: nil) }
            if let sessionHeader, registry.touch(sessionHeader) != nil {
                return .refused(.badRequest, .invalidRequest("session already initialized"), id: message.id)
            }
            return .initialize(message, portal)
        }

        guard let sessionID = sessionHeader else {
            return .refused(.badRequest, .invalidRequest("Mcp-Session-Id header is required; send initialize first"), id: nil)
        }
        guard let entry = registry.touch(sessionID), entry.portal.portal.id == portal.id else {
            return .refused(.notFound, JSONRPCError(code: -32001, message: "Session not found or expired; initialize a new session"), id: nil)
        }
        let negotiated = entry.portal.protocolVersion ?? MCP.latestProtocolVersion
        if let refused = checkVersionHeader(headers, negotiated: negotiated) { return refused }

        switch parsed {
        case .single(let message):
            return message.kind == .request ? .request(message, entry) : .notification(message, entry)
        case .batch(let messages):
            guard MCP.batchingVersions.contains(negotiated) else {
                return .refused(.badRequest, .invalidRequest("JSON-RPC batches are not allowed in protocol version \(negotiated)"), id: nil)
            }
            if messages.contains(where: { $0.method == MCP.Method.initialize }) {
                return .refused(.badRequest, .invalidRequest("initialize cannot be part of a batch"), id: nil)
            }
            return .batch(messages, entry)
        }
    }

    func post(_ request: Request, context: some RequestContext) async -> Response {
        let portal: PortalDefinition
        switch admitHead(portalID: context.parameters.get("portal"), headers: request.headers) {
        case .accepted(let found): portal = found
        case .refused(let refusal): return await respond(refusal, request: request)
        }
        switch await readBody(request) {
        case .bytes(let body): return await respond(admitBody(portal: portal, headers: request.headers, body: body), request: request)
        case .refused(let response): return response
        }
    }

    func respond(_ admission: Admission, request: Request) async -> Response {
        switch admission {
        case .refused(let status, let error, let id):
            return Self.failure(status, error, id: id)
        case .initialize(let message, let portal):
            return await initialize(message, portal: portal, request: request)
        case .notification(let message, let entry):
            _ = await entry.portal.handle(message)
            return Response(status: .accepted)
        case .request(let message, let entry):
            return await answer(message, entry: entry)
        case .batch(let messages, let entry):
            var responses: [JSON] = []
            await withTaskGroup(of: JSONRPCMessage?.self) { group in
                for message in messages { group.addTask { await entry.portal.handle(message) } }
                for await response in group { if let response { responses.append(.object(response.object)) } }
            }
            if responses.isEmpty { return Response(status: .accepted) }
            return Self.json(JSON.array(responses).serialized())
        }
    }

    func checkVersionHeader(_ headers: some RequestHeaders, negotiated: String) -> Admission? {
        guard let header = headers[field: Self.versionHeader] else {
            // Clients of 2025-06-18 and later must send it; for 2025-03-26 it is assumed.
            if negotiated >= "2025-06-18" {
                return .refused(.badRequest, .invalidRequest("MCP-Protocol-Version header is required (negotiated \(negotiated))"), id: nil)
            }
            return nil
        }
        guard MCP.supportedProtocolVersions.contains(header) else {
            return .refused(.badRequest, .invalidRequest("unsupported MCP-Protocol-Version \(header); supported: \(MCP.supportedProtocolVersions.joined(separator: ", "))"), id: nil)
        }
        guard header == negotiated else {
            return .refused(.badRequest, .invalidRequest("MCP-Protocol-Version \(header) does not match the negotiated \(negotiated)"), id: nil)
        }
        return nil
    }

    func checkVersionHeader(_ request: Request, negotiated: String) -> Response? {
        guard case .refused(let status, let error, let id) = checkVersionHeader(request.headers, negotiated: negotiated) else { return nil }
        return Self.failure(status, error, id: id)
    }

    /// Whether the client asked for Code Mode (`?codemode=search_and_execute`),
    /// or the refusal when it asked for something this portal does not offer.
    func codeMode(_ request: Request, portal: PortalDefinition, id: JSON? = nil) -> Result<Bool, JSONRPCError> {
        guard let value = request.uri.queryParameters.get("codemode") else { return .success(false) }
        guard value == CodeModeTools.queryValue else {
            return .failure(.invalidRequest("unsupported codemode \"\(value)\"; the only mode is codemode=\(CodeModeTools.queryValue)"))
        }
        guard portal.codemode else {
            return .failure(.invalidRequest("Code Mode is turned off for portal \"\(portal.id)\" (codemode: false in its config)"))
        }
        return .success(true)
    }

    func initialize(_ message: JSONRPCMessage, portal: PortalDefinition, request: Request) async -> Response {
        let codeMode: Bool
        switch self.codeMode(request, portal: portal) {
        case .success(let on): codeMode = on
        case .failure(let error): return Self.failure(.badRequest, error, id: message.id)
        }
        let sessionID = SessionRegistry.newID()
        let edge = EdgeSession(id: sessionID, legacy: false, bufferLimit: limits.resumeBufferEvents)
        let session = gateway.openSession(portal: portal, principal: .anonymous, sessionID: sessionID, codeMode: codeMode, outbound: edge)
        let response = await session.handle(message) ?? .error(id: message.id, .internalError("no answer"))
        guard response.error == nil else { return Self.json(response.serialized()) }
        guard registry.add(sessionID, edge: edge, portal: session) else {
            await session.close()
            return Self.failure(.serviceUnavailable, JSONRPCError(code: -32000, message: "too many open sessions"), id: message.id)
        }
        var headers = HTTPFields()
        headers[Self.sessionHeader] = sessionID
        return Self.json(response.serialized(), headers: headers)
    }

    /// Answers one request: as plain JSON when the response comes before
    /// anything else, or as an SSE stream when the call first sends progress,
    /// logging, or requests of its own to the client.
    func answer(_ message: JSONRPCMessage, entry: SessionRegistry.Entry) async -> Response {
        let requestID = message.id ?? .null
        let (stream, token, events) = entry.edge.openRequestStream(for: requestID)
        let portalSession = entry.portal
        let edge = entry.edge
        Task {
            let response = await portalSession.handle(message) ?? .error(id: requestID, .internalError("no answer"))
            edge.finish(response, stream: stream)
        }
        var iterator = events.makeAsyncIterator()
        guard let first = await iterator.next() else {
            return Self.failure(.internalServerError, .internalError("the request ended without an answer"), id: requestID)
        }
        if first.final { return Self.json(first.message.serialized()) }
        return Self.sse(events, of: edge, onEnd: { edge.detach(stream, token: token) }, prefix: [first.bytes])
    }

    // MARK: Streamable HTTP: GET and DELETE

    func get(_ request: Request, context: some RequestContext) async -> Response {
        if let refused = checkOrigin(request) { return refused }
        guard portal(context) != nil else { return Self.failure(.notFound, .invalidRequest("no such portal")) }
        guard request.headers[.accept]?.containsIgnoringASCIICase("text/event-stream") == true else {
            return Self.failure(.notAcceptable, .invalidRequest("GET needs Accept: text/event-stream"))
        }
        guard let sessionID = request.headers[Self.sessionHeader] else {
            return Self.failure(.badRequest, .invalidRequest("Mcp-Session-Id header is required"))
        }
        guard let entry = registry.touch(sessionID), entry.portal.portal.id == portal(context)?.id else {
            return Self.failure(.notFound, JSONRPCError(code: -32001, message: "Session not found or expired"))
        }
        let negotiated = entry.portal.protocolVersion ?? MCP.latestProtocolVersion
        if let refused = checkVersionHeader(request, negotiated: negotiated) { return refused }
        let edge = entry.edge
        if let last = request.headers[Self.lastEventHeader] {
            guard let lastID = Int(last), let resumed = try? edge.resume(after: lastID) else {
                return Self.failure(.badRequest, .invalidRequest("Last-Event-ID \(last) is unknown or no longer buffered"))
            }
            return Self.sse(resumed.events, of: edge, onEnd: { edge.detach(resumed.stream, token: resumed.token) })
        }
        let (token, events) = edge.openStandalone()
        return Self.sse(events, of: edge, onEnd: { edge.detach(EdgeSession.standalone, token: token) })
    }

    func delete(_ request: Request, context: some RequestContext) async -> Response {
        if let refused = checkOrigin(request) { return refused }
        guard let sessionID = request.headers[Self.sessionHeader] else {
            return Self.failure(.badRequest, .invalidRequest("Mcp-Session-Id header is required"))
        }
        guard let entry = registry.touch(sessionID), entry.portal.portal.id == portal(context)?.id else {
            return Self.failure(.notFound, JSONRPCError(code: -32001, message: "Session not found or expired"))
        }
        if let refused = checkVersionHeader(request, negotiated: entry.portal.protocolVersion ?? MCP.latestProtocolVersion) { return refused }
        _ = registry.remove(sessionID)
        entry.edge.closeStreams()
        await entry.portal.close()
        return Response(status: .noContent)
    }

    // MARK: Legacy HTTP+SSE (2024-11-05)

    func legacyStream(_ request: Request, context: some RequestContext) async -> Response {
        if let refused = checkOrigin(request) { return refused }
        guard let portal = portal(context) else { return Self.failure(.notFound, .invalidRequest("no such portal")) }
        let codeMode: Bool
        switch self.codeMode(request, portal: portal) {
        case .success(let on): codeMode = on
        case .failure(let error): return Self.failure(.badRequest, error)
        }
        let sessionID = SessionRegistry.newID()
        let edge = EdgeSession(id: sessionID, legacy: true, bufferLimit: 0)
        let session = gateway.openSession(portal: portal, principal: .anonymous, sessionID: sessionID, codeMode: codeMode, outbound: edge)
        guard registry.add(sessionID, edge: edge, portal: session) else {
            return Self.failure(.serviceUnavailable, JSONRPCError(code: -32000, message: "too many open sessions"))
        }
        let (_, events) = edge.openStandalone()
        let endpoint = SSEEvent(event: "endpoint", data: "/\(portal.id)/messages?sessionId=\(sessionID)").encoded()
        let registry = self.registry
        return Self.sse(events, of: edge, onEnd: {
            if let entry = registry.remove(sessionID) { await entry.portal.close() }
        }, prefix: [ByteBuffer(bytes: endpoint)])
    }

    func legacyPost(_ request: Request, context: some RequestContext) async -> Response {
        if let refused = checkOrigin(request) { return refused }
        guard let sessionID = request.uri.queryParameters.get("sessionId") else {
            return Self.failure(.badRequest, .invalidRequest("sessionId query parameter is required"))
        }
        guard let entry = registry.touch(sessionID) else {
            return Self.failure(.notFound, JSONRPCError(code: -32001, message: "Session not found or expired"))
        }
        let body: [UInt8]
        switch await readBody(request) {
        case .bytes(let bytes): body = bytes
        case .refused(let response): return response
        }
        let messages: [JSONRPCMessage]
        do {
            switch try JSONRPCMessage.parse(body, maxDepth: limits.maxJSONDepth) {
            case .single(let message): messages = [message]
            case .batch(let batch): messages = batch
            }
        } catch {
            return Self.failure(.badRequest, error)
        }
        for message in messages {
            Task {
                if let response = await entry.portal.handle(message) {
                    await entry.edge.send(response, relatedTo: nil)
                }
            }
        }
        return Response(status: .accepted)
    }
}

/// Which browser origins may call the portal (DNS-rebinding defence).
struct OriginPolicy: Sendable {
    let allowed: [String]

    func allows(_ origin: String) -> Bool {
        allowed.contains { pattern in
            if pattern == "*" { return true }
            if pattern.hasSuffix(":*") {
                let base = String(pattern.dropLast(2))
                guard origin.hasPrefix(base) else { return false }
                let rest = origin.dropFirst(base.count)
                return rest.isEmpty || (rest.first == ":" && rest.dropFirst().allSatisfy(\.isNumber) && rest.count > 1)
            }
            return pattern == origin
        }
    }
}

/// A request's header fields, as Hummingbird's routes see them (HTTPFields)
/// and as the fast lane does (NIOHTTP1's HTTPHeaders, before any
/// conversion), so both are admitted by the same code.
protocol RequestHeaders {
    /// Every value of the field joined with ", " (RFC 9110 5.3), nil when absent.
    subscript(field name: HTTPField.Name) -> String? { get }
}

extension HTTPFields: RequestHeaders {
    subscript(field name: HTTPField.Name) -> String? { self[name] }
}

extension HTTPHeaders: RequestHeaders {
    /// The field's value; a field sent more than once reads as one list
    /// (RFC 9110 5.3). One pass, and nothing made unless the field repeats.
    subscript(field name: HTTPField.Name) -> String? {
        let wanted = name.canonicalName  // lowercase
        var value: String?
        for (key, next) in self where key.utf8.equalsASCIICaseInsensitive(wanted.utf8) {
            value = value.map { "\($0), \(next)" } ?? next
        }
        return value
    }
}
