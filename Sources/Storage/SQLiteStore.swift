import Foundation
import GRDB
import GRDBSQLite
import PortalCore

/// The embedded store: one SQLite database in WAL mode holding audit records
/// and tool pins. Audit writes are batched: while one transaction commits,
/// new records queue up and go in the next, and each caller returns when its
/// own record is committed.
public final class SQLiteStore: AuditStore, PinStore, Sendable {
    let pool: DatabasePool
    let writer: BatchWriter

    /// Opens (and creates or migrates) `folder/portal.sqlite`.
    public convenience init(folder: String) throws {
        try self.init(folder: folder, whileBusy: nil)
    }

    /// `whileBusy` runs each time a commit finds another writer's lock and
    /// waits (tests wait on it).
    init(folder: String, whileBusy: (@Sendable () -> Void)?) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var configuration = Configuration()
        // Another process may write now and then (`mcp-portal tools approve`,
        // a CLI opening the store): a commit waits for it rather than failing
        // (an audit record that cannot be written fails its call closed).
        // Waits in 1 ms steps, up to `busyTimeout`.
        configuration.busyMode = .callback { tries in
            whileBusy?()
            guard Double(tries) < Self.busyTimeout * 1000 else { return false }
            usleep(1000)
            return true
        }
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Checkpoints run on the audit writer's thread (BatchWriter), not inside a caller's commit.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
        }
        pool = try DatabasePool(path: (folder as NSString).appendingPathComponent("portal.sqlite"), configuration: configuration)
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
        writer = BatchWriter(pool: pool)
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
        return migrator
    }

    // MARK: AuditStore

    public func record(_ event: AuditEvent) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            writer.append(event) { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }
        }
    }

    public func record(_ event: AuditEvent, completion: @escaping @Sendable ((any Error)?) -> Void) {
        writer.append(event, completion: completion)
    }

    public func query(_ query: AuditQuery) async throws -> [StoredAuditEvent] {
        try await pool.read { db in
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

/// Commits audit records in batches: callers queue a record with what to
/// do once it is durable. When no commit is running, the caller commits
/// its record itself, at once (no thread hand-off either way, which is
/// most of a call's latency at low load); while one runs, records queue
/// and the writer thread commits everything queued in one transaction,
/// then runs each caller's completion. Checkpoints of the write-ahead log
/// (the only step that syncs to disk) run on the writer thread, never on
/// a caller's.
final class BatchWriter: @unchecked Sendable {
    typealias Completion = @Sendable ((any Error)?) -> Void
    let pool: DatabasePool
    private let condition = NSCondition()
    private var queue: [(AuditEvent, Completion)] = []
    /// A commit is running (on a caller or on the writer thread).
    private var committing = false
    private var started = false
    /// Commits since the last checkpoint.
    private var commits = 0
    static let checkpointEvery = 256
    /// When the last commit ended. A caller commits its own record only
    /// when the store has been quiet this long: under load, records wait
    /// for the writer's next batch instead, which costs less per record.
    private var lastCommit = ContinuousClock.now
    static let quiet: Duration = .microseconds(200)

    init(pool: DatabasePool) { self.pool = pool }

    func append(_ event: AuditEvent, completion: @escaping Completion) {
        condition.lock()
        if !started {
            started = true
            let thread = Thread { [self] in loop() }
            thread.name = "mcp-portal.audit"
            thread.start()
        }
        guard !committing, queue.isEmpty, ContinuousClock.now - lastCommit > Self.quiet else {
            queue.append((event, completion))
            condition.signal()
            condition.unlock()
            return
        }
        committing = true
        condition.unlock()
        let error = commit([(event, completion)])
        finishCommit()
        completion(error)
    }

    private func finishCommit() {
        condition.lock()
        committing = false
        commits += 1
        lastCommit = .now
        // Wake the writer only when it has something to do.
        if !queue.isEmpty || commits >= Self.checkpointEvery { condition.signal() }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while committing || (queue.isEmpty && commits < Self.checkpointEvery) { condition.wait() }
            let batch = queue
            queue = []
            let checkpoint = commits >= Self.checkpointEvery
            if checkpoint { commits = 0 }
            committing = true
            condition.unlock()
            if checkpoint {
                // PASSIVE: copies what no reader needs back into the database, never blocks writers' turn for long.
                _ = try? pool.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            }
            let error = batch.isEmpty ? nil : commit(batch)
            condition.lock()
            committing = false
            if !batch.isEmpty { commits += 1 }
            lastCommit = .now
            condition.unlock()
            for (_, completion) in batch { completion(error) }
        }
    }

    /// One transaction for the batch; nil when it is durable. Values are
    /// bound straight to SQLite's statement: this runs for every call.
    private func commit(_ batch: [(AuditEvent, Completion)]) -> (any Error)? {
        // A single row commits on its own (SQLite's implicit transaction): no BEGIN and COMMIT to run.
        let pool = self.pool
        let write: ((Database) throws -> Void) throws -> Void = batch.count == 1
            ? { try pool.writeWithoutTransaction($0) }
            : { try pool.write($0) }
        do {
            try write { db in
                let statement = try db.cachedStatement(sql: """
                    INSERT INTO audit (time, kind, portal, session_id, principal, server, tool, method, outcome, error,
                                       duration_us, argument_bytes, argument_hash, result_bytes, detail, execution_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                let row = InsertRow(statement.sqliteStatement)
                for (event, _) in batch {
                    row.reset()
                    row.bind(1, event.time.timeIntervalSince1970)
                    row.bind(2, event.kind.rawValue)
                    row.bind(3, event.portal)
                    row.bind(4, event.sessionID)
                    row.bind(5, event.principal)
                    row.bind(6, event.server)
                    row.bind(7, event.tool)
                    row.bind(8, event.method)
                    row.bind(9, event.outcome.rawValue)
                    row.bind(10, event.error)
                    row.bind(11, Int64(event.durationMicros))
                    row.bind(12, Int64(event.argumentBytes))
                    row.bind(13, event.argumentHash)
                    row.bind(14, Int64(event.resultBytes))
                    row.bind(15, event.detail)
                    row.bind(16, event.executionID)
                    let code = sqlite3_step(row.statement)
                    guard code == SQLITE_DONE else {
                        throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                    }
                }
                row.reset()
            }
            return nil
        } catch {
            return error
        }
    }

    /// One prepared INSERT, bound value by value.
    struct InsertRow {
        let statement: OpaquePointer
        init(_ statement: OpaquePointer) { self.statement = statement }
        /// SQLite copies the text before the call returns.
        static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

        func reset() {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }

        func bind(_ index: Int32, _ value: Double) { sqlite3_bind_double(statement, index, value) }
        func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(statement, index, value) }

        func bind(_ index: Int32, _ value: String?) {
            guard var value else { return } // cleared bindings are NULL
            value.withUTF8 { text in
                _ = text.withMemoryRebound(to: CChar.self) { chars in
                    // An empty buffer may have no address, which SQLite would read as NULL.
                    guard let base = chars.baseAddress else { return sqlite3_bind_text(statement, index, "", 0, Self.transient) }
                    return sqlite3_bind_text(statement, index, base, Int32(chars.count), Self.transient)
                }
            }
        }
    }
}
