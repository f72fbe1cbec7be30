import Crypto

/// Lower-case hex text of bytes: digests in audit records and pins,
/// session and execution ids.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        if let text = bytes.withContiguousStorageIfAvailable({ encode(UnsafeRawBufferPointer($0)) }) { return text }
        return Array(bytes).withUnsafeBytes { encode($0) }
    }

    /// The same for bytes in memory (a digest's `withUnsafeBytes`): one
    /// pass, no per-byte generic calls. An argument hash is made per call.
    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { text in
            for (index, byte) in bytes.enumerated() {
                text[2 * index] = digit(byte >> 4)
                text[2 * index + 1] = digit(byte & 0x0F)
            }
            return bytes.count * 2
        }
    }

    private static func digit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    /// `count` bytes from the system's secure generator, as hex.
    public static func random(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return encode((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}

extension Hex {
    /// SHA-256 of `bytes` as lower-case hex: argument and code hashes in
    /// audit records, tool pins.
    public static func sha256(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).withUnsafeBytes { encode($0) }
    }
}
