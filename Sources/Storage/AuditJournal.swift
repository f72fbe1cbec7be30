import Foundation
import PortalCore

#if canImport(Glibc)
import Glibc
#endif

/// The audit journal: an append-only file beside the database, and the
/// point where the portal's audit records are committed. A record is
/// appended with one write(2) before its call is answered; from then on it
/// survives the process, as a commit to SQLite's write-ahead log does with
/// `synchronous = NORMAL` (the kernel holds it; neither syncs to disk per
/// record). SQLite is filled behind it in batches by ``JournalImporter``,
/// so queries and indexes stay where they were.
///
/// Only a serving portal appends, holding an exclusive lock on the file
/// for its lifetime. Any process may import what was appended: inside one
/// SQLite write transaction it reads the offset imported so far
/// (`audit_journal.imported`), inserts the complete records after it and
/// moves the offset, so each record lands exactly once.
///
/// The file starts with a 16-byte header: "MCPAJRN1" and a random
/// generation. Once everything in it is imported, the portal empties the
/// file and the next record starts a new generation; the database keeps
/// the generation its offset belongs to, so an offset never applies to a
/// file it was not taken from (a crash between import and emptying, or
/// between emptying and the next record, loses and repeats nothing).
final class AuditJournal: @unchecked Sendable {
    static let fileName = "audit.journal"
    let path: String
    /// -1 once closed.
    private var descriptor: Int32
    /// Guards `end`, `buffer` and `importedEnd`, and is what the importer waits on.
    let condition = NSCondition()
    /// The file's length: where the next record goes.
    private(set) var end: Int64
    /// How far the importer (of this process) has imported.
    var importedEnd: Int64 = 0
    /// The importer is waiting for a record.
    var importerIdle = false
    /// Why the last import failed, while imports fail.
    var importFailure: (any Error)?
    private var buffer: [UInt8] = []
    /// Why appends stopped, when a failed write left part of a batch behind.
    private var broken: String?
    /// The file's generation (a new one when the file is empty).
    private(set) var generation: UInt64
    /// Appends fail (their calls fail closed) once this much is waiting
    /// for SQLite: the database has stopped taking records.
    var maxBacklog: Int64 = 64 << 20
    /// The file is emptied once this long and (nearly) all imported.
    var emptyAbove: Int64 = 16 << 20

    /// Opens the journal for appending and takes its lock; fails when
    /// another portal holds it.
    init(folder: String) throws {
        let path = (folder as NSString).appendingPathComponent(Self.fileName)
        let descriptor = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw StoreError.failed("open", path) }
        var length = Int64(lseek(descriptor, 0, SEEK_END))
        var generation = JournalHeader.newGeneration()
        var failure: StoreError?
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            failure = .journal("\(path) is in use by another mcp-portal serving from the same storage folder")
        } else if length > 0 && length < JournalHeader.size {
            // A header cut short: nothing was appended after it.
            if ftruncate(descriptor, 0) == 0 { length = 0 } else { failure = .failed("truncate", path) }
        } else if length > 0 {
            if let header = JournalHeader.read(descriptor: descriptor) { generation = header } else { failure = .journal("\(path) is not an audit journal (unknown header)") }
        }
        if let failure {
            Glibc.close(descriptor)
            throw failure
        }
        self.path = path
        self.descriptor = descriptor
        self.end = length
        self.generation = generation
    }

    deinit { if descriptor >= 0 { Glibc.close(descriptor) } }

    /// Closes the file, releasing its lock; appends fail from now on.
    func close() {
        condition.lock()
        defer { condition.unlock() }
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = -1
    }

    /// Appends one record (one write).
    func append(_ event: AuditEvent) throws {
        var record: [UInt8] = []
        JournalRecord.encode(event, into: &record)
        try append(records: record)
    }

    /// Appends whole encoded records (``JournalRecord/encode(_:into:)``),
    /// one or many, with one write. A failed or short write is cut back
    /// off, so the file only ever holds whole records after `end`.
    func append(records: [UInt8]) throws {
        condition.lock()
        defer { condition.unlock() }
        guard descriptor >= 0 else { throw StoreError.journal(broken ?? "\(path) is closed (the portal is shutting down)") }
        guard end - importedEnd < maxBacklog else {
            throw StoreError.journal("\(end - importedEnd) bytes of audit records wait for the database"
                + (importFailure.map { " (it fails: \($0))" } ?? ""))
        }
        if end == 0 {
            // A new generation: its header goes first, in the same write.
            buffer.removeAll(keepingCapacity: true)
            JournalHeader.encode(generation, into: &buffer)
            buffer.append(contentsOf: records)
            try write(buffer)
        } else {
            try write(records)
        }
        if importerIdle {
            importerIdle = false
            condition.broadcast()
        }
    }

    /// Writes `bytes` at the end, holding the lock.
    private func write(_ bytes: [UInt8]) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { bytes in
                Glibc.write(descriptor, bytes.baseAddress! + written, bytes.count - written)
            }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                if written > 0 {
                    // Part of it is in the file, and an import may already
                    // have taken the whole records in that part: the file
                    // is not cut back (offsets would no longer match), and
                    // nothing more is appended. The next start drops the
                    // torn end.
                    Glibc.close(descriptor)
                    descriptor = -1
                    broken = "\(path) stopped taking records after a failed write (\(String(cString: strerror(code))))"
                }
                throw StoreError.failed("append to", path, code)
            }
            written += count
        }
        end += Int64(bytes.count)
    }

    /// Notes an import that committed (by this process's importer or a
    /// query): what appenders count as waiting shrinks.
    func imported(_ tail: JournalTail) {
        condition.lock()
        defer { condition.unlock() }
        if tail.generation == generation { importedEnd = max(importedEnd, tail.end) }
        importFailure = nil
        condition.broadcast()
    }

    /// Runs `body` holding the lock.
    func locked<T>(_ body: (AuditJournal) throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body(self)
    }

    /// Waits until everything appended so far is imported (tests).
    func waitUntilImported() -> Bool { wait { $0.importedEnd >= $0.end } }

    /// Waits until `done` holds, checked whenever imports change, for up to
    /// ten seconds; false when it did not come to hold (tests).
    func wait(until done: (AuditJournal) -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: 10)
        condition.lock()
        defer { condition.unlock() }
        while !done(self) {
            guard condition.wait(until: deadline) else { return done(self) }
        }
        return true
    }

    /// Empties the file; the next record starts a new generation. The
    /// caller holds `condition` and has committed the import of everything
    /// up to `end`.
    func emptyHoldingLock() throws {
        guard ftruncate(descriptor, 0) == 0 else {
            throw StoreError.failed("truncate", path)
        }
        end = 0
        importedEnd = 0
        generation = JournalHeader.newGeneration()
    }
}

/// Errors of the store's own making (SQLite's come as GRDB's).
public enum StoreError: Error, CustomStringConvertible {
    case journal(String)

    /// A system call on the journal failed: what was tried, and errno's text.
    static func failed(_ what: String, _ path: String, _ code: Int32 = errno) -> StoreError {
        .journal("cannot \(what) \(path): \(String(cString: strerror(code)))")
    }
    public var description: String {
        switch self {
        case .journal(let message): "audit journal: \(message)"
        }
    }
}

/// The file's first 16 bytes: "MCPAJRN1" and the generation (UInt64, little-endian).
enum JournalHeader {
    static let size: Int64 = 16
    static let magic = Array("MCPAJRN1".utf8)

    static func newGeneration() -> UInt64 { UInt64.random(in: 1...UInt64.max) }

    static func encode(_ generation: UInt64, into out: inout [UInt8]) {
        out.append(contentsOf: magic)
        withUnsafeBytes(of: generation.littleEndian) { out.append(contentsOf: $0) }
    }

    /// The generation, or nil when the file does not start with a header.
    static func read(descriptor: Int32) -> UInt64? {
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress!, $0.count, 0) }
        guard count == Int(size), Array(bytes[0..<8]) == magic else { return nil }
        return bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
    }
}

/// What follows the imported offset in a journal file.
struct JournalTail {
    /// The file's generation; nil when it has none yet (no file, or empty).
    var generation: UInt64?
    /// The bytes read, and where each whole record's payload lies in them
    /// (the import binds values straight from them).
    var bytes: [UInt8] = []
    var payloads: [Range<Int>] = []
    /// Where the last whole record read ends.
    var end: Int64
    /// The file's length when read.
    var fileLength: Int64
    /// The bytes at `end` are a whole record that does not read back (its
    /// hash or fields are wrong), not one still being written.
    var damaged = false

    var isEmpty: Bool { payloads.isEmpty }
    /// Whether another read could find more whole records now.
    var readsOn: Bool { !isEmpty && end < fileLength }

    /// The records read, as events (what the import stores; tests read them).
    var events: [AuditEvent] {
        bytes.withUnsafeBytes { raw in
            payloads.compactMap { JournalRecord.event(from: UnsafeRawBufferPointer(rebasing: raw[$0])) }
        }
    }

    /// Reads the whole records after `offset` (an offset into generation
    /// `generation`) in the file at `path`, about `limit` bytes of them, or
    /// one record however large. A file of another generation is read from
    /// its first record; an offset past the end of its own generation (the
    /// file lost its last writes in a power loss, after they were imported)
    /// reads nothing.
    static func read(path: String, generation: UInt64?, after offset: Int64, limit: Int = 4 << 20) throws -> JournalTail {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return JournalTail(end: 0, fileLength: 0) }
            throw StoreError.failed("read", path)
        }
        defer { close(descriptor) }
        let length = Int64(lseek(descriptor, 0, SEEK_END))
        guard length >= JournalHeader.size else { return JournalTail(end: 0, fileLength: length) }
        guard let fileGeneration = JournalHeader.read(descriptor: descriptor) else {
            // Emptied by the portal since its length was taken: nothing to read.
            if lseek(descriptor, 0, SEEK_END) < JournalHeader.size { return JournalTail(end: 0, fileLength: 0) }
            throw StoreError.journal("\(path) is not an audit journal (unknown header)")
        }
        let start = fileGeneration == generation ? min(max(offset, JournalHeader.size), length) : JournalHeader.size
        var tail = JournalTail(generation: fileGeneration, end: start, fileLength: length)
        var wanted = Int(min(length - start, Int64(limit)))
        while wanted > 0 {
            let bytes = try readBytes(descriptor, at: start, count: wanted, path: path)
            var position = 0
            var larger: Int?
            bytes.withUnsafeBytes { raw in
                reading: while true {
                    switch JournalRecord.find(raw, at: position) {
                    case .record(let payload, let next):
                        tail.payloads.append(payload)
                        position = next
                    case .partial(let needs):
                        // A first record larger than the limit, whole in the file: read it all.
                        if position == 0, needs > raw.count, Int64(needs) <= length - start { larger = needs }
                        break reading
                    case .damaged:
                        tail.damaged = true
                        break reading
                    }
                }
            }
            tail.end = start + Int64(position)
            tail.bytes = bytes
            // A file cut shorter since its length was taken (the portal
            // emptied it): what was read is all there is.
            guard let larger, bytes.count == wanted else { break }
            wanted = larger
        }
        return tail
    }

    /// `count` bytes from `offset`, fewer when the file is shorter now.
    static func readBytes(_ descriptor: Int32, at offset: Int64, count: Int, path: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let read = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + filled, count - filled, off_t(offset) + off_t(filled))
            }
            if read < 0, errno == EINTR { continue }
            guard read >= 0 else { throw StoreError.failed("read", path) }
            guard read > 0 else { break }
            filled += read
        }
        bytes.removeLast(count - filled)
        return bytes
    }
}

/// One journal record: the payload's length (UInt32, little-endian), its
/// FNV-1a hash (UInt32) and the payload. The payload: a format byte (1),
/// the time (Float64 bits), then the event's fields in declaration order;
/// a text is its UTF-8 length (UInt32; 0xFFFF_FFFF for none) and bytes, a
/// number eight bytes. A record that is cut short or does not match its
/// hash ends what can be read.
enum JournalRecord {
    static let format: UInt8 = 1
    static let none = UInt32.max

    static func encode(_ event: AuditEvent, into out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 8))
        out.append(format)
        put(event.time.timeIntervalSince1970.bitPattern, &out)
        put(event.kind.rawValue, &out)
        put(event.portal, &out)
        put(event.sessionID, &out)
        put(event.principal, &out)
        put(event.server, &out)
        put(event.tool, &out)
        put(event.method, &out)
        put(event.outcome.rawValue, &out)
        put(event.error, &out)
        put(UInt64(bitPattern: event.durationMicros), &out)
        put(UInt64(bitPattern: Int64(event.argumentBytes)), &out)
        put(event.argumentHash, &out)
        put(UInt64(bitPattern: Int64(event.resultBytes)), &out)
        put(event.detail, &out)
        put(event.executionID, &out)
        let payload = out.count - start - 8
        let hash = out.withUnsafeBytes { fnv1a(UnsafeRawBufferPointer(rebasing: $0[(start + 8)...])) }
        out.withUnsafeMutableBytes { bytes in
            bytes.storeBytes(of: UInt32(payload).littleEndian, toByteOffset: start, as: UInt32.self)
            bytes.storeBytes(of: hash.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    /// What `find` finds at a position.
    enum Found {
        /// A whole record: where its payload lies, and where the next begins.
        case record(payload: Range<Int>, next: Int)
        /// Not all of a record is there yet: it needs this many bytes from
        /// the position (a record being written, or one cut short).
        case partial(needs: Int)
        /// All of a record is there, and it does not read back.
        case damaged
    }

    static func find(_ bytes: UnsafeRawBufferPointer, at position: Int) -> Found {
        guard bytes.count - position >= 8 else { return .partial(needs: 8) }
        let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
        let hash = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position + 4, as: UInt32.self))
        guard length <= bytes.count - position - 8 else { return .partial(needs: 8 + length) }
        let range = (position + 8)..<(position + 8 + length)
        let payload = UnsafeRawBufferPointer(rebasing: bytes[range])
        guard fnv1a(payload) == hash, fields(payload, visit: { _, _ in }) else { return .damaged }
        return .record(payload: range, next: range.upperBound)
    }

    /// One field of a payload, in order: a number, a text, or no text.
    enum Field {
        case number(UInt64)
        case text(UnsafeRawBufferPointer)
        case none
    }

    /// Walks a payload's fields (after the format byte), telling `visit`
    /// each one's column (1-based, the INSERT's order); false when the
    /// payload is not one record of this format.
    static func fields(_ payload: UnsafeRawBufferPointer, visit: (Int32, Field) -> Void) -> Bool {
        var reader = Reader(bytes: payload)
        guard reader.byte() == format else { return false }
        for (index, isNumber) in layout.enumerated() {
            let column = Int32(index + 1)
            if isNumber {
                guard let number = reader.number() else { return false }
                visit(column, .number(number))
            } else {
                guard let text = reader.slice() else { return false }
                visit(column, text.map(Field.text) ?? .none)
            }
        }
        return reader.atEnd
    }

    /// Which fields are numbers (the rest are texts), in order: time, kind,
    /// portal, session, principal, server, tool, method, outcome, error,
    /// duration, argument bytes, argument hash, result bytes, detail, execution.
    static let layout = [true, false, false, false, false, false, false, false, false, false, true, true, false, true, false, false]

    /// The event in a payload whose hash matched; nil when its fields do not read.
    static func event(from payload: UnsafeRawBufferPointer) -> AuditEvent? {
        var values: [Field] = []
        guard fields(payload, visit: { _, field in values.append(field) }) else { return nil }
        func text(_ index: Int) -> String? {
            guard case .text(let bytes) = values[index] else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }
        func number(_ index: Int) -> UInt64 {
            guard case .number(let value) = values[index] else { return 0 }
            return value
        }
        guard let kind = text(1).flatMap(AuditEvent.Kind.init(rawValue:)), let portal = text(2), let principal = text(4),
              let outcome = text(8).flatMap(AuditEvent.Outcome.init(rawValue:)) else { return nil }
        var event = AuditEvent(time: Date(timeIntervalSince1970: Double(bitPattern: number(0))), kind: kind, portal: portal,
                               sessionID: text(3), principal: principal, server: text(5), tool: text(6), method: text(7),
                               outcome: outcome, error: text(9))
        event.durationMicros = Int64(bitPattern: number(10))
        event.argumentBytes = Int(Int64(bitPattern: number(11)))
        event.argumentHash = text(12)
        event.resultBytes = Int(Int64(bitPattern: number(13)))
        event.detail = text(14)
        event.executionID = text(15)
        return event
    }

    private static func put(_ value: UInt64, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func put(_ text: String?, _ out: inout [UInt8]) {
        guard var text else {
            return withUnsafeBytes(of: none.littleEndian) { out.append(contentsOf: $0) }
        }
        text.withUTF8 { utf8 in
            withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: utf8)
        }
    }

    static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for byte in bytes {
            hash = (hash ^ UInt32(byte)) &* 0x0100_0193
        }
        return hash
    }

    /// Whether a whole record that reads back starts anywhere after
    /// `position` (tried at every byte): what follows an unreadable record
    /// is then records, not the rest of a torn write.
    static func anyRecord(in bytes: UnsafeRawBufferPointer, after position: Int) -> Bool {
        var offset = position + 1
        while offset + 8 <= bytes.count {
            if case .record = find(bytes, at: offset) { return true }
            offset += 1
        }
        return false
    }

    /// Reads a payload front to back; each read is nil when the payload
    /// ends first.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        var atEnd: Bool { position == bytes.count }

        mutating func byte() -> UInt8? {
            guard position < bytes.count else { return nil }
            defer { position += 1 }
            return bytes[position]
        }

        mutating func number() -> UInt64? {
            guard bytes.count - position >= 8 else { return nil }
            defer { position += 8 }
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
        }

        /// `.some(nil)` for a text that is absent, nil when the payload ends.
        /// A text's bytes: `.some(nil)` for a text that is absent, nil when the payload ends.
        mutating func slice() -> UnsafeRawBufferPointer?? {
            guard bytes.count - position >= 4 else { return nil }
            let length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self))
            position += 4
            if length == JournalRecord.none { return .some(nil) }
            guard Int(length) <= bytes.count - position else { return nil }
            defer { position += Int(length) }
            return .some(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + Int(length))]))
        }
    }
}
