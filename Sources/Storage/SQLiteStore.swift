import Foundation
import GRDB
import PortalCore

/// The embedded store: one SQLite database in WAL mode holding audit records
/// and tool pins. Audit writes are batched: while one transaction commits,
/// new records queue up and go in the next, and each caller returns when its
/// own record is committed.
public final class SQLiteStore: AuditStore, PinStore, Sendable {
    let pool: DatabasePool
    let writer: BatchWriter

    /// Opens (and creates or migrates) `folder/portal.sqlite`.
    public init(folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        pool = try DatabasePool(path: (folder as NSString).appendingPathComponent("portal.sqlite"), configuration: configuration)
        try Self.migrator.migrate(pool)
        writer = BatchWriter(pool: pool)
    }

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

/// Commits audit records in batches on a thread of its own, off the event
/// loops and the concurrency pool: callers queue a record with what to do
/// once it is durable; the thread takes everything queued, commits it in
/// one transaction, and then runs each caller's completion.
final class BatchWriter: @unchecked Sendable {
    typealias Completion = @Sendable ((any Error)?) -> Void
    let pool: DatabasePool
    private let condition = NSCondition()
    private var queue: [(AuditEvent, Completion)] = []
    private var started = false

    init(pool: DatabasePool) { self.pool = pool }

    func append(_ event: AuditEvent, completion: @escaping Completion) {
        condition.lock()
        queue.append((event, completion))
        if !started {
            started = true
            let thread = Thread { [self] in loop() }
            thread.name = "mcp-portal.audit"
            thread.start()
        }
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let batch = queue
            queue = []
            condition.unlock()
            do {
                try pool.write { db in
                    let statement = try db.cachedStatement(sql: """
                        INSERT INTO audit (time, kind, portal, session_id, principal, server, tool, method, outcome, error,
                                           duration_us, argument_bytes, argument_hash, result_bytes, detail, execution_id)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """)
                    for (event, _) in batch {
                        try statement.execute(arguments: [
                            event.time.timeIntervalSince1970, event.kind.rawValue, event.portal, event.sessionID, event.principal,
                            event.server, event.tool, event.method, event.outcome.rawValue, event.error,
                            event.durationMicros, event.argumentBytes, event.argumentHash, event.resultBytes, event.detail,
                            event.executionID,
                        ])
                    }
                }
                for (_, completion) in batch { completion(nil) }
            } catch {
                for (_, completion) in batch { completion(error) }
            }
        }
    }
}
