/// How tool names become JavaScript identifiers on `codemode`: `-`, `.`,
/// spaces (and any other character an identifier cannot hold) become `_`,
/// a leading digit gets a `_` before it, and a reserved word (or one of
/// `codemode`'s own members) gets a `_` after it.
public enum JSIdentifier {
    public static let reserved: Set<String> = [
        "await", "break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do",
        "else", "enum", "export", "extends", "false", "finally", "for", "function", "if", "implements", "import",
        "in", "instanceof", "interface", "let", "new", "null", "package", "private", "protected", "public",
        "return", "static", "super", "switch", "this", "throw", "true", "try", "typeof", "var", "void", "while",
        "with", "yield", "arguments", "eval", "undefined", "NaN", "Infinity",
        // codemode's own members, and what `await` looks up.
        "tools", "describe", "call", "then",
    ]

    public static func make(_ name: String) -> String {
        var out = String(String.UnicodeScalarView(name.unicodeScalars.map { scalar in
            let v = scalar.value
            let ok = (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) || v == 0x5F || v == 0x24
            return ok ? scalar : "_"
        }))
        if out.isEmpty { out = "_" }
        if let first = out.utf8.first, first >= 0x30, first <= 0x39 { out = "_" + out }
        if reserved.contains(out) { out += "_" }
        return out
    }
}
