import Foundation
import GRDB
import GRDBSQLite
import PortalCore

#if canImport(Glibc)
import Glibc
#endif

/// The embedded store: one SQLite database in WAL mode holding audit records
/// and tool pins, and, for a serving portal, the audit journal in front of it
/// (see ``AuditJournal``): a portal's records are committed by appending them
/// to the journal, and SQLite is filled behind it in batches.
public final class SQLiteStore: AuditStore, PinStore, Sendable {
    /// How audit records are committed.
    public enum Writer: Sendable {
        /// A serving portal: each record is appended to the journal, its
        /// commit point, and imported into SQLite in batches off the event
        /// loops. One portal per storage folder (it locks the journal).
        case journal
        /// Commands (`tools approve`, `audit`): each record commits to
        /// SQLite itself. Queries import a running portal's journal first.
        case direct
    }

    let pool: DatabasePool
    let journalPath: String
    let importer: JournalImporter?
    /// Records a portal found in its journal at open (left by a process
    /// that ended before importing them) and imported, and the bytes of
    /// a record cut short at its end (a crash of the machine mid-write)
    /// that were dropped.
    public let recovered: (records: Int, droppedBytes: Int64)

    /// Opens (and creates or migrates) `folder/portal.sqlite`.
    public convenience init(folder: String, writer: Writer = .direct) throws {
        try self.init(folder: folder, writer: writer, whileBusy: nil)
    }

    /// `whileBusy` runs each time a commit finds another writer's lock and
    /// waits (tests wait on it).
    init(folder: String, writer: Writer, whileBusy: (@Sendable () -> Void)?) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var configuration = Configuration()
        // Another process may write now and then (`mcp-portal tools approve`,
        // a CLI importing the journal): a commit waits for it rather than
        // failing. Waits in 1 ms steps, up to `busyTimeout`.
        configuration.busyMode = .callback { tries in
            whileBusy?()
            guard Double(tries) < Self.busyTimeout * 1000 else { return false }
            usleep(1000)
            return true
        }
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Checkpoints run on the importer's thread, never inside another commit.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
        }
        pool = try DatabasePool(path: (folder as NSString).appendingPathComponent("portal.sqlite"), configuration: configuration)
        journalPath = (folder as NSString).appendingPathComponent(AuditJournal.fileName)
        let migrating = try pool.read { db in try !Self.migrator.hasCompletedMigrations(db) }
        try Self.migrator.migrate(pool)
        if migrating {
            // Automatic checkpoints are off: a migration that rewrote a table
            // would otherwise leave a WAL as large as the table behind. (Best
            // effort: another process reading may keep it from finishing.
            // Only after a migration: the CLI opening the store while the
            // portal runs must not hold the write lock any longer than it does.)
            _ = try? pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        }
        switch writer {
        case .direct:
            importer = nil
            recovered = (0, 0)
        case .journal:
            let journal = try AuditJournal(folder: folder)
            let importer = JournalImporter(journal: journal, pool: pool)
            do {
                recovered = try Self.recover(journal, importer)
            } catch {
                journal.close()
                throw error
            }
            importer.start()
            self.importer = importer
        }
    }

    /// What an earlier process appended and did not import goes in first.
    /// What cannot be read at the end is a torn write (a crash of the
    /// machine mid-write; blocks never written read back as zeros, often
    /// inside a record) and is dropped, when no readable record follows it.
    /// When one does, the unreadable bytes are damage in the middle: the
    /// portal does not start, since starting would lose the records after
    /// them. Then the file starts afresh (a new generation), which also
    /// covers a file shorter than the offset saved for it.
    private static func recover(_ journal: AuditJournal, _ importer: JournalImporter) throws -> (records: Int, droppedBytes: Int64) {
        let (records, tail) = try importer.importAll()
        guard tail.generation != nil else { return (records, 0) }
        let rest = tail.fileLength - tail.end
        if rest > 0 {
            let descriptor = open(journal.path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw StoreError.failed("read", journal.path) }
            defer { Glibc.close(descriptor) }
            let bytes = try JournalTail.readBytes(descriptor, at: tail.end, count: Int(rest), path: journal.path)
            let recordsFollow = bytes.withUnsafeBytes { JournalRecord.anyRecord(in: $0, after: 0) }
            guard bytes.count == Int(rest), !recordsFollow else {
                throw StoreError.journal("""
                    \(journal.path): the record at offset \(tail.end) is damaged, and records follow it, so the \(rest) bytes \
                    from there cannot be imported (the records before it are). Keep the file for inspection and move it aside to start.
                    """)
            }
        }
        // Everything before is imported: synced first, so emptying the file cannot outlive the import in a power loss.
        importer.checkpoint()
        try journal.locked { try $0.emptyHoldingLock() }
        return (records, rest)
    }

    /// Imports what is left in the journal and releases it (a portal
    /// shutting down; another may then open the folder). Records made
    /// afterwards fail.
    public func close() {
        guard let importer else { return }
        importer.stop()
        importer.journal.close()
    }

    /// How long a commit waits for another process's write to finish.
    static let busyTimeout: TimeInterval = 2

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "audit") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("time", .double).notNull().indexed()
                t.column("kind", .text).notNull()
                t.column("portal", .text).notNull()
                t.column("session_id", .text)
                t.column("principal", .text).notNull()
                t.column("server", .text)
                t.column("tool", .text)
                t.column("method", .text)
                t.column("outcome", .text).notNull()
                t.column("error", .text)
                t.column("duration_us", .integer).notNull()
                t.column("argument_bytes", .integer).notNull()
                t.column("argument_hash", .text)
                t.column("result_bytes", .integer).notNull()
                t.column("detail", .text)
            }
            try db.create(table: "tool_pin") { t in
                t.column("server", .text).notNull()
                t.column("tool", .text).notNull()
                t.column("state", .text).notNull()
                t.column("hash", .text).notNull()
                t.column("definition", .text).notNull()
                t.primaryKey(["server", "tool", "state"])
            }
        }
        migrator.registerMigration("v2: execution ids") { db in
            try db.alter(table: "audit") { t in t.add(column: "execution_id", .text) }
            try db.create(index: "audit_execution", on: "audit", columns: ["execution_id"])
        }
        migrator.registerMigration("v3: execution index only where there is one") { db in
            // Most rows have no execution: a partial index is not updated for them.
            try db.drop(index: "audit_execution")
            try db.execute(sql: "CREATE INDEX audit_execution ON audit(execution_id) WHERE execution_id IS NOT NULL")
        }
        migrator.registerMigration("v4: audit ids without AUTOINCREMENT") { db in
            // AUTOINCREMENT rewrites sqlite_sequence on every insert: one more
            // page, so one more WAL frame, in every commit (about a fifth of a
            // one-row commit). Audit rows are never deleted, so the plain
            // rowid (the largest plus one) increases just as surely, and
            // `audit tail` follows it the same way. Existing rows keep their ids.
            try db.execute(sql: """
                CREATE TABLE audit_v4 (
                    id INTEGER PRIMARY KEY, time DOUBLE NOT NULL, kind TEXT NOT NULL, portal TEXT NOT NULL,
                    session_id TEXT, principal TEXT NOT NULL, server TEXT, tool TEXT, method TEXT,
                    outcome TEXT NOT NULL, error TEXT, duration_us INTEGER NOT NULL, argument_bytes INTEGER NOT NULL,
                    argument_hash TEXT, result_bytes INTEGER NOT NULL, detail TEXT, execution_id TEXT)
                """)
            let columns = "id, time, kind, portal, session_id, principal, server, tool, method, outcome, error, "
                + "duration_us, argument_bytes, argument_hash, result_bytes, detail, execution_id"
            try db.execute(sql: "INSERT INTO audit_v4 (\(columns)) SELECT \(columns) FROM audit")
            try db.execute(sql: "DROP TABLE audit")
            try db.execute(sql: "DELETE FROM sqlite_sequence WHERE name = 'audit'")
            try db.execute(sql: "ALTER TABLE audit_v4 RENAME TO audit")
            try db.execute(sql: "CREATE INDEX index_audit_on_time ON audit(time)")
            try db.execute(sql: "CREATE INDEX audit_execution ON audit(execution_id) WHERE execution_id IS NOT NULL")
        }
        migrator.registerMigration("v5: audit journal") { db in
            // How far the journal's current generation has been imported.
            try db.execute(sql: """
                CREATE TABLE audit_journal (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER, imported INTEGER NOT NULL);
                INSERT INTO audit_journal (id, generation, imported) VALUES (1, NULL, 0);
                """)
        }
        return migrator
    }

    // MARK: AuditStore

    /// Returns once the record is committed: appended to the journal (a
    /// portal), or in SQLite (commands).
    public func record(_ event: AuditEvent) async throws {
        guard let importer else {
            return try await pool.write { db in try Self.insert([event], db) }
        }
        try append(event, importer)
    }

    /// A portal's record is appended at once, and `completion` runs on the
    /// caller's thread before this returns; on a thread that batches
    /// records (``batchRecords(schedule:)``), it is appended with the
    /// others of the thread's turn, and `completion` runs after that.
    public func record(_ event: AuditEvent, completion: @escaping @Sendable ((any Error)?) -> Void) {
        guard let importer else {
            return pool.asyncWrite({ db in try Self.insert([event], db) }, completion: { _, result in
                if case .failure(let error) = result { completion(error) } else { completion(nil) }
            })
        }
        if let batch = RecordBatch.current, batch.journal === importer.journal {
            return batch.add(event, completion: completion)
        }
        do {
            try append(event, importer)
            completion(nil)
        } catch {
            completion(error)
        }
    }

    /// Makes the calling thread (an event loop) batch this store's records:
    /// those made during one turn of it are appended with one write, by a
    /// task `schedule` runs on the thread after the turn's I/O (the loop's
    /// `execute`). Lasts as long as the thread; a portal that writes
    /// directly to SQLite (``Writer/direct``) has nothing to batch.
    public func batchRecords(schedule: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
        guard let importer else { return }
        RecordBatch.install(RecordBatch(journal: importer.journal, importer: importer, schedule: schedule))
    }

    private func append(_ event: AuditEvent, _ importer: JournalImporter) throws {
        try importer.journal.append(event)
    }

    /// Imports every whole record in the journal (a running portal's, or
    /// one left behind) so queries see every committed record.
    public func importJournal() async throws {
        while true {
            let tail = try await pool.write { db in try Self.importJournal(db, path: self.journalPath) }
            importer?.journal.imported(tail)
            if !tail.readsOn { return }
        }
    }

    /// One import inside the caller's write transaction: the records after
    /// the offset saved for the journal's generation go in, and the offset
    /// moves past them, together.
    static func importJournal(_ db: Database, path: String) throws -> JournalTail {
        let row = try Row.fetchOne(db, sql: "SELECT generation, imported FROM audit_journal WHERE id = 1")
        let generation = (row?["generation"] as Int64?).map { UInt64(bitPattern: $0) }
        let tail = try JournalTail.read(path: path, generation: generation, after: row?["imported"] ?? 0)
        guard let fileGeneration = tail.generation, !tail.isEmpty else { return tail }
        try insert(tail, db)
        try db.execute(sql: "UPDATE audit_journal SET generation = ?, imported = ? WHERE id = 1",
                       arguments: [Int64(bitPattern: fileGeneration), tail.end])
        return tail
    }

    public func query(_ query: AuditQuery) async throws -> [StoredAuditEvent] {
        try await importJournal()
        return try await pool.read { db in
            var clauses: [String] = []
            var arguments: [any DatabaseValueConvertible] = []
            if let since = query.since { clauses.append("time >= ?"); arguments.append(since.timeIntervalSince1970) }
            if let until = query.until { clauses.append("time <= ?"); arguments.append(until.timeIntervalSince1970) }
            if let portal = query.portal { clauses.append("portal = ?"); arguments.append(portal) }
            if let server = query.server { clauses.append("server = ?"); arguments.append(server) }
            if let tool = query.tool { clauses.append("tool = ?"); arguments.append(tool) }
            if let outcome = query.outcome { clauses.append("outcome = ?"); arguments.append(outcome.rawValue) }
            if let kind = query.kind { clauses.append("kind = ?"); arguments.append(kind.rawValue) }
            if let execution = query.executionID { clauses.append("execution_id = ?"); arguments.append(execution) }
            if let after = query.afterID { clauses.append("id > ?"); arguments.append(after) }
            let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            // Newest first for queries; oldest first when following (tail).
            let order = query.afterID == nil ? "DESC" : "ASC"
            let sql = "SELECT * FROM audit \(whereSQL) ORDER BY id \(order) LIMIT ?"
            arguments.append(query.limit)
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map(Self.event(from:))
        }
    }

    static func event(from row: Row) -> StoredAuditEvent {
        var event = AuditEvent(
            time: Date(timeIntervalSince1970: row["time"]),
            kind: AuditEvent.Kind(rawValue: row["kind"]) ?? .call,
            portal: row["portal"], sessionID: row["session_id"], principal: row["principal"],
            server: row["server"], tool: row["tool"], method: row["method"],
            outcome: AuditEvent.Outcome(rawValue: row["outcome"]) ?? .error, error: row["error"]
        )
        event.durationMicros = row["duration_us"]
        event.argumentBytes = row["argument_bytes"]
        event.argumentHash = row["argument_hash"]
        event.resultBytes = row["result_bytes"]
        event.detail = row["detail"]
        event.executionID = row["execution_id"]
        return StoredAuditEvent(id: row["id"], event: event)
    }

    // MARK: PinStore

    public func pins(server: String) async throws -> [ToolPin] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM tool_pin WHERE server = ?", arguments: [server]).map(Self.pin(from:))
        }
    }

    public func allPins() async throws -> [ToolPin] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM tool_pin ORDER BY server, tool, state").map(Self.pin(from:))
        }
    }

    public func save(_ pin: ToolPin) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO tool_pin (server, tool, state, hash, definition) VALUES (?, ?, ?, ?, ?)",
                arguments: [pin.server, pin.tool, pin.state.rawValue, pin.hash, pin.definition]
            )
        }
    }

    public func approve(server: String, tool: String) async throws -> Bool {
        try await pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM tool_pin WHERE server = ? AND tool = ? AND state = 'pending'", arguments: [server, tool]) else {
                return false
            }
            try db.execute(sql: "DELETE FROM tool_pin WHERE server = ? AND tool = ?", arguments: [server, tool])
            try db.execute(
                sql: "INSERT INTO tool_pin (server, tool, state, hash, definition) VALUES (?, ?, 'approved', ?, ?)",
                arguments: [server, tool, row["hash"] as String, row["definition"] as String]
            )
            return true
        }
    }

    static func pin(from row: Row) -> ToolPin {
        ToolPin(server: row["server"], tool: row["tool"], hash: row["hash"],
                state: ToolPin.State(rawValue: row["state"]) ?? .pending, definition: row["definition"])
    }
}

extension SQLiteStore {
    /// Inserts records in the caller's transaction: each is encoded as the
    /// journal would hold it and bound from those bytes, so an event reaches
    /// its row one way, whoever writes it.
    static func insert(_ events: [AuditEvent], _ db: Database) throws {
        var bytes: [UInt8] = []
        var payloads: [Range<Int>] = []
        for event in events {
            let start = bytes.count
            JournalRecord.encode(event, into: &bytes)
            payloads.append((start + 8)..<bytes.count)
        }
        try insert(bytes: bytes, payloads: payloads, db)
    }

    /// Inserts the records a journal read found.
    static func insert(_ tail: JournalTail, _ db: Database) throws {
        try insert(bytes: tail.bytes, payloads: tail.payloads, db)
    }

    /// Binds each record's values straight from its payload's bytes (the
    /// journal's field order is the INSERT's).
    private static func insert(bytes: [UInt8], payloads: [Range<Int>], _ db: Database) throws {
        let row = try InsertRow(db)
        try bytes.withUnsafeBytes { raw in
            // Text is bound in place: the bindings are cleared before the bytes go.
            defer { row.reset() }
            for range in payloads {
                row.reset()
                _ = JournalRecord.fields(UnsafeRawBufferPointer(rebasing: raw[range])) { column, field in
                    switch field {
                    case .number(let bits):
                        // The time is a Float64's bits; the counts are Int64s.
                        if column == 1 { row.bind(column, Double(bitPattern: bits)) } else { row.bind(column, Int64(bitPattern: bits)) }
                    case .text(let bytes): row.bind(column, bytes)
                    case .none: break // cleared bindings are NULL
                    }
                }
                try row.step(db)
            }
        }
    }

    /// One prepared INSERT, bound value by value.
    struct InsertRow {
        let statement: OpaquePointer

        init(_ db: Database) throws {
            statement = try db.cachedStatement(sql: """
                INSERT INTO audit (time, kind, portal, session_id, principal, server, tool, method, outcome, error,
                                   duration_us, argument_bytes, argument_hash, result_bytes, detail, execution_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).sqliteStatement
        }

        /// SQLite copies the text before the call returns.
        static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

        func step(_ db: Database) throws {
            let code = sqlite3_step(statement)
            guard code == SQLITE_DONE else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
            }
        }

        /// Text whose bytes stay put until the row is stepped and reset:
        /// SQLite reads them in place (SQLITE_STATIC).
        func bind(_ index: Int32, _ bytes: UnsafeRawBufferPointer) {
            // An empty buffer may have no address, which SQLite would read as NULL.
            guard let base = bytes.baseAddress else {
                sqlite3_bind_text(statement, index, "", 0, Self.transient)
                return
            }
            sqlite3_bind_text(statement, index, base.assumingMemoryBound(to: CChar.self), Int32(bytes.count), nil)
        }

        func reset() {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }

        func bind(_ index: Int32, _ value: Double) { sqlite3_bind_double(statement, index, value) }
        func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(statement, index, value) }
    }
}
