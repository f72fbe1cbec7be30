/// A JSON-RPC 2.0 message kept whole: accessors read the envelope and every
/// field the portal does not model passes through untouched.
public struct JSONRPCMessage: Sendable, Hashable {
    public enum Kind: Sendable, Equatable {
        case request, notification, response, errorResponse
    }

    public var object: JSONObject

    public init(_ object: JSONObject) { self.object = object }

    public var id: JSON? {
        get { object["id"] }
        set { object["id"] = newValue }
    }
    public var method: String? { object["method"]?.stringValue }
    public var params: JSON? {
        get { object["params"] }
        set { object["params"] = newValue }
    }
    public var result: JSON? {
        get { object["result"] }
        set { object["result"] = newValue }
    }
    public var error: JSON? { object["error"] }

    public var kind: Kind? {
        if object["method"] != nil {
            return object["id"] == nil ? .notification : .request
        }
        if object["result"] != nil { return .response }
        if object["error"] != nil { return .errorResponse }
        return nil
    }

    public var isResponse: Bool { kind == .response || kind == .errorResponse }

    public func serialized() -> [UInt8] { JSON.object(object).serialized() }

    public static func request(id: JSON, method: String, params: JSON? = nil) -> JSONRPCMessage {
        guard let params else { return JSONRPCMessage(["jsonrpc": "2.0", "id": id, "method": .string(method)]) }
        return JSONRPCMessage(["jsonrpc": "2.0", "id": id, "method": .string(method), "params": params])
    }

    public static func notification(method: String, params: JSON? = nil) -> JSONRPCMessage {
        var object: JSONObject = ["jsonrpc": "2.0", "method": .string(method)]
        if let params { object["params"] = params }
        return JSONRPCMessage(object)
    }

    public static func response(id: JSON, result: JSON) -> JSONRPCMessage {
        JSONRPCMessage(["jsonrpc": "2.0", "id": id, "result": result])
    }

    public static func error(id: JSON?, _ error: JSONRPCError) -> JSONRPCMessage {
        JSONRPCMessage(["jsonrpc": "2.0", "id": id ?? .null, "error": error.json])
    }
}

/// A JSON-RPC error object. Errors that cross module lines carry one of these,
/// so the edge can answer with the right code.
public struct JSONRPCError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSON?

    public init(code: Int, message: String, data: JSON? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var json: JSON {
        var object: JSONObject = ["code": .int(code), "message": .string(message)]
        if let data { object["data"] = data }
        return .object(object)
    }

    public var description: String { "JSON-RPC error \(code): \(message)" }

    public static let parseErrorCode = -32700
    public static let invalidRequestCode = -32600
    public static let methodNotFoundCode = -32601
    public static let invalidParamsCode = -32602
    public static let internalErrorCode = -32603

    public static func parseError(_ detail: String) -> JSONRPCError { .init(code: parseErrorCode, message: "Parse error: \(detail)") }
    public static func invalidRequest(_ detail: String) -> JSONRPCError { .init(code: invalidRequestCode, message: "Invalid request: \(detail)") }
    public static func methodNotFound(_ method: String) -> JSONRPCError { .init(code: methodNotFoundCode, message: "Method not found: \(method)") }
    public static func invalidParams(_ detail: String) -> JSONRPCError { .init(code: invalidParamsCode, message: "Invalid params: \(detail)") }
    public static func internalError(_ detail: String) -> JSONRPCError { .init(code: internalErrorCode, message: "Internal error: \(detail)") }
    /// The server behind a tool could not answer (down, timed out, broken).
    public static func upstreamUnavailable(_ detail: String) -> JSONRPCError { .init(code: -32002, message: detail) }
}

extension JSONRPCMessage {
    /// Parses one message, or a batch. Checks the JSON-RPC envelope, so a
    /// caller gets `-32700` for bad JSON and `-32600` for a bad envelope.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = JSON.defaultMaxDepth) throws(JSONRPCError) -> Parsed {
        try bytes.withUnsafeBytes { raw in Result { () throws(JSONRPCError) in try parse(bytes: raw, maxDepth: maxDepth) } }.get()
    }

    /// The same over bytes in place (a request body as it was read).
    public static func parse(bytes: UnsafeRawBufferPointer, maxDepth: Int = JSON.defaultMaxDepth) throws(JSONRPCError) -> Parsed {
        let value: JSON
        do {
            value = try JSON.parse(bytes: bytes, maxDepth: maxDepth)
        } catch {
            throw .parseError((error as? JSONParseError)?.description ?? "\(error)")
        }
        switch value {
        case .object(let object):
            return .single(try validated(object))
        case .array(let elements):
            guard !elements.isEmpty else { throw .invalidRequest("empty batch") }
            var messages: [JSONRPCMessage] = []
            for element in elements {
                guard case .object(let object) = element else { throw .invalidRequest("batch element is not an object") }
                messages.append(try validated(object))
            }
            return .batch(messages)
        default:
            throw .invalidRequest("message must be a JSON object")
        }
    }

    public enum Parsed: Sendable {
        case single(JSONRPCMessage)
        case batch([JSONRPCMessage])
    }

    static func validated(_ object: JSONObject) throws(JSONRPCError) -> JSONRPCMessage {
        guard object["jsonrpc"] == .string("2.0") else { throw .invalidRequest("\"jsonrpc\" must be \"2.0\"") }
        let message = JSONRPCMessage(object)
        if let method = object["method"] {
            guard method.stringValue != nil else { throw .invalidRequest("\"method\" must be a string") }
        }
        if let id = object["id"] {
            switch id {
            case .string, .number: break
            case .null where message.method == nil: break  // error responses may carry a null id
            default: throw .invalidRequest("\"id\" must be a string or a number")
            }
        }
        if let params = object["params"] {
            switch params {
            case .object, .array: break
            default: throw .invalidRequest("\"params\" must be an object or an array")
            }
        }
        guard message.kind != nil else { throw .invalidRequest("not a request, notification or response") }
        return message
    }
}
