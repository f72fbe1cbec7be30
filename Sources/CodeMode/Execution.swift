import MCPWire
import Synchronization

/// What the sandbox asks of the portal while code runs. The portal answers
/// with the same policy, DLP and audit as for a direct call.
public protocol CodeModeHost: Sendable {
    /// The tools this caller may use, fixed for the execution.
    func catalog() -> CodeModeCatalog
    /// Calls a tool by its portal name on behalf of execution `executionID`.
    func callTool(name: String, arguments: JSON, executionID: String) async -> ToolCallOutcome
}

/// One run of model-written code.
public struct ExecutionRequest: Sendable {
    public enum Mode: String, Sendable {
        /// `codemode.tools()` and `describe()` only.
        case search
        /// Tool calls too.
        case execute
    }

    public var id: String
    public var code: String
    public var mode: Mode
    public var host: any CodeModeHost
    public var cancellation: ExecutionCancellation

    public init(id: String, code: String, mode: Mode, host: any CodeModeHost, cancellation: ExecutionCancellation = ExecutionCancellation()) {
        self.id = id
        self.code = code
        self.mode = mode
        self.host = host
        self.cancellation = cancellation
    }
}

/// Lets the portal stop an execution (the client cancelled, the session closed).
public final class ExecutionCancellation: Sendable {
    let flag = Atomic<Bool>(false)
    let wake = Mutex<(@Sendable () -> Void)?>(nil)

    public init() {}

    public var isCancelled: Bool { flag.load(ordering: .acquiring) }

    public func cancel() {
        flag.store(true, ordering: .releasing)
        wake.withLock { $0 }?()
    }
}

/// How an execution ended.
public struct ExecutionReport: Sendable {
    public enum Failure: String, Sendable {
        /// The code does not parse.
        case syntax = "SyntaxError"
        /// The code threw or rejected.
        case thrown = "Error"
        case timeout = "TimeoutError"
        case cpu = "CPULimitError"
        case memory = "MemoryLimitError"
        /// The returned value cannot be turned into JSON.
        case result = "ResultError"
        case neverSettled = "UnsettledError"
        case cancelled = "CancelledError"
        case busy = "SandboxBusyError"
        case tooLarge = "CodeTooLargeError"
    }

    public struct Log: Sendable, Equatable {
        public var level: String
        public var text: String
    }

    /// The returned value as JSON (nil for `undefined`), when it succeeded.
    public var value: JSON?
    public var failure: Failure?
    public var message: String?
    public var logs: [Log] = []
    public var calls = 0
    /// The most tool calls in flight at once (at most `codemode.concurrency`).
    public var peakCalls = 0
    public var truncated = false
    public var durationMicros: Int64 = 0
    public var cpuMicros: Int64 = 0

    public var succeeded: Bool { failure == nil }

    public init() {}

    static func failed(_ failure: Failure, _ message: String) -> ExecutionReport {
        var report = ExecutionReport()
        report.failure = failure
        report.message = message
        return report
    }
}
