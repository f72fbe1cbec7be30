import Foundation
import GRDB
import PortalCore
import Testing
@testable import Storage

@Suite("Audit store migration") struct AuditMigrationTests {
    /// A database made before v4 (ids by AUTOINCREMENT) keeps its rows and
    /// their ids; new rows continue after the largest id; the table no
    /// longer writes sqlite_sequence on each insert.
    @Test func rowsKeepTheirIdsAndNewOnesFollow() async throws {
        let folder = NSTemporaryDirectory() + "audit-migration-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        do {
            let old = try DatabasePool(path: folder + "/portal.sqlite")
            try SQLiteStore.migrator.migrate(old, upTo: "v3: execution index only where there is one")
            try await old.write { db in
                for (id, tool) in [(1, "a"), (2, "b"), (7, "c")] {
                    try db.execute(sql: """
                        INSERT INTO audit (id, time, kind, portal, principal, server, tool, outcome, duration_us, argument_bytes, result_bytes, execution_id)
                        VALUES (?, ?, 'call', 'p', 'ada', 'wiki', ?, 'ok', 10, 20, 30, ?)
                        """, arguments: [id, 1_700_000_000.0 + Double(id), tool, id == 7 ? "x-7" : nil])
                }
                #expect(try Int.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'audit'") == 7)
            }
            try old.close()
        }

        let store = try SQLiteStore(folder: folder)
        var query = AuditQuery()
        query.limit = 100
        let before = try await store.query(query)
        #expect(before.map(\.id) == [7, 2, 1])
        #expect(before.map(\.event.tool) == ["c", "b", "a"])
        #expect(before[0].event.executionID == "x-7" && before[0].event.durationMicros == 10 && before[0].event.resultBytes == 30)

        try await store.record(AuditEvent(kind: .call, portal: "p", principal: "ada", server: "wiki", tool: "d", outcome: .ok))
        let after = try await store.query(query)
        #expect(after.map(\.id) == [8, 7, 2, 1])
        query.afterID = 2
        #expect(try await store.query(query).map(\.event.tool) == ["c", "d"])
        query.afterID = nil
        query.executionID = "x-7"
        #expect(try await store.query(query).map(\.id) == [7])

        let schema = try await store.pool.read { db in
            (try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'audit'"),
             try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_sequence WHERE name = 'audit'"),
             try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' ORDER BY name"))
        }
        #expect(schema.0?.uppercased().contains("AUTOINCREMENT") == false)
        #expect(schema.1 == 0)
        #expect(schema.2 == ["audit_execution", "index_audit_on_time"])
    }
}

@Suite("Audit store and other writers") struct AuditOtherWriterTests {
    /// Another process writing (the portal importing its journal, say)
    /// holds the database's write lock for a moment: a command's record
    /// made meanwhile waits for it and lands, instead of failing.
    @Test func aRecordWaitsForAnotherWritersTransaction() async throws {
        let folder = NSTemporaryDirectory() + "audit-busy-\(UUID().uuidString)"
        // The other writer holds its transaction until the record has found
        // the lock taken and is waiting (or 10 s, when it does not wait).
        let waiting = DispatchSemaphore(value: 0)
        let store = try SQLiteStore(folder: folder, writer: .direct, whileBusy: { waiting.signal() })
        let other = try DatabaseQueue(path: folder + "/portal.sqlite")
        let recorded = try await other.write { db -> (Task<Result<Void, any Error>, Never>, DispatchTimeoutResult) in
            try db.execute(sql: "INSERT INTO tool_pin (server, tool, state, hash, definition) VALUES ('s', 't', 'pending', 'h', '{}')")
            let record = Task { () -> Result<Void, any Error> in
                do {
                    try await store.record(AuditEvent(kind: .call, portal: "p", principal: "ada", tool: "during", outcome: .ok))
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            return (record, waiting.wait(timeout: .now() + 10))
        }
        #expect(recorded.1 == .success, "the record never waited for the lock")
        if case .failure(let error) = await recorded.0.value { Issue.record("the record failed: \(error)") }
        var query = AuditQuery()
        query.tool = "during"
        #expect(try await store.query(query).count == 1)
    }
}
