#if canImport(Glibc)
import Glibc
#endif
import MCPWire
import NIOCore

/// Reads HTTP/1.1 responses from a pool connection's bytes (RFC 9112),
/// taking from each head only what the pool's callers use: the status, the
/// content type, the MCP session id and whether the connection stays open.
/// (NIO's decoder builds a whole head, every field a string, and hands each
/// part down the pipeline; on the hot leg that was a few percent of the
/// portal's CPU.) Body parts are slices of the bytes read, never copies.
///
/// The pool sends no HEAD requests and never asks to upgrade, so a body is
/// framed by chunked transfer coding, a Content-Length, or the end of the
/// connection; 1xx answers before the final one are skipped, and 204 and
/// 304 have no body.
struct ResponseParser {
    struct Head: Sendable, Equatable {
        var status: Int
        /// As sent; empty when absent.
        var contentType: String = ""
        var sessionID: String?
        var keepAlive: Bool = true
    }

    enum Event {
        case head(Head)
        case body(ByteBuffer)
        case end
    }

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    /// The longest response head (status line and fields) accepted.
    static let maxHead = 80 * 1024

    private enum State {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
    }

    private var state = State.head
    /// How much of a head still coming is known to hold no end.
    private var headScanned = 0
    /// Bytes read but not yet taken.
    private var pending: ByteBuffer?

    /// Whether a response is under way (its head, or part of its body, was read).
    var inMessage: Bool {
        if case .head = state { return pending.map { $0.readableBytes > 0 } ?? false }
        return true
    }

    /// Takes `bytes` and reports what they complete, in order.
    mutating func feed(_ bytes: ByteBuffer, _ emit: (Event) throws -> Void) throws {
        if var buffer = pending, buffer.readableBytes > 0 {
            var more = bytes
            buffer.writeBuffer(&more)
            pending = buffer
        } else {
            pending = bytes
        }
        while try step(emit) {}
        if pending?.readableBytes == 0 { pending = nil }
    }

    /// The connection ended: a body that runs to the end of the connection
    /// is complete; anything else cut short is an error.
    mutating func finish(_ emit: (Event) throws -> Void) throws {
        switch state {
        case .untilClose:
            state = .head
            try emit(.end)
        case .head where !inMessage:
            return
        default:
            throw ParseError(description: "the connection closed in the middle of a response")
        }
    }

    /// One step on the bytes pending; false when it needs more.
    private mutating func step(_ emit: (Event) throws -> Void) throws -> Bool {
        guard var buffer = pending, buffer.readableBytes > 0 else { return false }
        defer { pending = buffer }
        switch state {
        case .head:
            let length = Self.headLength(buffer, from: headScanned)
            guard (length ?? buffer.readableBytes) <= Self.maxHead else {
                throw ParseError(description: "response head longer than \(Self.maxHead) bytes")
            }
            guard let length else {
                // What is read of the head is not searched again: a head
                // that comes a byte at a time costs no more than one that comes whole.
                headScanned = max(0, buffer.readableBytes - 2)
                return false
            }
            headScanned = 0
            let head = buffer.readSlice(length: length)!
            guard let (parsed, framing) = try Self.parseHead(head) else { return true }  // 1xx: the final answer follows
            try emit(.head(parsed))
            switch framing {
            case .none: try emit(.end)
            case .length(let count): if count == 0 { try emit(.end) } else { state = .body(remaining: count) }
            case .chunked: state = .chunkSize
            case .untilClose: state = .untilClose
            }
            return true
        case .body(let remaining):
            let left = try Self.take(remaining, from: &buffer, emit)
            state = left == 0 ? .head : .body(remaining: left)
            if left == 0 { try emit(.end) }
            return true
        case .untilClose:
            let part = buffer.readSlice(length: buffer.readableBytes)!
            try emit(.body(part))
            return false
        case .chunkSize:
            guard let line = try Self.line(&buffer) else { return false }
            let size = try Self.chunkSize(line)
            state = size == 0 ? .trailers : .chunkData(remaining: size)
            return true
        case .chunkData(let remaining):
            let left = try Self.take(remaining, from: &buffer, emit)
            state = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
            return true
        case .chunkDataEnd:
            guard let line = try Self.line(&buffer) else { return false }
            guard line.readableBytes == 0 else { throw ParseError(description: "chunk data longer than its size") }
            state = .chunkSize
            return true
        case .trailers:
            // Trailer fields are read and ignored, up to the empty line.
            guard let line = try Self.line(&buffer) else { return false }
            if line.readableBytes == 0 {
                state = .head
                try emit(.end)
            }
            return true
        }
    }

    /// Hands on up to `remaining` body bytes from `buffer` (a slice, not a
    /// copy); returns how many are still to come.
    private static func take(_ remaining: Int, from buffer: inout ByteBuffer, _ emit: (Event) throws -> Void) throws -> Int {
        let part = buffer.readSlice(length: min(remaining, buffer.readableBytes))!
        try emit(.body(part))
        return remaining - part.readableBytes
    }

    private enum Framing {
        case none
        case length(Int)
        case chunked
        case untilClose
    }

    /// The length of the head at the start of `buffer`, up to and with the
    /// empty line that ends it (CRLF CRLF, or bare LFs), if all of it is
    /// there; the search for it starts at `from`.
    static func headLength(_ buffer: ByteBuffer, from: Int = 0) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            var index = from
            let count = bytes.count
            while index < count {
                guard let newline = memchrIndex(bytes, from: index, UInt8(ascii: "\n")) else { return nil }
                // An empty line: LF right after the previous line's LF, or CR LF.
                let next = newline + 1
                if next < count, bytes[next] == UInt8(ascii: "\n") { return next + 1 }
                if next + 1 < count, bytes[next] == UInt8(ascii: "\r"), bytes[next + 1] == UInt8(ascii: "\n") { return next + 2 }
                if next + 1 >= count { return nil }
                index = next
            }
            return nil
        }
    }

    private static func memchrIndex(_ bytes: UnsafeRawBufferPointer, from: Int, _ byte: UInt8) -> Int? {
        guard from < bytes.count, let base = bytes.baseAddress,
              let found = memchr(base + from, Int32(byte), bytes.count - from) else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    /// The head's status and fields; nil for an interim (1xx) answer.
    private static func parseHead(_ head: ByteBuffer) throws -> (Head, Framing)? {
        try head.withUnsafeReadableBytes { bytes -> (Head, Framing)? in
            var lines = Lines(bytes: bytes)
            guard let statusLine = lines.next() else { throw ParseError(description: "empty response head") }
            // HTTP/1.x SSS reason
            guard statusLine.count >= 12, statusLine.starts(with: "HTTP/1.".utf8),
                  statusLine[statusLine.startIndex + 8] == UInt8(ascii: " ") else {
                throw ParseError(description: "not an HTTP/1.x status line")
            }
            let minor = statusLine[statusLine.startIndex + 7]
            guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else { throw ParseError(description: "unsupported HTTP version") }
            var status = 0
            for offset in 9..<12 {
                let digit = statusLine[statusLine.startIndex + offset]
                guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { throw ParseError(description: "status code is not three digits") }
                status = status * 10 + Int(digit - UInt8(ascii: "0"))
            }
            guard statusLine.count == 12 || statusLine[statusLine.startIndex + 12] == UInt8(ascii: " "), status >= 100 else {
                throw ParseError(description: "malformed status line")
            }
            var parsed = Head(status: status, keepAlive: minor == UInt8(ascii: "1"))
            var length: Int?
            var chunked = false
            var transferCoded = false
            var closes = false
            var keepAliveAsked = false
            while let line = lines.next(), !line.isEmpty {
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else {
                    throw ParseError(description: "malformed header field")
                }
                let name = line[..<colon]
                guard name.allSatisfy(ASCII.isTokenByte) else { throw ParseError(description: "malformed header field name") }
                let value = trimmed(line[line.index(after: colon)...])
                guard !value.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
                    throw ParseError(description: "control character in a header field")
                }
                if name.equalsASCIICaseInsensitive("content-length") {
                    guard let count = decimal(value) else { throw ParseError(description: "invalid Content-Length") }
                    if let length, length != count { throw ParseError(description: "conflicting Content-Length fields") }
                    length = count
                } else if name.equalsASCIICaseInsensitive("transfer-encoding") {
                    transferCoded = true
                    // Chunked only when it is the last coding applied.
                    let last = value.split(separator: UInt8(ascii: ",")).last.map { trimmed($0) }
                    chunked = last.map { $0.equalsASCIICaseInsensitive("chunked") } ?? false
                } else if name.equalsASCIICaseInsensitive("connection") {
                    for token in value.split(separator: UInt8(ascii: ",")) {
                        let token = trimmed(token)
                        if token.equalsASCIICaseInsensitive("close") { closes = true }
                        if token.equalsASCIICaseInsensitive("keep-alive") { keepAliveAsked = true }
                    }
                } else if name.equalsASCIICaseInsensitive("content-type") {
                    // The usual one without making a string of it.
                    parsed.contentType = value.elementsEqual("application/json".utf8) ? "application/json" : String(decoding: value, as: UTF8.self)
                } else if name.equalsASCIICaseInsensitive("mcp-session-id") {
                    parsed.sessionID = String(decoding: value, as: UTF8.self)
                }
            }
            if status < 200 {
                guard status != 101 else { throw ParseError(description: "unexpected 101 Switching Protocols") }
                return nil
            }
            if closes { parsed.keepAlive = false } else if keepAliveAsked { parsed.keepAlive = true }
            let framing: Framing
            if status == 204 || status == 304 {
                framing = .none
            } else if transferCoded {
                // Transfer coding overrides a length; a message with both is
                // suspect, so the connection is not reused (RFC 9112 6.3).
                if length != nil || minor == UInt8(ascii: "0") { parsed.keepAlive = false }  // and HTTP/1.0 with one (6.1)
                if chunked { framing = .chunked } else { framing = .untilClose; parsed.keepAlive = false }
            } else if let length {
                framing = .length(length)
            } else {
                framing = .untilClose
                parsed.keepAlive = false
            }
            return (parsed, framing)
        }
    }

    /// The next line in `buffer` (without its CRLF or LF), taken from it;
    /// nil when no whole line is there yet.
    private static func line(_ buffer: inout ByteBuffer) throws -> ByteBuffer? {
        let found = buffer.withUnsafeReadableBytes { memchrIndex($0, from: 0, UInt8(ascii: "\n")) }
        guard let newline = found else {
            if buffer.readableBytes > 4096 { throw ParseError(description: "chunk line longer than 4096 bytes") }
            return nil
        }
        var line = buffer.readSlice(length: newline + 1)!
        line.moveWriterIndex(to: line.writerIndex - 1)
        if line.readableBytes > 0, line.getInteger(at: line.writerIndex - 1, as: UInt8.self) == UInt8(ascii: "\r") {
            line.moveWriterIndex(to: line.writerIndex - 1)
        }
        return line
    }

    /// A chunk-size line: hex digits, then optional extensions after ';'.
    private static func chunkSize(_ line: ByteBuffer) throws -> Int {
        var size = 0
        var digits = 0
        for byte in line.readableBytesView {
            let value: Int
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = Int(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = Int(byte - UInt8(ascii: "a")) + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = Int(byte - UInt8(ascii: "A")) + 10
            case UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t"):
                // Only whitespace, then extensions, may follow the size.
                let rest = line.readableBytesView.dropFirst(digits).drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                guard digits > 0, rest.isEmpty || rest.first == UInt8(ascii: ";") else { throw ParseError(description: "invalid chunk size") }
                return size
            default: throw ParseError(description: "invalid chunk size")
            }
            digits += 1
            guard digits <= 12 else { throw ParseError(description: "chunk size too large") }
            size = size * 16 + value
        }
        guard digits > 0 else { throw ParseError(description: "invalid chunk size") }
        return size
    }

    private static func decimal(_ value: Bytes) -> Int? {
        guard !value.isEmpty, value.count <= 15 else { return nil }
        var number = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            number = number * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return number
    }

    private static func trimmed(_ bytes: Bytes) -> Bytes {
        var slice = bytes
        while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
        while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
        return slice
    }

    /// The lines of a head, each without its CRLF or LF.
    private struct Lines {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        mutating func next() -> Bytes? {
            guard index < bytes.count else { return nil }
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
            var end = index
            if index < bytes.count { index += 1 }
            if end > start, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            return bytes[start..<end]
        }
    }
}

/// Bytes of a head, in place.
fileprivate typealias Bytes = Slice<UnsafeRawBufferPointer>
