import Crypto

/// How upstream tools are named to clients: `{server_id}_{tool}`, always
/// within `^[A-Za-z0-9_-]{1,64}$`.
public enum ToolNaming {
    public static func isValidName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard (1...64).contains(bytes.count) else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D
        }
    }

    /// The client-facing name of `tool` on `server`. Characters outside the
    /// allowed set become `_`; a name over 64 characters keeps its first part
    /// and gets a stable 8-hex-digit hash suffix of the full name.
    public static func exposedName(server: String, tool: String) -> String {
        let cleaned = String(String.UnicodeScalarView(tool.unicodeScalars.map { scalar in
            let v = scalar.value
            let ok = (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) || v == 0x5F || v == 0x2D
            return ok ? scalar : "_"
        }))
        let full = "\(server)_\(cleaned)"
        if full.utf8.count <= 64, cleaned == tool { return full }
        let digest = SHA256.hash(data: Array("\(server)\u{0}\(tool)".utf8))
        let suffix = Hex.encode(digest.prefix(4))
        let keep = String(full.prefix(64 - 9))
        return "\(keep)_\(suffix)"
    }
}

