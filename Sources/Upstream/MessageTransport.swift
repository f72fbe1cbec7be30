import MCPWire

/// A message from an upstream server, with the id of the request whose
/// stream it arrived on when the transport knows it (Streamable HTTP).
public struct InboundMessage: Sendable {
    public var message: JSONRPCMessage
    public var relatedRequestID: JSON?
    public init(message: JSONRPCMessage, relatedRequestID: JSON? = nil) {
        self.message = message
        self.relatedRequestID = relatedRequestID
    }
}

/// Moves JSON-RPC messages to and from one upstream server. A transport
/// delivers everything it receives to `onMessage`, and calls `onClose` once
/// when the connection ends for any reason.
public protocol MessageTransport: Sendable {
    func connect(
        onMessage: @escaping @Sendable (InboundMessage) -> Void,
        onClose: @escaping @Sendable ((any Error)?) -> Void
    ) async throws
    func send(_ message: JSONRPCMessage) async throws
    func close() async
}

public struct TransportError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Connects an in-process ``MCPMessageHandler`` (the built-in demo servers) without any I/O.
public final class InProcessTransport: MessageTransport, @unchecked Sendable {
    let server: any MCPMessageHandler
    private let lock = NSLockish()
    private var onMessage: (@Sendable (InboundMessage) -> Void)?

    public init(server: any MCPMessageHandler) { self.server = server }

    public func connect(
        onMessage: @escaping @Sendable (InboundMessage) -> Void,
        onClose: @escaping @Sendable ((any Error)?) -> Void
    ) async throws {
        lock.withLock { self.onMessage = onMessage }
    }

    public func send(_ message: JSONRPCMessage) async throws {
        guard let deliver = lock.withLock({ onMessage }) else { throw TransportError("not connected") }
        if let reply = await server.handle(message) {
            deliver(InboundMessage(message: reply, relatedRequestID: message.id))
        }
    }

    public func close() async { lock.withLock { onMessage = nil } }
}
