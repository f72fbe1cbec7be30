/// ASCII case-insensitive checks over bytes, for protocol text (HTTP field
/// names and values) and detector context words: only the letters A-Z
/// fold, and nothing allocates.
public enum ASCII {
    /// The byte, lowercased if it is an ASCII capital letter.
    @inlinable @inline(__always)
    public static func lower(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    /// Whether the byte may be in an HTTP token, such as a field name
    /// (tchar, RFC 9110 5.6.2).
    @inlinable
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

extension String {
    /// Whether the text starts with `prefix` (lowercase ASCII), ignoring ASCII case.
    @inlinable
    public func hasPrefixIgnoringASCIICase(_ prefix: StaticString) -> Bool {
        var text = self
        return text.withUTF8 { $0.startsWithASCIICaseInsensitive(prefix) }
    }

    /// Whether `needle` (lowercase ASCII) occurs in the text, ignoring ASCII case.
    @inlinable
    public func containsIgnoringASCIICase(_ needle: StaticString) -> Bool {
        var text = self
        return text.withUTF8 { $0.containsASCIICaseInsensitive(needle) }
    }
}

extension Collection<UInt8> {
    /// Whether these bytes start with `prefix` (lowercase ASCII), ignoring
    /// ASCII case. Header checks on the hot path, without Foundation; fastest
    /// on contiguous bytes (`String.withUTF8`), not a String's UTF8View.
    @inlinable
    public func startsWithASCIICaseInsensitive(_ prefix: StaticString) -> Bool {
        let prefix = UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
        guard count >= prefix.count else { return false }
        var index = startIndex
        for byte in prefix {
            guard ASCII.lower(self[index]) == byte else { return false }
            formIndex(after: &index)
        }
        return true
    }

    /// Whether `needle` (lowercase ASCII) occurs in these bytes, ignoring ASCII case.
    @inlinable
    public func containsASCIICaseInsensitive(_ needle: StaticString) -> Bool {
        var rest = self[...]
        while !rest.isEmpty {
            if rest.startsWithASCIICaseInsensitive(needle) { return true }
            rest = rest.dropFirst()
        }
        return false
    }

    /// Whether these bytes are `lowercase` (lowercase ASCII), ignoring ASCII case.
    @inlinable
    public func equalsASCIICaseInsensitive(_ lowercase: some Collection<UInt8>) -> Bool {
        count == lowercase.count && elementsEqual(lowercase, by: { ASCII.lower($0) == $1 })
    }

    /// Whether these bytes are `lowercase` (lowercase ASCII), ignoring ASCII case.
    @inlinable
    public func equalsASCIICaseInsensitive(_ lowercase: StaticString) -> Bool {
        equalsASCIICaseInsensitive(UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount))
    }
}
