/// A detector's hit in scanned bytes.
public struct Finding: Sendable, Equatable {
    public var detector: String
    /// Byte offsets into what was scanned.
    public var start: Int
    public var end: Int

    public init(detector: String, start: Int, end: Int) {
        self.detector = detector
        self.start = start
        self.end = end
    }
}

/// All detectors compiled into one Hyperscan database. Scanning runs the
/// database once over the bytes, then confirms each candidate: validator,
/// context words, span shaping, and one winner where detectors overlap.
public final class Scanner: Sendable {
    public let detectors: [Detector]
    let patternSet: PatternSet
    /// Pattern index -> detector index.
    let owner: [Int]
    public let maxFindings: Int

    public struct ConfigurationError: Error, CustomStringConvertible {
        public var detector: String
        public var message: String
        public var description: String { "detector \(detector): \(message)" }
    }

    public init(detectors: [Detector], maxFindings: Int = 100_000) throws(ConfigurationError) {
        self.detectors = detectors
        self.maxFindings = maxFindings
        var patterns: [PatternSet.Pattern] = []
        var owner: [Int] = []
        for (index, detector) in detectors.enumerated() {
            for pattern in detector.patterns {
                patterns.append(pattern)
                owner.append(index)
            }
        }
        self.owner = owner
        do {
            patternSet = try PatternSet(patterns)
        } catch {
            let name = error.index >= 0 && error.index < owner.count ? detectors[owner[error.index]].id : "?"
            throw ConfigurationError(detector: name, message: error.message)
        }
    }

    public var detectorIDs: [String] {
        var seen = Set<String>()
        return detectors.map(\.id).filter { seen.insert($0).inserted }
    }

    /// The confirmed findings in `bytes`, in order of position.
    public func scan(_ bytes: UnsafeRawBufferPointer) throws(PatternSet.ScanError) -> [Finding] {
        var raw = try patternSet.scan(bytes)
        guard !raw.isEmpty else { return [] }
        // By start, then detector, then the longest end first: each
        // detector's candidates at one start are tried longest first.
        for index in raw.indices { raw[index].pattern = owner[raw[index].pattern] }
        Self.sortForConfirming(&raw)
        var confirmed: [(finding: Finding, priority: Int)] = []
        var reachedBy = [Int](repeating: -1, count: detectors.count) // end of each detector's last finding
        var index = 0
        // Detectors are read in place (an array element passed on would be
        // copied, arrays and strings retained, for every candidate).
        try detectors.withUnsafeBufferPointer { detectors throws(PatternSet.ScanError) in
            while index < raw.count {
                let detectorIndex = raw[index].pattern, start = raw[index].start
                var next = index
                while next < raw.count, raw[next].pattern == detectorIndex, raw[next].start == start { next += 1 }
                if start >= reachedBy[detectorIndex] {
                    var previousEnd = -1
                    for candidate in raw[index..<next] where candidate.end != previousEnd {
                        previousEnd = candidate.end
                        guard let span = confirm(detectors[detectorIndex], start: start, end: candidate.end, in: bytes) else { continue }
                        confirmed.append((Finding(detector: detectors[detectorIndex].id, start: span.start, end: span.end), detectors[detectorIndex].priority))
                        reachedBy[detectorIndex] = span.end
                        break
                    }
                }
                index = next
                // More than any real message holds: refuse rather than pass the rest unchecked.
                if confirmed.count > maxFindings { throw PatternSet.ScanError(code: PatternSet.tooManyCandidates) }
            }
        }
        return Self.resolveOverlaps(confirmed)
    }

    /// Orders candidates by start, then detector, then longest end first.
    /// Each is packed into one integer key (start, detector, and the length
    /// inverted), which sorts several times faster than comparing structs
    /// with a closure; a dense message has thousands of candidates. Values
    /// too large for the key are sorted the plain way.
    static func sortForConfirming(_ raw: inout [PatternSet.Match]) {
        let lengthBits = 24, patternBits = 8
        let lengthMask = (1 << lengthBits) - 1
        let fits = raw.allSatisfy { match in
            match.start >= 0 && match.start < 1 << (64 - lengthBits - patternBits - 1)
                && match.pattern >= 0 && match.pattern < 1 << patternBits
                && match.end >= match.start && match.end - match.start <= lengthMask
        }
        guard fits else {
            raw.sort { a, b in
                a.start != b.start ? a.start < b.start : a.pattern != b.pattern ? a.pattern < b.pattern : a.end > b.end
            }
            return
        }
        var keys = raw.map { match in
            match.start << (lengthBits + patternBits) | match.pattern << lengthBits | (lengthMask - (match.end - match.start))
        }
        keys.sort()
        for (index, key) in keys.enumerated() {
            let start = key >> (lengthBits + patternBits)
            raw[index] = PatternSet.Match(pattern: (key >> lengthBits) & ((1 << patternBits) - 1),
                                          start: start, end: start + lengthMask - (key & lengthMask))
        }
    }

    /// Plain bytes: scanned with a NUL after them, as every string of a
    /// message is, so a pattern that reads one byte past a value (to see
    /// where it ends) works at the very end too.
    public func scan(_ bytes: [UInt8]) throws(PatternSet.ScanError) -> [Finding] {
        var terminated = bytes
        terminated.append(0)
        do {
            return try terminated.withUnsafeBytes { try scan($0) }
        } catch let error as PatternSet.ScanError {
            throw error
        } catch {
            throw PatternSet.ScanError(code: -1)
        }
    }

    func confirm(_ detector: borrowing Detector, start: Int, end: Int, in bytes: UnsafeRawBufferPointer) -> (start: Int, end: Int)? {
        var start = start, end = end
        switch detector.span {
        case .match: break
        case .jwt:
            // Segments of the run; the token is the first header whose next segment is a payload.
            var segments: [Range<Int>] = []
            var segmentStart = start
            for index in start...end where index == end || bytes[index] == 0x2E {
                segments.append(segmentStart..<index)
                segmentStart = index + 1
            }
            func opensJSON(_ segment: Range<Int>) -> Bool {
                segment.count >= 3 && bytes[segment.lowerBound] == 0x65 && bytes[segment.lowerBound + 1] == 0x79 && bytes[segment.lowerBound + 2] == 0x4A
            }
            guard let header = segments.indices.first(where: { $0 + 2 < segments.count && opensJSON(segments[$0]) && opensJSON(segments[$0 + 1]) }) else {
                return nil
            }
            start = segments[header].lowerBound
            end = segments[header + 2].upperBound
        case .tail(let length, let dropping):
            end -= dropping
            start = max(start, end - length)
        case .valueAfterAssignment:
            // The first `:` or `=`: the keyword before it has none, the value may.
            guard let assignment = (start..<end).first(where: { bytes[$0] == 0x3A || bytes[$0] == 0x3D }) else { return nil }
            start = assignment + 1
            while start < end, [0x20, 0x09, 0x22, 0x27].contains(bytes[start]) { start += 1 }
            while end < bytes.count, end - start < 1024, Self.isValueByte(bytes[end]) { end += 1 }
        case .pemBlock:
            // Through its END line, within the same string (a NUL ends it).
            var limit = min(bytes.count, start + 64 * 1024)
            if let nul = (end..<limit).first(where: { bytes[$0] == 0 }) { limit = nul }
            let marker = Array("-----END ".utf8)
            var index = end
            search: while index + marker.count <= limit {
                if bytes[index] == 0x2D, (0..<marker.count).allSatisfy({ bytes[index + $0] == marker[$0] }) {
                    var close = index + marker.count
                    while close + 5 <= limit {
                        if (0..<5).allSatisfy({ bytes[close + $0] == 0x2D }) { end = close + 5; break search }
                        close += 1
                    }
                    break
                }
                index += 1
            }
        }
        guard end > start else { return nil }
        if let validator = detector.validator, !validator.check(bytes[start..<end]) { return nil }
        if detector.isolated, !Self.standsAlone(start: start, end: end, in: bytes) { return nil }
        if detector.needsContext, !Self.hasContext(detector, start: start, end: end, in: bytes) { return nil }
        return (start, end)
    }

    /// What a secret's value may hold: letters, digits and the symbols a
    /// generated password uses; not spaces, quotes, commas or semicolons.
    static let valueBytes = PatternSet.ByteClass(0x30...0x39, 0x41...0x5A, 0x61...0x7A, and: "_-+/=.~!@#$%^&*()[]{}|<>?")

    static func isValueByte(_ byte: UInt8) -> Bool { valueBytes.contains(byte) }

    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A)
    }

    /// Not glued by `-` or `.` to a letter or digit before, or to a digit after.
    static func standsAlone(start: Int, end: Int, in bytes: UnsafeRawBufferPointer) -> Bool {
        if start >= 2, bytes[start - 1] == 0x2D || bytes[start - 1] == 0x2E, isAlphanumeric(bytes[start - 2]) { return false }
        if end + 1 < bytes.count, bytes[end] == 0x2D || bytes[end] == 0x2E, Validator.isDigit(bytes[end + 1]) { return false }
        return true
    }

    /// Whether a context word appears (case-insensitively) in the window
    /// before `start` or, for the words that may follow, after `end`;
    /// within the same string: a NUL ends a window.
    static func hasContext(_ detector: borrowing Detector, start: Int, end: Int, in bytes: UnsafeRawBufferPointer) -> Bool {
        var from = start
        let limit = max(0, start - detector.contextWindow)
        while from > limit, bytes[from - 1] != 0 { from -= 1 }
        if detector.contextBytes.occurs(in: from..<start, of: bytes) { return true }
        var to = end
        let afterLimit = min(bytes.count, end + detector.contextWindowAfter)
        while to < afterLimit, bytes[to] != 0 { to += 1 }
        return detector.contextAfterBytes.occurs(in: end..<to, of: bytes)
    }

    /// Where findings of different detectors overlap, the higher priority
    /// keeps the bytes (a card number is not also a phone number).
    static func resolveOverlaps(_ findings: [(finding: Finding, priority: Int)]) -> [Finding] {
        guard findings.count > 1 else { return findings.map(\.finding) }
        let ranked = findings.enumerated().sorted { a, b in
            a.element.priority != b.element.priority ? a.element.priority > b.element.priority : a.offset < b.offset
        }
        // Kept spans by start: a new one overlaps only its neighbours there.
        var kept: [Finding] = []
        for (_, entry) in ranked {
            let f = entry.finding
            var low = 0, high = kept.count
            while low < high {
                let middle = (low + high) / 2
                if kept[middle].start < f.start { low = middle + 1 } else { high = middle }
            }
            if low > 0, kept[low - 1].end > f.start { continue }
            if low < kept.count, kept[low].start < f.end { continue }
            kept.insert(f, at: low)
        }
        return kept
    }
}
