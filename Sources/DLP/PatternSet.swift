import CDigitRuns
import CHyperscan
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Synchronization

/// Many patterns compiled for Hyperscan, scanned in two passes. The first
/// finds candidates: Hyperscan runs every pattern (or its cheaper
/// prefilter) at once without start-of-match tracking, and patterns made of
/// digits (``DigitGate``) take their candidates from a SIMD pass over runs
/// of digits instead. The second finds each match and where it starts by
/// scanning a short window around each candidate with that pattern's own
/// start-tracking database. Scratch space is per concurrent scan: a small
/// pool hands it out, so scans on different threads never share one.
public final class PatternSet: @unchecked Sendable {
    public struct Pattern: Sendable {
        public var expression: String
        public var caseless: Bool
        /// A cheaper expression for the first pass, found inside every
        /// match (for an email, its `@`); nil means the expression itself.
        public var prefilter: String?
        /// Whether the prefilter ignores case (context words do; the
        /// pattern they lead to may not).
        public var prefilterCaseless: Bool
        /// The window the second pass scans around a first-pass end: this
        /// many bytes before it and after it. Without a prefilter the
        /// window is the pattern's longest match before the end (from
        /// Hyperscan's analysis of the expression).
        public var before: Int
        public var after: Int
        /// When set, a match is the run of these bytes around a first-pass
        /// end, with no second scan (a JWT: a run of base64url and dots,
        /// however long its payload).
        public var run: ByteClass?
        /// When set, every byte a match can hold: the window shrinks to the
        /// run of these bytes around a first-pass end (the prefilter lies
        /// inside the match, so the match lies inside that run).
        public var within: ByteClass?
        /// When set, the first pass finds this pattern's candidates among
        /// runs of digits (see ``DigitGate``) rather than in Hyperscan.
        public var digitGate: DigitGate?
        /// The fewest ASCII digits a match holds (validator included): a
        /// window with fewer is not scanned again.
        public var minDigits = 0

        public init(_ expression: String, caseless: Bool = false) {
            self.expression = expression
            self.caseless = caseless
            self.prefilterCaseless = caseless
            self.before = 0
            self.after = 0
        }

        public init(_ expression: String, caseless: Bool = false, prefilter: String, prefilterCaseless: Bool? = nil, before: Int, after: Int) {
            self.expression = expression
            self.caseless = caseless
            self.prefilter = prefilter
            self.prefilterCaseless = prefilterCaseless ?? caseless
            self.before = before
            self.after = after
        }
    }

    /// A set of bytes, for runs.
    public struct ByteClass: Sendable {
        var bits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

        public init(_ ranges: ClosedRange<UInt8>...) {
            for range in ranges {
                for byte in range { insert(byte) }
            }
        }

        /// These ranges and the bytes of `extra`.
        public init(_ ranges: ClosedRange<UInt8>..., and extra: String) {
            for range in ranges {
                for byte in range { insert(byte) }
            }
            for byte in extra.utf8 { insert(byte) }
        }

        public mutating func insert(_ byte: UInt8) {
            let bit = UInt64(1) << (byte & 63)
            switch byte >> 6 {
            case 0: bits.0 |= bit
            case 1: bits.1 |= bit
            case 2: bits.2 |= bit
            default: bits.3 |= bit
            }
        }

        @inline(__always)
        func contains(_ byte: UInt8) -> Bool {
            let bit = UInt64(1) << (byte & 63)
            switch byte >> 6 {
            case 0: return bits.0 & bit != 0
            case 1: return bits.1 & bit != 0
            case 2: return bits.2 & bit != 0
            default: return bits.3 & bit != 0
            }
        }

        /// Letters, digits and `_`.
        public static let word = ByteClass(0x30...0x39, 0x41...0x5A, 0x61...0x7A, and: "_")

        /// Base64url and the dots between a JWT's parts.
        public static let jwt = ByteClass(0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x5F...0x5F, 0x2D...0x2E)
    }

    public struct CompileError: Error, CustomStringConvertible {
        public var index: Int
        public var message: String
        public var description: String { "pattern \(index): \(message)" }
    }

    public struct ScanError: Error, CustomStringConvertible {
        public var code: Int32
        public var description: String {
            code == PatternSet.tooManyCandidates ? "too many candidate matches to check (more than a real message holds)" : "Hyperscan scan failed (\(code))"
        }
    }

    /// One match: which pattern, and its leftmost start and end (bytes).
    public struct Match: Sendable, Equatable {
        public var pattern: Int
        public var start: Int
        public var end: Int
    }

    /// Hyperscan scratch space; used by one scan at a time.
    struct Scratch: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    // Immutable after init; Hyperscan databases are safe to share.
    private let prefilter: OpaquePointer
    private let confirm: [OpaquePointer]
    private let windows: [(before: Int, after: Int)]
    private let runs: [ByteClass?]
    private let within: [ByteClass?]
    private let minDigits: [Int]
    /// The patterns found from runs of digits, and the fewest digits any needs.
    private let gated: [(pattern: Int, gate: DigitGate)]
    private let gatedMinDigits: UInt32
    private let gatedMinDots: UInt32
    private let prototype: OpaquePointer
    private let spare = Mutex<[Scratch]>([])
    public let count: Int

    public init(_ patterns: [Pattern]) throws(CompileError) {
        count = patterns.count
        var windows: [(before: Int, after: Int)] = []
        for (index, pattern) in patterns.enumerated() {
            guard pattern.digitGate == nil else {
                windows.append((0, 0))
                continue
            }
            guard pattern.prefilter == nil, pattern.run == nil else {
                windows.append((pattern.before, pattern.after))
                continue
            }
            // The pattern itself is the first pass: its end is a match's end,
            // and its longest match is how far back the start can be.
            windows.append((try Self.longestMatch(pattern.expression, caseless: pattern.caseless, index: index), 0))
        }
        self.windows = windows
        runs = patterns.map(\.run)
        within = patterns.map(\.within)
        minDigits = patterns.map(\.minDigits)
        gated = patterns.enumerated().compactMap { index, pattern in pattern.digitGate.map { (index, $0) } }
        // The runs any gate may take: enough digits, dots or letters before.
        gatedMinDigits = UInt32(gated.map { $0.gate.shape.needsLetters || $0.gate.minDots > 0 ? Int(UInt32.max) : $0.gate.minDigits }.min() ?? 0)
        gatedMinDots = UInt32(gated.map { $0.gate.minDots > 0 ? $0.gate.minDots : Int(UInt32.max) }.min() ?? 0)
        let caseless = UInt32(HS_FLAG_CASELESS)
        let first = patterns.indices.filter { patterns[$0].digitGate == nil }
        prefilter = try Self.compile(first.map { patterns[$0].prefilter ?? patterns[$0].expression },
                                     flags: first.map { patterns[$0].prefilterCaseless ? caseless : 0 }, ids: first)
        var confirm: [OpaquePointer] = []
        for (index, pattern) in patterns.enumerated() {
            do {
                confirm.append(try Self.compile([pattern.expression], flags: [UInt32(HS_FLAG_SOM_LEFTMOST) | (pattern.caseless ? caseless : 0)], ids: [index]))
            } catch {
                confirm.forEach { hs_free_database($0) }
                throw error
            }
        }
        self.confirm = confirm
        var scratch: OpaquePointer?
        for database in [prefilter] + confirm {
            guard hs_alloc_scratch(database, &scratch) == HS_SUCCESS else {
                throw CompileError(index: -1, message: "could not allocate scratch space")
            }
        }
        self.prototype = scratch!
    }

    /// The longest match an expression can make, from Hyperscan's analysis;
    /// unbounded ones get a window back to the start of the buffer.
    static func longestMatch(_ expression: String, caseless: Bool, index: Int) throws(CompileError) -> Int {
        var info: UnsafeMutablePointer<hs_expr_info_t>?
        var error: UnsafeMutablePointer<hs_compile_error_t>?
        let status = hs_expression_info(expression, caseless ? UInt32(HS_FLAG_CASELESS) : 0, &info, &error)
        guard status == HS_SUCCESS, let info else {
            let message = error.flatMap { $0.pointee.message.map { String(cString: $0) } } ?? "cannot analyse the pattern (\(status))"
            if let error { hs_free_compile_error(error) }
            throw CompileError(index: index, message: message)
        }
        defer { free(info) }
        let width = info.pointee.max_width
        return width == UInt32.max ? Int.max / 4 : Int(width)
    }

    static func compile(_ expressions: [String], flags: [UInt32], ids patternIDs: [Int]) throws(CompileError) -> OpaquePointer {
        let copies = expressions.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let ids = patternIDs.map { UInt32($0) }
        var database: OpaquePointer?
        var error: UnsafeMutablePointer<hs_compile_error_t>?
        let status = copies.map { UnsafePointer($0) }.withUnsafeBufferPointer { exprs in
            hs_compile_multi(exprs.baseAddress, flags, ids, UInt32(expressions.count), UInt32(HS_MODE_BLOCK), nil, &database, &error)
        }
        guard status == HS_SUCCESS, let database else {
            let message = error.flatMap { $0.pointee.message.map { String(cString: $0) } } ?? "compile failed (\(status))"
            let position = Int(error?.pointee.expression ?? 0)
            let index = patternIDs.indices.contains(position) ? patternIDs[position] : -1
            if let error { hs_free_compile_error(error) }
            throw CompileError(index: index, message: message)
        }
        return database
    }

    deinit {
        for scratch in spare.withLock({ $0 }) { hs_free_scratch(scratch.pointer) }
        hs_free_scratch(prototype)
        hs_free_database(prefilter)
        confirm.forEach { hs_free_database($0) }
    }

    /// The first pass's candidates, merged as they come into one window per
    /// stretch of a pattern's ends (a match starts at most `before` bytes
    /// before an end, and the prefilter may end up to `after` bytes before
    /// the match does; for a pattern whose bytes are known, within their run
    /// around the end): memory grows with the windows, not with the ends.
    private final class Collector {
        let windows: [(before: Int, after: Int)]
        let within: [ByteClass?]
        let bytes: UnsafeRawBufferPointer
        // One scan's own state, touched by one thread: no runtime exclusivity checks.
        @exclusivity(unchecked) var openFrom: [Int]
        @exclusivity(unchecked) var openTo: [Int]
        @exclusivity(unchecked) var closed: [(pattern: Int, from: Int, to: Int)] = []
        @exclusivity(unchecked) var overflowed = false
        static let limit = 1 << 20

        init(windows: [(before: Int, after: Int)], within: [ByteClass?], bytes: UnsafeRawBufferPointer) {
            self.windows = windows
            self.within = within
            self.bytes = bytes
            openFrom = Array(repeating: -1, count: windows.count)
            openTo = Array(repeating: -1, count: windows.count)
        }

        /// A first-pass end of `pattern`.
        func add(pattern: Int, end: Int) -> Bool {
            let (before, after) = windows[pattern]
            if within[pattern] != nil, end > 0 {
                return add(pattern: pattern, around: end - 1..<end, before: before, after: after)
            }
            return add(pattern: pattern, around: end..<end, before: before, after: after)
        }

        /// A window from `before` bytes before `core` to `after` bytes after
        /// it; within the pattern's run of bytes, when it has one (`core`
        /// is inside the match). One byte more on each side, so word
        /// boundaries read their context.
        func add(pattern: Int, around core: Range<Int>, before: Int, after: Int) -> Bool {
            let length = bytes.count
            var low = max(0, core.lowerBound - before), high = min(length, core.upperBound + after)
            if let run = within[pattern], !core.isEmpty {
                var start = core.lowerBound
                while start > low, run.contains(bytes[start - 1]) { start -= 1 }
                var stop = core.upperBound
                while stop < high, run.contains(bytes[stop]) { stop += 1 }
                low = start
                high = stop
            }
            let from = max(0, low - 1)
            let to = min(length, high + 1)
            if openTo[pattern] >= 0, from <= openTo[pattern] {
                openTo[pattern] = max(openTo[pattern], to)
                return true
            }
            if openTo[pattern] >= 0 { closed.append((pattern, openFrom[pattern], openTo[pattern])) }
            openFrom[pattern] = from
            openTo[pattern] = to
            guard closed.count < Self.limit else {
                overflowed = true
                return false
            }
            return true
        }

        func finish() -> [(pattern: Int, from: Int, to: Int)] {
            for pattern in openTo.indices where openTo[pattern] >= 0 { closed.append((pattern, openFrom[pattern], openTo[pattern])) }
            return closed
        }
    }

    /// What the digit-run callback needs.
    private final class DigitRuns {
        let gated: [(pattern: Int, gate: DigitGate)]
        let collector: Collector
        let groups = DigitGroups()

        init(gated: [(pattern: Int, gate: DigitGate)], collector: Collector) {
            self.gated = gated
            self.collector = collector
        }

        func add(_ run: digit_run) {
            guard !collector.overflowed else { return }
            let core = Int(run.start)..<Int(run.end)
            var filled = false
            for (pattern, gate) in gated where gate.counts(run) {
                if !filled {
                    groups.fill(run, in: collector.bytes)
                    filled = true
                }
                if gate.fits(run, groups: groups) {
                    _ = collector.add(pattern: pattern, around: core, before: gate.before, after: gate.after)
                }
            }
        }
    }

    private final class WindowMatches {
        @exclusivity(unchecked) var found: [(start: Int, end: Int)] = []
        @exclusivity(unchecked) var overflowed = false
        static let limit = 1 << 20
    }

    /// The error for input made to swamp the scanner (more candidates than
    /// any real message has): rules that block fail closed on it.
    public static let tooManyCandidates: Int32 = -100

    /// Every match in `bytes`: each pattern's ends, each with its leftmost
    /// start. Input with more candidates than `Collector.limit` throws
    /// ``tooManyCandidates`` rather than being passed half-scanned.
    public func scan(_ bytes: UnsafeRawBufferPointer) throws(ScanError) -> [Match] {
        guard !bytes.isEmpty, let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self) else { return [] }
        let scratch = try takeScratch()
        defer { spare.withLock { $0.append(scratch) } }
        let collector = Collector(windows: windows, within: within, bytes: bytes)
        let status = hs_scan(prefilter, base, UInt32(bytes.count), 0, scratch.pointer, { id, _, to, _, context in
            Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue().add(pattern: Int(id), end: Int(to)) ? 0 : 1
        }, Unmanaged.passUnretained(collector).toOpaque())
        if collector.overflowed { throw ScanError(code: Self.tooManyCandidates) }
        guard status == HS_SUCCESS else { throw ScanError(code: status) }
        if !gated.isEmpty {
            let runs = DigitRuns(gated: gated, collector: collector)
            digit_runs(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count, gatedMinDigits, gatedMinDots, { context, run in
                Unmanaged<DigitRuns>.fromOpaque(context!)._withUnsafeGuaranteedRef { $0.add(run!.pointee) }
            }, Unmanaged.passUnretained(runs).toOpaque())
            if collector.overflowed { throw ScanError(code: Self.tooManyCandidates) }
        }
        // Second pass: each match with its start, from its window.
        let window = WindowMatches()
        let context = Unmanaged.passUnretained(window).toOpaque()
        var matches: [Match] = []
        for (pattern, windowFrom, windowTo) in collector.finish() {
            if let run = runs[pattern] {
                // The run around the first end in the window.
                let end = windowFrom + 1
                guard end > 0, end <= bytes.count, run.contains(bytes[end - 1]) else { continue }
                var start = end - 1, stop = end
                while start > 0, run.contains(bytes[start - 1]) { start -= 1 }
                while stop < bytes.count, run.contains(bytes[stop]) { stop += 1 }
                matches.append(Match(pattern: pattern, start: start, end: stop))
                continue
            }
            if minDigits[pattern] > 0, !Self.holds(digits: minDigits[pattern], in: bytes, from: windowFrom, to: windowTo) { continue }
            var from = windowFrom, to = windowTo
            while true {
                window.found.removeAll(keepingCapacity: true)
                let status = hs_scan(confirm[pattern], base + from, UInt32(to - from), 0, scratch.pointer, { _, start, end, _, context in
                    let window = Unmanaged<WindowMatches>.fromOpaque(context!).takeUnretainedValue()
                    guard window.found.count < WindowMatches.limit else {
                        window.overflowed = true
                        return 1
                    }
                    window.found.append((Int(start), Int(end)))
                    return 0
                }, context)
                if window.overflowed { throw ScanError(code: Self.tooManyCandidates) }
                guard status == HS_SUCCESS else { throw ScanError(code: status) }
                // A match touching a cut (not the buffer's edge) may go on
                // past it: widen that side and look again.
                let cutBefore = from > 0 && window.found.contains { $0.start == 0 }
                let cutAfter = to < bytes.count && window.found.contains { from + $0.end == to }
                guard cutBefore || cutAfter else { break }
                if cutBefore { from = max(0, from - max(64, to - from)) }
                if cutAfter { to = min(bytes.count, to + max(64, to - from)) }
            }
            for (start, end) in window.found {
                matches.append(Match(pattern: pattern, start: from + start, end: from + end))
            }
        }
        return matches
    }

    /// Whether `bytes[from..<to]` holds at least `digits` ASCII digits.
    static func holds(digits: Int, in bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Bool {
        var count = 0
        for index in from..<to where bytes[index] &- 0x30 < 10 {
            count += 1
            if count >= digits { return true }
        }
        return false
    }

    private func takeScratch() throws(ScanError) -> Scratch {
        if let scratch = spare.withLock({ $0.popLast() }) { return scratch }
        var clone: OpaquePointer?
        let status = hs_clone_scratch(prototype, &clone)
        guard status == HS_SUCCESS, let clone else { throw ScanError(code: status) }
        return Scratch(pointer: clone)
    }
}
