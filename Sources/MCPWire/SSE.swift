/// One Server-Sent Event.
public struct SSEEvent: Sendable, Equatable {
    public var id: String?
    public var event: String?
    public var data: String
    public var retry: Int?

    public init(id: String? = nil, event: String? = nil, data: String, retry: Int? = nil) {
        self.id = id
        self.event = event
        self.data = data
        self.retry = retry
    }

    /// The event in wire form, ending with the blank line.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        if let id { out.append(contentsOf: "id: \(id)\n".utf8) }
        if let event { out.append(contentsOf: "event: \(event)\n".utf8) }
        if let retry { out.append(contentsOf: "retry: \(retry)\n".utf8) }
        var lineStart = true
        for byte in data.utf8 {
            if lineStart { out.append(contentsOf: "data: ".utf8); lineStart = false }
            if byte == 0x0A { lineStart = true }
            out.append(byte)
        }
        if lineStart { out.append(contentsOf: "data: ".utf8) }
        out.append(contentsOf: "\n\n".utf8)
        return out
    }
}

/// An incremental SSE parser (WHATWG event-stream rules): feed it bytes as
/// they arrive, take out whole events. Lines end in LF, CR or CRLF; a line
/// starting with ':' is a comment.
public struct SSEParser: Sendable {
    private var buffer: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var eventType: String?
    private var id: String?
    private var retry: Int?
    private var lastWasCR = false
    /// The id of the last event seen, for `Last-Event-ID` on reconnection.
    public private(set) var lastEventID: String?
    /// The largest line kept; longer input is an error rather than unbounded memory.
    public var maxLineBytes: Int

    public init(maxLineBytes: Int = 16 << 20) { self.maxLineBytes = maxLineBytes }

    public struct LineTooLong: Error {}

    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) throws -> [SSEEvent] where Bytes.Element == UInt8 {
        var events: [SSEEvent] = []
        for byte in bytes {
            if byte == 0x0A && lastWasCR {
                lastWasCR = false
                continue
            }
            lastWasCR = byte == 0x0D
            if byte == 0x0A || byte == 0x0D {
                if let event = processLine() { events.append(event) }
                buffer.removeAll(keepingCapacity: true)
            } else {
                buffer.append(byte)
                if buffer.count > maxLineBytes { throw LineTooLong() }
            }
        }
        return events
    }

    private mutating func processLine() -> SSEEvent? {
        if buffer.isEmpty {
            defer {
                data.removeAll(keepingCapacity: true)
                hasData = false
                eventType = nil
                retry = nil
            }
            guard hasData else { return nil }
            if data.last == 0x0A { data.removeLast() }
            if let id { lastEventID = id }
            return SSEEvent(id: id, event: eventType, data: String(decoding: data, as: UTF8.self), retry: retry)
        }
        if buffer.first == UInt8(ascii: ":") { return nil }
        let field: String
        var value: ArraySlice<UInt8>
        if let colon = buffer.firstIndex(of: UInt8(ascii: ":")) {
            field = String(decoding: buffer[..<colon], as: UTF8.self)
            value = buffer[(colon + 1)...]
            if value.first == 0x20 { value = value.dropFirst() }
        } else {
            field = String(decoding: buffer, as: UTF8.self)
            value = []
        }
        switch field {
        case "data":
            // An event is bounded like a line, so many short data lines cannot grow it without end.
            if data.count + value.count < maxLineBytes {
                data.append(contentsOf: value)
                data.append(0x0A)
            }
            hasData = true
        case "event": eventType = String(decoding: value, as: UTF8.self)
        case "id":
            if !value.contains(0) { id = String(decoding: value, as: UTF8.self) }
        case "retry": retry = Int(String(decoding: value, as: UTF8.self))
        default: break
        }
        return nil
    }
}
