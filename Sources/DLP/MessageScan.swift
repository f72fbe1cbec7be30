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

/// Walks every string value of a JSON message and scans them all: the
/// strings of a message go into one buffer that the scanner reads in one
/// pass (a scan per string would cost more than the scanning), each behind
/// its key written as JSON (`"api_key": "`), so a value is read in its
/// context and detectors that need one ("secret", "ssn") see it; findings
/// count only inside values. Base64 strings that decode to text are scanned
/// decoded too. The buffer is flushed every `chunkBytes`, and a string
/// larger than that is scanned where it lies, so memory stays bounded
/// however big the message. Depth is bounded; a scanner error is reported,
/// never swallowed, so callers can fail closed.
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
    let chunkBytes: Int
    /// Strings shorter than this hold nothing any detector finds.
    static let minimumLength = 6

    /// Each detector's priority, for findings merged from separate scans.
    let priorities: [String: Int]
    /// How much of each edge of a string scanned where it lies is scanned
    /// again in the buffer: the head behind its key (detectors that read
    /// the key: `api_key`, "ssn"; a secret's value runs up to 1 KiB), the
    /// tail before a terminator (patterns that read a byte past the value).
    static let edgeBytes = 4096

    public init(scanner: Scanner, maxDepth: Int, chunkBytes: Int = 256 << 10) {
        self.scanner = scanner
        self.maxDepth = maxDepth
        self.chunkBytes = max(chunkBytes, 2 * Self.edgeBytes) // a big string's edges do not meet
        priorities = Dictionary(scanner.detectors.map { ($0.id, $0.priority) }, uniquingKeysWith: max)
    }

    public func findings(in json: JSON, path: String = "$") throws(Failure) -> [LocatedFinding] {
        var walk = Walk(scan: self, root: path)
        try walk.visit(json, node: 0, depth: 0)
        try walk.flush()
        return walk.out
    }

    /// One step of a JSON path: a key or an array index.
    enum Step {
        case root
        case key(String)
        case index(Int)
    }

    /// One scanned string in the buffer: where its value lies, and which
    /// path node it is.
    struct Segment {
        var start: Int
        var end: Int
        var node: Int
        var base64: Bool
        /// Where in its string the segment's bytes begin (a tail: not 0).
        var offset = 0
    }

    /// The state of one message's walk. Paths are kept as parent links and
    /// written out only for strings that hold a finding.
    struct Walk {
        let scan: MessageScan
        let root: String
        var nodes: [(parent: Int, step: Step)] = [(-1, .root)]
        var buffer: [UInt8] = []
        var segments: [Segment] = []
        var out: [LocatedFinding] = []

        init(scan: MessageScan, root: String) {
            self.scan = scan
            self.root = root
        }

        mutating func visit(_ json: JSON, node: Int, depth: Int) throws(Failure) {
            guard depth <= scan.maxDepth else { throw .tooDeep(scan.maxDepth) }
            switch json {
            case .string(let text):
                try add(text, key: nil, node: node)
            case .array(let items):
                for (index, item) in items.enumerated() {
                    if case .string(let text) = item, text.utf8.count < MessageScan.minimumLength { continue }
                    if case .number = item { continue }
                    nodes.append((node, .index(index)))
                    try visit(item, node: nodes.count - 1, depth: depth + 1)
                }
            case .object(let object):
                for (key, value) in object {
                    switch value {
                    case .string(let text):
                        guard text.utf8.count >= MessageScan.minimumLength else { continue }
                        nodes.append((node, .key(key)))
                        try add(text, key: key, node: nodes.count - 1)
                    case .array, .object:
                        nodes.append((node, .key(key)))
                        try visit(value, node: nodes.count - 1, depth: depth + 1)
                    case .number, .bool, .null:
                        continue
                    }
                }
            case .number, .bool, .null:
                break
            }
        }

        /// Queues a string (behind its key, if any) and its base64 text.
        mutating func add(_ text: String, key: String?, node: Int) throws(Failure) {
            var text = text
            let count = text.utf8.count
            guard count >= MessageScan.minimumLength else { return }
            if count >= scan.chunkBytes {
                // Too big to copy: scanned where it lies, on its own, and its
                // edges again in the buffer, in their context.
                try flush()
                let found: [Finding]
                do {
                    found = try text.withUTF8 { bytes throws(PatternSet.ScanError) in try scan.scanner.scan(UnsafeRawBufferPointer(bytes)) }
                } catch let error as PatternSet.ScanError {
                    throw .scanner(error.description)
                } catch {
                    throw .scanner("\(error)")
                }
                let edge = MessageScan.edgeBytes
                let before = out.count
                append(text.utf8.prefix(edge), key: key, node: node, base64: false)
                append(text.utf8.suffix(edge), key: nil, node: node, base64: false, offset: count - edge)
                try flush()
                // What only the edges show: not cut off by the copy's end, and
                // where it overlaps what the whole scan found, the higher
                // priority keeps the bytes (as in one scan).
                let edges = out[before...].map(\.finding).filter { $0.end < edge || $0.start > count - edge }
                out.removeSubrange(before...)
                let merged = Scanner.resolveOverlaps((found + edges).map { ($0, scan.priorities[$0.detector] ?? 0) })
                let path = self.path(node)
                for finding in merged {
                    out.append(LocatedFinding(finding: finding, path: path, base64: false))
                }
            } else {
                append(text.utf8, key: key, node: node, base64: false)
            }
            if let decoded = MessageScan.base64Text(text) {
                if decoded.count >= scan.chunkBytes { try flush() }
                append(decoded, key: key, node: node, base64: true)
            }
            if buffer.count >= scan.chunkBytes { try flush() }
        }

        mutating func append(_ bytes: some Collection<UInt8>, key: String?, node: Int, base64: Bool, offset: Int = 0) {
            // A NUL between strings: no detector reads across it.
            buffer.append(0)
            if let key {
                buffer.append(0x22)
                buffer.append(contentsOf: key.utf8)
                buffer.append(contentsOf: [0x22, 0x3A, 0x20, 0x22])
            }
            let start = buffer.count
            buffer.append(contentsOf: bytes)
            segments.append(Segment(start: start, end: buffer.count, node: node, base64: base64, offset: offset))
            buffer.append(0x22)
        }

        /// Scans what is queued and files each finding under its string;
        /// what falls outside a value (in a key) does not count.
        mutating func flush() throws(Failure) {
            guard !segments.isEmpty else { return }
            defer {
                buffer.removeAll(keepingCapacity: true)
                segments.removeAll(keepingCapacity: true)
            }
            let found: [Finding]
            do {
                // Every value in the buffer is followed by a quote: no terminator needed.
                found = try buffer.withUnsafeBytes { bytes throws(PatternSet.ScanError) in try scan.scanner.scan(bytes) }
            } catch let error as PatternSet.ScanError {
                throw .scanner(error.description)
            } catch {
                throw .scanner("\(error)")
            }
            var index = 0
            var named = -1, path = ""
            for finding in found {
                // Findings come in order of position, like the segments.
                while index < segments.count, segments[index].end < finding.end { index += 1 }
                guard index < segments.count else { break }
                let segment = segments[index]
                guard finding.start >= segment.start, finding.end <= segment.end else { continue }
                var local = finding
                local.start += segment.offset - segment.start
                local.end += segment.offset - segment.start
                if named != index {
                    // A string's findings share its path: written once.
                    named = index
                    path = self.path(segment.node)
                    if segment.base64 { path += "(base64)" }
                }
                out.append(LocatedFinding(finding: local, path: path, base64: segment.base64))
            }
        }

        func path(_ node: Int) -> String {
            var steps: [Step] = []
            var current = node
            while current > 0 {
                steps.append(nodes[current].step)
                current = nodes[current].parent
            }
            var path = root
            for step in steps.reversed() {
                switch step {
                case .key(let key): path = MessageScan.child(path, key)
                case .index(let index): path += "[\(index)]"
                case .root: break
                }
            }
            return path
        }
    }

    /// The text inside a base64 string, when it is base64 of UTF-8 text.
    static func base64Text(_ text: String) -> [UInt8]? {
        guard text.utf8.count >= 16, text.utf8.count % 4 == 0 else { return nil }
        var contiguous = text
        // On the string's own bytes: most strings stop at their first space.
        guard contiguous.withUTF8({ bytes in
            bytes.allSatisfy { b in
                (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2B || b == 0x2F || b == 0x3D
            }
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
