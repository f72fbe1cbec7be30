import Foundation
import MCPWire

/// A finding in a JSON message: which string, where in it.
public struct LocatedFinding: Sendable, Equatable {
    public var finding: Finding
    /// JSONPath of the string, `$.content[0].text`; `(base64)` marks text
    /// found by decoding the string.
    public var path: String
    public var base64: Bool
}

/// Walks every string value of a JSON message (not keys), scanning each
/// whole, with its path; base64 strings that decode to text are scanned
/// decoded too. Depth is bounded; a scanner error is reported, never
/// swallowed, so callers can fail closed.
public struct MessageScan: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case tooDeep(Int)
        case scanner(String)

        public var description: String {
            switch self {
            case .tooDeep(let depth): return "the message is nested deeper than \(depth) levels (dlp.max_depth)"
            case .scanner(let message): return "the scanner failed: \(message)"
            }
        }
    }

    let scanner: Scanner
    let maxDepth: Int
    /// Strings shorter than this hold nothing any detector finds.
    static let minimumLength = 6

    public init(scanner: Scanner, maxDepth: Int) {
        self.scanner = scanner
        self.maxDepth = maxDepth
    }

    public func findings(in json: JSON, path: String = "$") throws(Failure) -> [LocatedFinding] {
        var out: [LocatedFinding] = []
        try walk(json, path: path, depth: 0, into: &out)
        return out
    }

    func walk(_ json: JSON, path: String, depth: Int, into out: inout [LocatedFinding]) throws(Failure) {
        guard depth <= maxDepth else { throw .tooDeep(maxDepth) }
        switch json {
        case .string(let text):
            try scan(text, path: path, into: &out)
        case .array(let items):
            for (index, item) in items.enumerated() { try walk(item, path: "\(path)[\(index)]", depth: depth + 1, into: &out) }
        case .object(let object):
            for (key, value) in object { try walk(value, path: Self.child(path, key), depth: depth + 1, into: &out) }
        case .number, .bool, .null:
            break
        }
    }

    func scan(_ text: String, path: String, into out: inout [LocatedFinding]) throws(Failure) {
        var text = text
        guard text.utf8.count >= Self.minimumLength else { return }
        let found: [Finding]
        do {
            found = try text.withUTF8 { buffer throws(PatternSet.ScanError) in try scanner.scan(UnsafeRawBufferPointer(buffer)) }
        } catch let error as PatternSet.ScanError {
            throw .scanner(error.description)
        } catch {
            throw .scanner("\(error)")
        }
        out += found.map { LocatedFinding(finding: $0, path: path, base64: false) }
        if let decoded = Self.base64Text(text) {
            let inner: [Finding]
            do { inner = try scanner.scan(decoded) } catch { throw .scanner(error.description) }
            out += inner.map { LocatedFinding(finding: $0, path: path + "(base64)", base64: true) }
        }
    }

    /// The text inside a base64 string, when it is base64 of UTF-8 text.
    static func base64Text(_ text: String) -> [UInt8]? {
        let bytes = text.utf8
        guard bytes.count >= 16, bytes.count % 4 == 0 else { return nil }
        guard bytes.allSatisfy({ b in
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2B || b == 0x2F || b == 0x3D
        }) else { return nil }
        guard let data = Data(base64Encoded: text), !data.isEmpty else { return nil }
        let decoded = Array(data)
        guard String(validating: decoded, as: UTF8.self) != nil else { return nil }
        // Text, not binary: almost everything printable or whitespace.
        let printable = decoded.filter { $0 >= 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }.count
        return printable * 100 >= decoded.count * 95 ? decoded : nil
    }

    static func child(_ path: String, _ key: String) -> String {
        let plain = !key.isEmpty && key.utf8.allSatisfy { b in
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x5F
        }
        return plain ? "\(path).\(key)" : "\(path)[\(JSON.string(key).text)]"
    }
}

/// Replaces findings in a JSON message with `[REDACTED:DETECTOR]`,
/// keeping the JSON valid (findings in base64 text are redacted in the
/// decoded text, which is encoded again).
public enum Redactor {
    public static func redact(_ json: JSON, findings: [LocatedFinding], path: String = "$") -> JSON {
        let byPath = Dictionary(grouping: findings, by: \.path)
        return rewrite(json, path: path, byPath: byPath)
    }

    static func rewrite(_ json: JSON, path: String, byPath: [String: [LocatedFinding]]) -> JSON {
        switch json {
        case .string(let text):
            var result = text
            if let direct = byPath[path] { result = redact(text: Array(text.utf8), direct.map(\.finding)) }
            if let inside = byPath[path + "(base64)"], let decoded = MessageScan.base64Text(text) {
                let clean = redact(text: decoded, inside.map(\.finding))
                result = Data(clean.utf8).base64EncodedString()
            }
            return .string(result)
        case .array(let items):
            return .array(items.enumerated().map { rewrite($1, path: "\(path)[\($0)]", byPath: byPath) })
        case .object(let object):
            var out = JSONObject()
            for (key, value) in object { out[key] = rewrite(value, path: MessageScan.child(path, key), byPath: byPath) }
            return .object(out)
        default:
            return json
        }
    }

    static func redact(text bytes: [UInt8], _ findings: [Finding]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var position = 0
        for finding in findings.sorted(by: { $0.start < $1.start }) where finding.start >= position && finding.end <= bytes.count {
            out += bytes[position..<finding.start]
            out += Array("[REDACTED:\(finding.detector)]".utf8)
            position = finding.end
        }
        out += bytes[position...]
        // Cuts fall on ASCII boundaries of matches, so this stays valid UTF-8.
        return String(decoding: out, as: UTF8.self)
    }
}
