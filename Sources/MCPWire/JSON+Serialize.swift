extension JSON {
    /// Compact JSON text.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
    }

    public var text: String { String(decoding: serialized(), as: UTF8.self) }

    /// The length of `serialized()`, without writing it.
    public var serializedCount: Int {
        switch self {
        case .null: return 4
        case .bool(let value): return value ? 4 : 5
        case .number(let text): return text.utf8.count
        case .string(let string): return JSON.serializedCount(of: string)
        case .array(let elements):
            return elements.reduce(max(1, elements.count)) { $0 + $1.serializedCount } + 1
        case .object(let object):
            return object.entries.reduce(max(1, object.entries.count)) { $0 + JSON.serializedCount(of: $1.key) + 1 + $1.value.serializedCount } + 1
        }
    }

    static func serializedCount(of string: String) -> Int {
        string.utf8.reduce(2) { count, byte in count + (!isEscaped(byte) ? 1 : shortEscape(byte) == nil ? 6 : 2) }
    }

    /// The bytes a JSON string holds escaped: quote, backslash, controls.
    @inline(__always)
    static func isEscaped(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x22 || byte == 0x5C }

    /// The letter after the backslash for the bytes escaped in two
    /// characters; the other escaped bytes are written as \u00XX.
    @inline(__always)
    static func shortEscape(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "\""): UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): UInt8(ascii: "\\")
        case 0x0A: UInt8(ascii: "n")
        case 0x0D: UInt8(ascii: "r")
        case 0x09: UInt8(ascii: "t")
        default: nil
        }
    }

    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        case .bool(let value): out.append(contentsOf: value ? Array("true".utf8) : Array("false".utf8))
        case .number(let text): out.append(contentsOf: text.utf8)
        case .string(let string): JSON.writeString(string, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                element.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (position, entry) in object.entries.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(entry.key, to: &out)
                out.append(UInt8(ascii: ":"))
                entry.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func writeString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            guard isEscaped(byte) else {
                out.append(byte)
                continue
            }
            if let letter = shortEscape(byte) {
                out.append(0x5C)
                out.append(letter)
            } else {
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0xF)])
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSON: CustomStringConvertible {
    public var description: String { text }
}
