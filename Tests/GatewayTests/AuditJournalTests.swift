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
        let bare = AuditEvent(kind: .sessionClose, portal: "p", principal: "anonymous", outcome: .denied)
        var bytes: [UInt8] = []
        JournalRecord.encode(full, into: &bytes)
        let first = bytes.count
        JournalRecord.encode(bare, into: &bytes)
        bytes.withUnsafeBytes { raw in
            let one = JournalRecord.decode(raw, at: 0)
            #expect(one?.0 == full && one?.1 == first)
            let two = JournalRecord.decode(raw, at: first)
            #expect(two?.0 == bare && two?.1 == bytes.count)
            // Cut short anywhere: not a record.
            for length in [first + 3, first + 8, bytes.count - 1] {
                #expect(JournalRecord.decode(UnsafeRawBufferPointer(rebasing: raw[..<length]), at: first) == nil)
            }
        }
        // One byte changed: the hash no longer matches.
        bytes[first / 2] ^= 0x01
        bytes.withUnsafeBytes { raw in #expect(JournalRecord.decode(raw, at: 0) == nil) }
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
        let folder = folder()
        try appendWithoutImport(["a", "b"], to: folder)
        var torn: [UInt8] = []
        JournalRecord.encode(event("torn"), into: &torn)
        let file = try #require(FileHandle(forWritingAtPath: folder + "/" + AuditJournal.fileName))
        file.seekToEndOfFile()
        file.write(Data(torn.prefix(20)))
        try file.close()
        let store = try SQLiteStore(folder: folder, writer: .journal)
        defer { store.close() }
        #expect(store.recovered.records == 2 && store.recovered.droppedBytes == 20)
        try await store.record(event("c"))
        #expect(try await tools(store) == ["a", "b", "c"])
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

    /// After the portal empties the journal, the next records start a new
    /// generation: they are imported from its start even where the old
    /// generation's offset lies inside them, and nothing is imported twice.
    @Test func anEmptiedJournalStartsANewGeneration() async throws {
        let folder = folder()
        let store = try SQLiteStore(folder: folder, writer: .journal)
        defer { store.close() }
        let importer = try #require(store.importer)
        importer.emptyAbove = 1
        var firstTwo: [UInt8] = []
        JournalRecord.encode(event("a"), into: &firstTwo)
        JournalRecord.encode(event("b"), into: &firstTwo)
        let firstEnd = JournalHeader.size + Int64(firstTwo.count)
        try await store.record(event("a"))
        try await store.record(event("b"))
        let first = importer.journal.generation
        // The importer imports both, then empties the file.
        #expect(importer.journal.wait { $0.end == 0 }, "the importer did not empty the journal")
        importer.emptyAbove = .max
        for index in 0..<6 { try await store.record(event("n\(index)")) }
        #expect(importer.journal.generation != first)
        // The old generation's offset lies inside the new records.
        #expect(importer.journal.end > firstEnd)
        // A command reads the new generation from its start.
        let command = try SQLiteStore(folder: folder, writer: .direct)
        #expect(try await tools(command) == ["a", "b", "n0", "n1", "n2", "n3", "n4", "n5"])
        #expect(importer.journal.waitUntilImported(), "the importer did not catch up")
        #expect(try await tools(store) == ["a", "b", "n0", "n1", "n2", "n3", "n4", "n5"])
    }

    /// When SQLite stops taking records (here: locked by another process
    /// for longer than the importer waits), records pile up in the journal
    /// until the backlog limit, then calls fail closed; once the database
    /// takes them again, so do records.
    @Test func aBacklogPastTheLimitFailsClosed() async throws {
        let folder = folder()
        let store = try SQLiteStore(folder: folder, writer: .journal)
        defer { store.close() }
        let journal = try #require(store.importer?.journal)
        journal.maxBacklog = 1000
        let other = try DatabaseQueue(path: folder + "/portal.sqlite")
        let (accepted, failure) = try await other.write { db -> (Int, String?) in
            try db.execute(sql: "INSERT INTO tool_pin (server, tool, state, hash, definition) VALUES ('s', 't', 'pending', 'h', '{}')")
            for index in 0..<100 {
                if let failure = recordAtOnce(store, event("r\(index)")) { return (index, failure) }
            }
            return (100, nil)
        }
        #expect(accepted > 1 && accepted < 100)
        #expect(failure?.contains("wait for the database") == true, "\(failure ?? "no failure")")
        try await store.importJournal()
        try await store.record(event("after"))
        #expect(try await tools(store) == (0..<accepted).map { "r\($0)" } + ["after"])
    }
}
