import Foundation
import GRDB
import PortalCore
import Synchronization
import Testing
@testable import Storage

/// The audit journal: a portal's records are committed by one append, and
/// reach SQLite exactly once, whoever imports them and whenever the
/// process ends.
@Suite("Audit journal") struct AuditJournalTests {
    func folder() -> String { NSTemporaryDirectory() + "audit-journal-\(UUID().uuidString)" }

    func event(_ tool: String) -> AuditEvent {
        var event = AuditEvent(kind: .call, portal: "p", sessionID: "s-1", principal: "ada", server: "wiki", tool: tool,
                               method: "tools/call", outcome: .ok)
        event.argumentHash = String(repeating: "ab", count: 32)
        event.durationMicros = 42
        return event
    }

    func tools(_ store: SQLiteStore) async throws -> [String] {
        var query = AuditQuery()
        query.limit = 10_000
        return try await store.query(query).reversed().compactMap(\.event.tool)
    }

    /// Records through the completion form, which for a portal runs before
    /// it returns: the error, or nil; a record that did not finish at once
    /// is a failure too.
    func recordAtOnce(_ store: SQLiteStore, _ event: AuditEvent) -> String? {
        let outcome = Mutex<String??>(.none)
        store.record(event) { error in outcome.withLock { $0 = .some(error.map { "\($0)" }) } }
        return outcome.withLock { $0 } ?? "the record did not finish before returning"
    }

    /// Appends records the way a portal does, without importing them (the
    /// process then dies before its importer ran).
    func appendWithoutImport(_ tools: [String], to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let journal = try AuditJournal(folder: folder)
        for tool in tools { try journal.append(event(tool)) }
        journal.close()
    }

    @Test func aRecordRoundTripsThroughItsBytes() throws {
        var full = event("search")
        full.time = Date(timeIntervalSince1970: 1_700_000_000.125)
        full.error = ""
        full.detail = #"{"rule":"r1","ünïcode":"✓"}"#
        full.executionID = "x-1"
        full.argumentBytes = 56
        full.resultBytes = -1
        // Times are kept as seconds since 1970 (as in SQLite); a Date made
        // from its reference date may differ in the last bit when converted.
        let bare = AuditEvent(time: Date(timeIntervalSince1970: 1_700_000_001.5), kind: .sessionClose, portal: "p",
                              principal: "anonymous", outcome: .denied)
        var bytes: [UInt8] = []
        JournalRecord.encode(full, into: &bytes)
        let first = bytes.count
        JournalRecord.encode(bare, into: &bytes)
        bytes.withUnsafeBytes { raw in
            let one = whole(raw, JournalRecord.find(raw, at: 0))
            #expect(one?.0 == full && one?.1 == first)
            let two = whole(raw, JournalRecord.find(raw, at: first))
            #expect(two?.0 == bare && two?.1 == bytes.count)
            // Cut short anywhere: a record still being written, and how much of it there will be.
            for length in [first + 3, first + 8, bytes.count - 1] {
                let found = JournalRecord.find(UnsafeRawBufferPointer(rebasing: raw[..<length]), at: first)
                guard case .partial(let needs) = found else { Issue.record("cut at \(length): \(found)"); continue }
                #expect(needs == (length - first < 8 ? 8 : bytes.count - first))
            }
        }
        // One byte changed: the hash no longer matches.
        bytes[first / 2] ^= 0x01
        let changed = bytes.withUnsafeBytes { raw -> Bool in
            if case .damaged = JournalRecord.find(raw, at: 0) { return true }
            return false
        }
        #expect(changed, "a changed byte was not noticed")
    }

    func whole(_ bytes: UnsafeRawBufferPointer, _ found: JournalRecord.Found) -> (AuditEvent, Int)? {
        guard case .record(let payload, let next) = found,
              let event = JournalRecord.event(from: UnsafeRawBufferPointer(rebasing: bytes[payload])) else { return nil }
        return (event, next)
    }

    /// A record larger than one read (a Code Mode execution's code, say)
    /// is read whole, and what follows it too.
    @Test func aRecordLargerThanOneReadIsImported() async throws {
        let folder = folder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let journal = try AuditJournal(folder: folder)
        defer { journal.close() }
        var big = event("big")
        big.detail = String(repeating: "x", count: 5000)
        try journal.append(event("a"))
        try journal.append(big)
        try journal.append(event("b"))
        var tail = try JournalTail.read(path: journal.path, generation: nil, after: 0, limit: 1000)
        #expect(tail.events.map(\.tool) == ["a"] && !tail.damaged)
        tail = try JournalTail.read(path: journal.path, generation: tail.generation, after: tail.end, limit: 1000)
        #expect(tail.events.map(\.tool) == ["big"] && tail.events.first?.detail?.count == 5000)
        tail = try JournalTail.read(path: journal.path, generation: tail.generation, after: tail.end, limit: 1000)
        #expect(tail.events.map(\.tool) == ["b"] && tail.end == tail.fileLength)
    }

    /// A call's record does not wait for SQLite: another process holding
    /// the write lock does not delay it, and it is imported afterwards.
    @Test func aRecordIsCommittedWhileTheDatabaseIsLocked() async throws {
        let folder = folder()
        let store = try SQLiteStore(folder: folder, writer: .journal)
        defer { store.close() }
        let other = try DatabaseQueue(path: folder + "/portal.sqlite")
        try await other.write { db in
            try db.execute(sql: "INSERT INTO tool_pin (server, tool, state, hash, definition) VALUES ('s', 't', 'pending', 'h', '{}')")
            #expect(recordAtOnce(store, event("during")) == nil)
        }
        #expect(try await tools(store) == ["during"])
    }

    /// Records a portal appended but never imported (it was killed) land
    /// when the next portal opens the folder, once: reopening again adds
    /// nothing.
    @Test func theNextPortalImportsWhatWasLeft() async throws {
        let folder = folder()
        try appendWithoutImport(["a", "b", "c"], to: folder)
        do {
            let store = try SQLiteStore(folder: folder, writer: .journal)
            defer { store.close() }
            #expect(store.recovered.records == 3 && store.recovered.droppedBytes == 0)
            #expect(try await tools(store) == ["a", "b", "c"])
        }
        let again = try SQLiteStore(folder: folder, writer: .journal)
        defer { again.close() }
        #expect(again.recovered.records == 0)
        #expect(try await tools(again) == ["a", "b", "c"])
    }

    /// A command's query sees a running portal's records at once (it
    /// imports them), and importing twice adds nothing.
    @Test func aCommandImportsARunningPortalsJournal() async throws {
        let folder = folder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let journal = try AuditJournal(folder: folder)
        defer { journal.close() }
        try journal.append(event("a"))
        try journal.append(event("b"))
        let command = try SQLiteStore(folder: folder, writer: .direct)
        #expect(try await tools(command) == ["a", "b"])
        try journal.append(event("c"))
        #expect(try await tools(command) == ["a", "b", "c"])
        #expect(try await tools(command) == ["a", "b", "c"])
    }

    /// A record cut short at the end (the machine stopped mid-write) is
    /// dropped at open, so the records after it are readable.
    @Test func aRecordCutShortIsDroppedAndNewOnesFollow() async throws {
        var torn: [UInt8] = []
        JournalRecord.encode(event("torn"), into: &torn)
        try await expectDropped(Array(torn.prefix(20)))
        // Whole in length, but its end never written (zeros from a block boundary on).
        try await expectDropped(Array(torn.prefix(40)) + [UInt8](repeating: 0, count: torn.count - 40))
    }

    /// Two records, then `tail` at the end of the file: the next portal
    /// imports the two, drops the tail, and records after it are read.
    func expectDropped(_ tail: [UInt8]) async throws {
        let folder = folder()
        try appendWithoutImport(["a", "b"], to: folder)
        let file = try #require(FileHandle(forWritingAtPath: folder + "/" + AuditJournal.fileName))
        file.seekToEndOfFile()
        file.write(Data(tail))
        try file.close()
        let store = try SQLiteStore(folder: folder, writer: .journal)
        defer { store.close() }
        #expect(store.recovered.records == 2 && store.recovered.droppedBytes == Int64(tail.count))
        try await store.record(event("c"))
        #expect(try await tools(store) == ["a", "b", "c"])
    }

    /// A whole record that does not read back, with records after it: the
    /// portal does not start (starting would lose them), and says where.
    /// Zeros at the end (what a power loss can leave) are dropped instead.
    @Test func aDamagedRecordStopsThePortalFromStarting() async throws {
        let folder = folder()
        try appendWithoutImport(["a", "b", "c"], to: folder)
        let path = folder + "/" + AuditJournal.fileName
        var first: [UInt8] = []
        JournalRecord.encode(event("a"), into: &first)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let damagedAt = Int(JournalHeader.size) + first.count
        bytes[damagedAt + 20] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: StoreError.self) { try SQLiteStore(folder: folder, writer: .journal) }
        #expect(error?.description.contains("the record at offset \(damagedAt) is damaged") == true, "\(String(describing: error))")
        // The record before it is imported; the file is left as it was.
        #expect(try await tools(SQLiteStore(folder: folder, writer: .direct)) == ["a"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == bytes.count)

        // A length that runs past the end, with records after it: damage too, not a torn write.
        let long = self.folder()
        try appendWithoutImport(["a", "b", "c"], to: long)
        let longPath = long + "/" + AuditJournal.fileName
        var longBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: longPath)))
        longBytes[damagedAt + 2] = 0x7F
        try Data(longBytes).write(to: URL(fileURLWithPath: longPath))
        let runsPast = #expect(throws: StoreError.self) { try SQLiteStore(folder: long, writer: .journal) }
        #expect(runsPast?.description.contains("the record at offset \(damagedAt) is damaged") == true, "\(String(describing: runsPast))")

        try await expectDropped([UInt8](repeating: 0, count: 4096))
    }

    /// The saved offset lies past the end of its own generation (the file
    /// lost writes in a power loss that had already been imported): the
    /// next portal starts the file afresh, and new records are imported.
    @Test func anOffsetPastTheEndStartsAfresh() async throws {
        let folder = folder()
        try appendWithoutImport(["a", "b", "c"], to: folder)
        #expect(try await tools(SQLiteStore(folder: folder, writer: .direct)) == ["a", "b", "c"])
        let path = folder + "/" + AuditJournal.fileName
        var first: [UInt8] = []
        JournalRecord.encode(event("a"), into: &first)
        #expect(truncate(path, off_t(JournalHeader.size) + off_t(first.count)) == 0)
        let store = try SQLiteStore(folder: folder, writer: .journal)
        defer { store.close() }
        #expect(store.recovered.records == 0 && store.recovered.droppedBytes == 0)
        for tool in ["d", "e", "f", "g"] { try await store.record(event(tool)) }
        #expect(try await tools(store) == ["a", "b", "c", "d", "e", "f", "g"])
    }

    /// A command reads a new generation from its start even where the old
    /// generation's offset lies inside it, and imports nothing twice.
    @Test func aCommandReadsANewGenerationFromItsStart() async throws {
        let folder = folder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let journal = try AuditJournal(folder: folder)
        defer { journal.close() }
        let command = try SQLiteStore(folder: folder, writer: .direct)
        try journal.append(event("a"))
        try journal.append(event("b"))
        #expect(try await tools(command) == ["a", "b"])
        let (oldEnd, oldGeneration) = journal.locked { ($0.end, $0.generation) }
        try journal.locked { try $0.emptyHoldingLock() }
        for index in 0..<6 { try journal.append(event("n\(index)")) }
        #expect(journal.locked { $0.end > oldEnd && $0.generation != oldGeneration })
        #expect(try await tools(command) == ["a", "b", "n0", "n1", "n2", "n3", "n4", "n5"])
        #expect(try await tools(command) == ["a", "b", "n0", "n1", "n2", "n3", "n4", "n5"])
    }

    @Test func aFileThatIsNoJournalIsRefused() throws {
        let folder = folder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data("this is not an audit journal at all".utf8).write(to: URL(fileURLWithPath: folder + "/" + AuditJournal.fileName))
        let error = #expect(throws: StoreError.self) { try SQLiteStore(folder: folder, writer: .journal) }
        #expect(error?.description.contains("is not an audit journal") == true)
    }

    /// One serving portal per storage folder; the next may open it once
    /// the first has closed.
    @Test func oneServingPortalPerFolder() async throws {
        let folder = folder()
        let first = try SQLiteStore(folder: folder, writer: .journal)
        try await first.record(event("a"))
        let busy = #expect(throws: StoreError.self) { try SQLiteStore(folder: folder, writer: .journal) }
        #expect(busy?.description.contains("in use by another mcp-portal") == true)
        first.close()
        #expect(recordAtOnce(first, event("late"))?.contains("is closed") == true)
        let second = try SQLiteStore(folder: folder, writer: .journal)
        defer { second.close() }
        #expect(try await tools(second) == ["a"])
    }

    /// The portal's importer empties a large journal once it is imported;
    /// records after that start a new generation and are imported too,
    /// nothing twice.
    @Test func theImporterEmptiesTheJournal() async throws {
        let folder = folder()
        let store = try SQLiteStore(folder: folder, writer: .journal)
        defer { store.close() }
        let journal = try #require(store.importer?.journal)
        journal.locked { $0.emptyAbove = 1 }
        try await store.record(event("a"))
        try await store.record(event("b"))
        #expect(journal.wait { $0.end == 0 }, "the importer did not empty the journal")
        journal.locked { $0.emptyAbove = .max }
        for index in 0..<6 { try await store.record(event("n\(index)")) }
        #expect(journal.waitUntilImported(), "the importer did not catch up")
        #expect(try await tools(SQLiteStore(folder: folder, writer: .direct)) == ["a", "b", "n0", "n1", "n2", "n3", "n4", "n5"])
    }

    /// When SQLite stops taking records (here: locked by another process
    /// for longer than the importer waits), calls go on while records wait
    /// in the journal, up to the backlog limit; then calls fail closed.
    /// Once the database takes records again, the importer catches up by
    /// itself and records are accepted again.
    @Test func aBacklogPastTheLimitFailsClosed() async throws {
        let folder = folder()
        let store = try SQLiteStore(folder: folder, writer: .journal)
        defer { store.close() }
        let journal = try #require(store.importer?.journal)
        #expect(recordAtOnce(store, event("first")) == nil)
        #expect(journal.waitUntilImported())
        journal.locked { $0.maxBacklog = 1000 }
        let other = try DatabaseQueue(path: folder + "/portal.sqlite")
        let (accepted, failure, importFailed) = try await other.write { db -> (Int, String?, Bool) in
            try db.execute(sql: "INSERT INTO tool_pin (server, tool, state, hash, definition) VALUES ('s', 't', 'pending', 'h', '{}')")
            #expect(recordAtOnce(store, event("r0")) == nil)
            // The importer tries, waits out its busy timeout and fails; the record stays in the journal.
            let importFailed = journal.wait { $0.importFailure != nil }
            for index in 1..<100 {
                if let failure = recordAtOnce(store, event("r\(index)")) { return (index, failure, importFailed) }
            }
            return (100, nil, importFailed)
        }
        #expect(importFailed, "the importer never failed while the database was locked")
        #expect(accepted > 1 && accepted < 100)
        #expect(failure?.contains("wait for the database") == true, "\(failure ?? "no failure")")
        #expect(journal.waitUntilImported(), "the importer did not catch up after the lock was released")
        #expect(recordAtOnce(store, event("after")) == nil)
        #expect(try await tools(store) == ["first"] + (0..<accepted).map { "r\($0)" } + ["after"])
    }

    /// Runs `body` on a thread of its own (a batch is the thread's), and
    /// returns what it returns.
    func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// What a batching thread's turn did: completions before the flush,
    /// flushes scheduled, journal growth before and after, and each
    /// completion's outcome.
    struct Turn: Sendable {
        var completedBeforeFlush = 0
        var scheduled = 0
        var grewBeforeFlush: Int64 = 0
        var grewAfterFlush: Int64 = 0
        var outcomes: [String?] = []
    }

    /// Records `tools` on a batching thread, then runs what it scheduled.
    func batchedTurn(_ store: SQLiteStore, _ tools: [String], closeFirst: Bool = false) async throws -> Turn {
        let journal = try #require(store.importer?.journal)
        return try await onOwnThread {
            let scheduled = Mutex<[@Sendable () -> Void]>([])
            store.batchRecords(schedule: { work in scheduled.withLock { $0.append(work) } })
            let outcomes = Mutex<[String?]>([])
            let start = journal.locked { $0.end }
            for tool in tools {
                store.record(self.event(tool)) { error in outcomes.withLock { $0.append(error.map { "\($0)" }) } }
            }
            var turn = Turn()
            turn.completedBeforeFlush = outcomes.withLock { $0.count }
            turn.grewBeforeFlush = journal.locked { $0.end } - start
            if closeFirst { journal.close() }
            let work = scheduled.withLock { list in defer { list = [] }; return list }
            turn.scheduled = work.count
            for task in work { task() }
            turn.grewAfterFlush = journal.locked { $0.end } - start
            turn.outcomes = outcomes.withLock { $0 }
            return turn
        }
    }

    /// On a thread that batches (an event loop), the records of one turn
    /// are appended together by one task after it, and each call is
    /// answered only then; they land in SQLite in order, as others do.
    @Test func aTurnsRecordsAreAppendedTogetherBeforeTheyAreAnswered() async throws {
        let store = try SQLiteStore(folder: folder(), writer: .journal)
        defer { store.close() }
        #expect(recordAtOnce(store, event("before")) == nil)  // not a batching thread: at once
        let turn = try await batchedTurn(store, ["a", "b", "c"])
        #expect(turn.completedBeforeFlush == 0, "a call was answered before its record was appended")
        #expect(turn.grewBeforeFlush == 0)
        #expect(turn.scheduled == 1)
        #expect(turn.outcomes == [nil, nil, nil])
        var three: [UInt8] = []
        for tool in ["a", "b", "c"] { JournalRecord.encode(event(tool), into: &three) }
        #expect(turn.grewAfterFlush == Int64(three.count))
        #expect(try await tools(store) == ["before", "a", "b", "c"])
    }

    /// A batch that cannot be appended fails every call in it (closed).
    @Test func aBatchThatCannotBeAppendedFailsEveryCallInIt() async throws {
        let store = try SQLiteStore(folder: folder(), writer: .journal)
        defer { store.close() }
        let turn = try await batchedTurn(store, ["a", "b"], closeFirst: true)
        #expect(turn.outcomes.count == 2)
        #expect(turn.outcomes.allSatisfy { $0?.contains("closed") == true }, "\(turn.outcomes)")
        #expect(turn.grewAfterFlush == 0)
    }
}
