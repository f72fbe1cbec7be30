import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#endif

/// Fills SQLite from the portal's audit journal on a thread of its own.
/// The first record appended while it waits wakes it; it lets records
/// gather for a moment, then imports everything whole in one transaction.
/// It also runs the write-ahead log's checkpoints and empties the journal
/// once it has grown large and is imported. Callers never wait for it:
/// their records are committed when appended.
final class JournalImporter: @unchecked Sendable {
    let journal: AuditJournal
    let pool: DatabasePool
    /// How long records gather after the first wakes the importer: fewer,
    /// larger transactions under load, at most about a hundred a second
    /// (10 ms against 2 ms: the importer's CPU per call about halves).
    /// Queries import what is waiting themselves, so they never lag.
    static let gather: useconds_t = 10000
    /// Imports between passive checkpoints of the write-ahead log.
    static let checkpointEvery = 64
    /// Emptying the journal imports what is left while appends wait: only
    /// when this little is left.
    static let emptyWithin: Int64 = 256 << 10
    /// How long a failing import waits before the next try, at most.
    static let maxRetryWait: useconds_t = 1_000_000

    // Guarded by journal.condition.
    private var started = false
    private var stopping = false
    private var stopped = false

    init(journal: AuditJournal, pool: DatabasePool) {
        self.journal = journal
        self.pool = pool
    }

    /// Starts the thread, once the journal is recovered (it then waits for
    /// the first record).
    func start() {
        journal.condition.lock()
        defer { journal.condition.unlock() }
        guard !started, !stopping else { return }
        started = true
        let thread = Thread { [self] in run() }
        thread.name = "mcp-portal.audit"
        thread.start()
    }

    /// Imports what is left and ends the thread; returns once it has.
    func stop() {
        journal.condition.lock()
        stopping = true
        let running = started
        journal.condition.broadcast()
        while running && !stopped { journal.condition.wait() }
        journal.condition.unlock()
        if !running { _ = try? importAll() }
    }

    /// One import transaction of everything whole in the journal (up to
    /// the reading limit); updates what the appenders see as imported.
    @discardableResult
    func importOnce() throws -> JournalTail {
        let tail = try pool.write { db in try SQLiteStore.importJournal(db, path: journal.path) }
        journal.imported(tail)
        return tail
    }

    /// Imports until nothing whole is left.
    func importAll() throws -> (records: Int, tail: JournalTail) {
        var records = 0
        while true {
            let tail = try importOnce()
            records += tail.payloads.count
            if !tail.readsOn { return (records, tail) }
        }
    }

    private func run() {
        var imports = 0
        var retryWait: useconds_t = 0
        while true {
            let stop = journal.locked { journal in
                while !stopping && journal.end == journal.importedEnd {
                    journal.importerIdle = true
                    journal.condition.wait()
                }
                return stopping
            }
            if stop { break }
            usleep(retryWait > 0 ? retryWait : Self.gather)
            do {
                let tail = try importOnce()
                if tail.damaged {
                    throw StoreError.journal("the record at offset \(tail.end) of \(journal.path) is damaged")
                }
                retryWait = 0
            } catch {
                // The records are safe in the journal; appends go on until the backlog limit.
                journal.locked { journal in
                    journal.importFailure = error
                    journal.condition.broadcast()
                }
                retryWait = min(max(retryWait * 2, 10_000), Self.maxRetryWait)
                continue
            }
            imports += 1
            if imports >= Self.checkpointEvery {
                imports = 0
                checkpoint()
            }
            if journal.locked({ $0.end > $0.emptyAbove }) { empty() }
        }
        _ = try? importAll()
        journal.locked { journal in
            stopped = true
            journal.condition.broadcast()
        }
    }

    /// PASSIVE: copies what no reader needs back into the database and
    /// never waits on readers; it syncs the write-ahead log first, so what
    /// was imported survives a power loss from then on.
    func checkpoint() {
        _ = try? pool.writeWithoutTransaction { db in try db.checkpoint(.passive) }
    }

    /// Empties the file once what was imported from it is synced. What is
    /// left (at most `emptyWithin`) is imported while appends wait, in a
    /// transaction that commits before the file is emptied: a crash in
    /// between leaves a file whose generation the database has read to
    /// its end. The database's write lock is taken first, the journal's
    /// inside it, so appends never wait for another process's transaction.
    /// (Those last records are not synced: like SQLite's last commits with
    /// `synchronous = NORMAL`, a power loss right then can lose them.)
    private func empty() {
        checkpoint()
        var holding = false
        defer { if holding { journal.condition.unlock() } }
        let tail = try? pool.write { db -> JournalTail? in
            journal.condition.lock()
            holding = true
            guard journal.end - journal.importedEnd <= Self.emptyWithin else { return nil }
            return try SQLiteStore.importJournal(db, path: journal.path)
        }
        guard holding, let tail = tail ?? nil, tail.generation == journal.generation || tail.isEmpty else { return }
        if tail.generation == journal.generation { journal.importedEnd = max(journal.importedEnd, tail.end) }
        guard journal.importedEnd == journal.end else { return }
        try? journal.emptyHoldingLock()
        journal.condition.broadcast()
    }
}
