import PortalCore

#if canImport(Glibc)
import Glibc
#endif

/// Group commit for one event loop thread: the records its calls make
/// during one turn of the loop are appended to the journal together, with
/// one write, by a task that runs after the turn's I/O; each call's
/// completion (its answer) runs once that write is done. A record is
/// still committed before its call is answered, and a failed write fails
/// every call of the batch.
///
/// A batch belongs to the thread it was installed on and is touched only
/// there (thread-local), so it takes no lock; only the append does.
final class RecordBatch: @unchecked Sendable {
    let journal: AuditJournal
    let importer: JournalImporter
    /// Runs its argument on this thread, after the I/O the thread is
    /// handling now (an event loop's `execute`).
    let schedule: @Sendable (@escaping @Sendable () -> Void) -> Void
    private var records: [UInt8] = []
    private var completions: [@Sendable ((any Error)?) -> Void] = []

    init(journal: AuditJournal, importer: JournalImporter, schedule: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
        self.journal = journal
        self.importer = importer
        self.schedule = schedule
    }

    func add(_ event: AuditEvent, completion: @escaping @Sendable ((any Error)?) -> Void) {
        if completions.isEmpty { schedule { [self] in flush() } }
        JournalRecord.encode(event, into: &records)
        completions.append(completion)
    }

    /// Appends what was added since the last flush, then answers each call.
    func flush() {
        var waiting: [@Sendable ((any Error)?) -> Void] = []
        swap(&waiting, &completions)  // a completion may add to the next batch
        var failure: (any Error)?
        do {
            try journal.append(records: records)
        } catch {
            failure = error
        }
        records.removeAll(keepingCapacity: true)
        for completion in waiting { completion(failure) }
        if completions.isEmpty {
            waiting.removeAll(keepingCapacity: true)
            completions = waiting
        }
    }

    /// The batch installed on the calling thread, if any.
    static var current: RecordBatch? {
        pthread_getspecific(key).map { Unmanaged<RecordBatch>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Makes `batch` the calling thread's batch, for as long as the thread
    /// lives (or until another replaces it).
    static func install(_ batch: RecordBatch) {
        if let old = pthread_getspecific(key) { Unmanaged<RecordBatch>.fromOpaque(old).release() }
        pthread_setspecific(key, Unmanaged.passRetained(batch).toOpaque())
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { if let batch = $0 { Unmanaged<RecordBatch>.fromOpaque(batch).release() } }
        return key
    }()
}
