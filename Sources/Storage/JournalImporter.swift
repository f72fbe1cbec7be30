import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#endif

/// Fills SQLite from the portal's audit journal on a thread of its own.
/// The first record appended while it waits wakes it; it lets records
/// gather for a moment, then imports everything whole in one transaction.
/// It also runs the write-ahead log's checkpoints and empties the journal
/// once everything in it is imported and it has grown large. Callers never
/// wait for it: their records are committed when appended.
final class JournalImporter: @unchecked Sendable {
    let journal: AuditJournal
    let pool: DatabasePool
    /// How long records gather after the first wakes the importer: fewer,
    /// larger transactions under load, at most a few hundred a second.
    static let gather: useconds_t = 2000
    /// Imports between passive checkpoints of the write-ahead log.
    static let checkpointEvery = 64
    /// The journal is emptied once this long and fully imported.
    var emptyAbove: Int64 = 16 << 20
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

    /// Starts the thread, once; called on the first append.
    func startIfNeeded() {
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
            records += tail.events.count
            if tail.events.isEmpty || tail.end >= tail.fileLength { return (records, tail) }
        }
    }

    private func run() {
        var imports = 0
        var retryWait: useconds_t = 0
        while true {
            journal.condition.lock()
            while !stopping && journal.end == journal.importedEnd {
                journal.importerIdle = true
                journal.condition.wait()
            }
            let stop = stopping
            journal.condition.unlock()
            if stop { break }
            usleep(retryWait > 0 ? retryWait : Self.gather)
            do {
                let tail = try importOnce()
                if tail.events.isEmpty && tail.end < tail.fileLength && tail.end == journal.importedEnd {
                    // Bytes that are not a whole record, and stay so: a damaged record.
                    throw StoreError.journal("the record at offset \(tail.end) of \(journal.path) cannot be read")
                }
                retryWait = 0
            } catch {
                // The records are safe in the journal; appends go on until the backlog limit.
                journal.condition.lock()
                journal.importFailure = error
                journal.condition.unlock()
                retryWait = min(max(retryWait * 2, 10_000), Self.maxRetryWait)
                continue
            }
            imports += 1
            if imports >= Self.checkpointEvery {
                imports = 0
                // PASSIVE: copies what no reader needs back into the database, never waits on readers.
                _ = try? pool.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            }
            if journal.end > emptyAbove { empty() }
        }
        _ = try? importAll()
        journal.condition.lock()
        stopped = true
        journal.condition.broadcast()
        journal.condition.unlock()
    }

    /// Imports the last records and empties the file, holding appends off
    /// for that one transaction. The import commits before the file is
    /// emptied; a crash between the two leaves a file whose generation
    /// the database has read to its end.
    private func empty() {
        journal.condition.lock()
        defer { journal.condition.unlock() }
        guard let tail = try? pool.write({ db in try SQLiteStore.importJournal(db, path: journal.path) }) else { return }
        if tail.generation == journal.generation { journal.importedEnd = max(journal.importedEnd, tail.end) }
        guard tail.end == journal.end else { return }
        try? journal.emptyHoldingLock()
        journal.condition.broadcast()
    }
}
