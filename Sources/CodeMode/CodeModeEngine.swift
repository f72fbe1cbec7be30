import Foundation
import PortalCore

/// Runs model-written JavaScript in JavaScriptCore sandboxes on a fixed set
/// of dedicated threads, never on the event loops or the concurrency pool:
/// a runaway execution holds one sandbox thread at most until its limits
/// stop it, and other requests never wait on it.
///
/// Memory is limited by a watchdog, not by the OS: JavaScriptCore has no
/// heap-limit API and reserves ~134 GB of address space at start, so
/// `RLIMIT_AS`/`RLIMIT_DATA` cannot cap it, and a process per execution
/// costs ~20 ms. Every 10 ms of JavaScript CPU time the engine's own
/// watchdog (with polling traps, which reach allocation loops too) checks
/// the heap statistics against the limit, as well as CPU and wall time.
public final class CodeModeEngine: Sendable {
    public let settings: PortalConfig.CodeMode
    private let queue = JobQueue()

    struct Job: Sendable {
        var request: ExecutionRequest
        var enqueued: Date
        var done: @Sendable (ExecutionReport) -> Void
    }

    final class JobQueue: @unchecked Sendable {
        private let condition = NSCondition()
        private var jobs: [Job] = []

        func push(_ job: Job) {
            condition.lock()
            jobs.append(job)
            condition.signal()
            condition.unlock()
        }

        func pop() -> Job {
            condition.lock()
            defer { condition.unlock() }
            while jobs.isEmpty { condition.wait() }
            return jobs.removeFirst()
        }
    }

    public init(settings: PortalConfig.CodeMode) {
        self.settings = settings
        Self.configureEngine()
        for index in 0..<settings.workers {
            let worker = SandboxWorker(settings: settings)
            let queue = self.queue
            let thread = Thread {
                worker.prepareNext()
                while true {
                    let job = queue.pop()
                    let waited = Date().timeIntervalSince(job.enqueued)
                    if waited >= settings.timeoutSeconds || job.request.cancellation.isCancelled {
                        job.done(.failed(.busy, "every sandbox was busy for \(SandboxWorker.format(settings.timeoutSeconds)) s; try again shortly"))
                        continue
                    }
                    job.done(worker.execute(job.request))
                    worker.prepareNext()
                }
            }
            thread.name = "codemode-\(index)"
            // JavaScriptCore sizes its recursion limit from the thread's stack.
            thread.stackSize = 16 << 20
            thread.start()
        }
    }

    /// Runs one execution; returns when it settled or a limit stopped it.
    public func run(_ request: ExecutionRequest) async -> ExecutionReport {
        await withCheckedContinuation { continuation in
            queue.push(Job(request: request, enqueued: Date()) { continuation.resume(returning: $0) })
        }
    }

    /// Polling traps let the watchdog stop allocation-heavy loops too; the
    /// engine reads the option once, when the first VM starts.
    private static let configured: Bool = {
        setenv("JSC_usePollingTraps", "true", 1)
        return true
    }()

    static func configureEngine() {
        _ = configured
    }
}
