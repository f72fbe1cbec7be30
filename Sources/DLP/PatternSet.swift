import CHyperscan
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Synchronization

/// A compiled Hyperscan database of many patterns, scanned in one pass.
/// Scratch space is per concurrent scan: a small pool hands it out, so
/// scans on different threads never share one.
public final class PatternSet: @unchecked Sendable {
    public struct Pattern: Sendable {
        public var expression: String
        public var caseless: Bool
        public init(_ expression: String, caseless: Bool = false) {
            self.expression = expression
            self.caseless = caseless
        }
    }

    public struct CompileError: Error, CustomStringConvertible {
        public var index: Int
        public var message: String
        public var description: String { "pattern \(index): \(message)" }
    }

    public struct ScanError: Error, CustomStringConvertible {
        public var code: Int32
        public var description: String { "Hyperscan scan failed (\(code))" }
    }

    /// One raw match: which pattern, and its leftmost start and end (bytes).
    public struct Match: Sendable, Equatable {
        public var pattern: Int
        public var start: Int
        public var end: Int
    }

    // Immutable after init; Hyperscan databases are safe to share.
    private let database: OpaquePointer
    private let prototype: OpaquePointer
    private let spare = Mutex<[Scratch]>([])

    /// Hyperscan scratch space; used by one scan at a time.
    struct Scratch: @unchecked Sendable {
        let pointer: OpaquePointer
    }
    public let count: Int

    public init(_ patterns: [Pattern]) throws(CompileError) {
        count = patterns.count
        let expressions = patterns.map { strdup($0.expression) }
        defer { expressions.forEach { free($0) } }
        let flags = patterns.map { UInt32(HS_FLAG_SOM_LEFTMOST) | ($0.caseless ? UInt32(HS_FLAG_CASELESS) : 0) }
        let ids = (0..<patterns.count).map(UInt32.init)
        var database: OpaquePointer?
        var error: UnsafeMutablePointer<hs_compile_error_t>?
        let status = expressions.map { UnsafePointer($0) }.withUnsafeBufferPointer { exprs in
            hs_compile_multi(exprs.baseAddress, flags, ids, UInt32(patterns.count), UInt32(HS_MODE_BLOCK),
                             nil, &database, &error)
        }
        guard status == HS_SUCCESS, let database else {
            let message = error.flatMap { $0.pointee.message.map { String(cString: $0) } } ?? "compile failed (\(status))"
            let index = Int(error?.pointee.expression ?? -1)
            if let error { hs_free_compile_error(error) }
            throw CompileError(index: index, message: message)
        }
        var scratch: OpaquePointer?
        guard hs_alloc_scratch(database, &scratch) == HS_SUCCESS, let scratch else {
            hs_free_database(database)
            throw CompileError(index: -1, message: "could not allocate scratch space")
        }
        self.database = database
        self.prototype = scratch
    }

    deinit {
        for scratch in spare.withLock({ $0 }) { hs_free_scratch(scratch.pointer) }
        hs_free_scratch(prototype)
        hs_free_database(database)
    }

    private final class Collector {
        var matches: [Match] = []
        let limit: Int
        var overflowed = false
        init(limit: Int) { self.limit = limit }
    }

    /// Every match in `bytes`, in the order Hyperscan reports them (by
    /// end offset). Stops collecting at `limit` matches.
    public func scan(_ bytes: UnsafeRawBufferPointer, limit: Int = 100_000) throws(ScanError) -> (matches: [Match], overflowed: Bool) {
        guard !bytes.isEmpty else { return ([], false) }
        let scratch = try takeScratch()
        defer { spare.withLock { $0.append(scratch) } }
        let collector = Collector(limit: limit)
        let context = Unmanaged.passUnretained(collector).toOpaque()
        let status = hs_scan(database, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), UInt32(bytes.count), 0, scratch.pointer, { id, from, to, _, context in
            let collector = Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue()
            guard collector.matches.count < collector.limit else {
                collector.overflowed = true
                return 1
            }
            collector.matches.append(Match(pattern: Int(id), start: Int(from), end: Int(to)))
            return 0
        }, context)
        guard status == HS_SUCCESS || status == HS_SCAN_TERMINATED else { throw ScanError(code: status) }
        return (collector.matches, collector.overflowed)
    }

    private func takeScratch() throws(ScanError) -> Scratch {
        if let scratch = spare.withLock({ $0.popLast() }) { return scratch }
        var clone: OpaquePointer?
        let status = hs_clone_scratch(prototype, &clone)
        guard status == HS_SUCCESS, let clone else { throw ScanError(code: status) }
        return Scratch(pointer: clone)
    }
}
