import CJavaScriptCore
import Foundation
import MCPWire
import PortalCore

/// One sandbox thread with its own JavaScriptCore context group (a VM).
/// Each execution gets a fresh global context in that group; the group is
/// kept between executions because making one costs about half a
/// millisecond. Everything JavaScript happens on this thread; tool calls
/// run on the concurrency pool and post their answers to the mailbox.
final class SandboxWorker: @unchecked Sendable {
    enum Message {
        case completion(serial: Int, call: Int, outcome: ToolCallOutcome)
        case wake
    }

    let settings: PortalConfig.CodeMode
    private let mailbox = NSCondition()
    private var messages: [Message] = []
    // Thread-confined: only the worker thread touches these.
    private var group: JSContextGroupRef?
    /// The heap of the group's VM when it was new: what an execution's
    /// memory is measured against.
    private var groupBaseline = 0.0
    private var groupExecutions = 0
    private var current: RunState?
    /// The next execution's context, made and bootstrapped while the thread
    /// was idle, so an execution starts without paying for it.
    private var prepared: Prepared?
    private var serial = 0
    /// A VM is replaced after this many executions, so garbage that no
    /// collection reclaimed cannot build up.
    static let executionsPerGroup = 500

    /// CPU time between watchdog checks. The engine counts it per thread.
    static let tick = 0.01

    init(settings: PortalConfig.CodeMode) {
        self.settings = settings
    }

    func post(_ message: Message) {
        mailbox.lock()
        messages.append(message)
        mailbox.signal()
        mailbox.unlock()
    }

    /// Waits for messages until `deadline`; empty when it passed.
    private func receive(until deadline: Date) -> [Message] {
        mailbox.lock()
        defer { mailbox.unlock() }
        while messages.isEmpty {
            if !mailbox.wait(until: deadline) { break }
        }
        defer { messages.removeAll(keepingCapacity: true) }
        return messages
    }

    // MARK: One execution

    final class RunState {
        let request: ExecutionRequest
        let catalog: CodeModeCatalog
        let serial: Int
        let context: JSGlobalContextRef
        let started = Date()
        let cpuStart = SandboxWorker.threadCPU()
        let deadline: Date
        var stop: ExecutionReport.Failure?
        var outcome: (value: JSON?, failure: ExecutionReport.Failure?, message: String?)?
        var logs: [ExecutionReport.Log] = []
        var logBytes = 0
        var logsCut = false
        var calls = 0
        var nextCall = 0
        var active = 0
        var peakActive = 0
        var queued: [Int] = []
        var pending: [Int: PendingCall] = [:]
        var form = CodeSource.Form.expression
        var errorConstructor: JSObjectRef?

        struct PendingCall {
            var name: String
            var arguments: JSON
            var resolve: JSObjectRef
            var reject: JSObjectRef
        }

        init(request: ExecutionRequest, catalog: CodeModeCatalog, serial: Int, context: JSGlobalContextRef, timeout: Double) {
            self.request = request
            self.catalog = catalog
            self.serial = serial
            self.context = context
            self.deadline = Date().addingTimeInterval(timeout)
        }
    }

    /// A fresh context with the bootstrap run, no code of anyone's yet.
    /// Its host functions reach the execution through `slot`, which is
    /// filled when an execution takes the context.
    final class Prepared {
        let context: JSGlobalContextRef
        let runner: JSObjectRef
        let errorConstructor: JSObjectRef?
        let slot: Slot

        init(context: JSGlobalContextRef, runner: JSObjectRef, errorConstructor: JSObjectRef?, slot: Slot) {
            self.context = context
            self.runner = runner
            self.errorConstructor = errorConstructor
            self.slot = slot
        }
    }

    final class Slot {
        var run: RunState?
    }

    func execute(_ request: ExecutionRequest) -> ExecutionReport {
        guard request.code.utf8.count <= settings.maxCodeBytes else {
            return .failed(.tooLarge, "the code is \(request.code.utf8.count) bytes; the limit is \(settings.maxCodeBytes) (codemode.max_code_bytes)")
        }
        guard let prepared = takePrepared(), let group else {
            return .failed(.thrown, "the sandbox could not start")
        }
        let context = prepared.context
        groupExecutions += 1
        serial += 1
        mailbox.lock()
        messages.removeAll()
        mailbox.unlock()
        let run = RunState(request: request, catalog: request.host.catalog(), serial: serial, context: context, timeout: settings.timeoutSeconds)
        run.errorConstructor = prepared.errorConstructor
        prepared.slot.run = run
        current = run
        request.cancellation.wake.withLock { $0 = { [weak self] in self?.post(.wake) } }
        defer {
            request.cancellation.wake.withLock { $0 = nil }
            for call in run.pending.values {
                JSValueUnprotect(context, call.resolve)
                JSValueUnprotect(context, call.reject)
            }
            if let error = run.errorConstructor { JSValueUnprotect(context, error) }
            JSValueUnprotect(context, prepared.runner)
            prepared.slot.run = nil
            current = nil
            JSGlobalContextRelease(context)
            // A VM stopped mid-job (a microtask among them) cannot make
            // another context: it gets a new one. So does an old one.
            if run.stop != nil || groupExecutions >= Self.executionsPerGroup {
                JSContextGroupRelease(group)
                self.group = nil
            }
        }
        armWatchdog(group)
        defer { JSContextGroupClearExecutionTimeLimit(group) }

        do {
            guard let main = try compile(run) else { return report(run) }
            _ = try JSC.call(context, prepared.runner, [main])
        } catch {
            if run.stop == nil, run.outcome == nil {
                run.outcome = (nil, .thrown, describe(error.value, run))
            }
        }
        // The event loop: deliver tool answers until the code's promise settles.
        while run.outcome == nil, run.stop == nil {
            if request.cancellation.isCancelled { run.stop = .cancelled; break }
            if run.pending.isEmpty {
                run.outcome = (nil, .neverSettled, "the code's promise never settled: nothing is left that could settle it (a missing await, resolve or return?)")
                break
            }
            let received = receive(until: run.deadline)
            if received.isEmpty, Date() >= run.deadline { run.stop = .timeout; break }
            for message in received {
                guard case .completion(let serial, let call, let outcome) = message, serial == run.serial else { continue }
                deliver(call, outcome, run)
                if run.stop != nil { break }
            }
        }
        return report(run)
    }

    private func report(_ run: RunState) -> ExecutionReport {
        var report = ExecutionReport()
        report.calls = run.calls
        report.peakCalls = run.peakActive
        report.durationMicros = Int64(Date().timeIntervalSince(run.started) * 1_000_000)
        report.cpuMicros = Int64((Self.threadCPU() - run.cpuStart) * 1_000_000)
        report.logs = run.logs
        if run.logsCut { report.truncated = true }
        if let stop = run.stop {
            report.failure = stop
            report.message = stopMessage(stop)
        } else if let outcome = run.outcome {
            report.failure = outcome.failure
            report.message = outcome.message
            report.value = outcome.value
        }
        if let value = report.value {
            let budget = max(256, settings.maxOutputBytes - run.logBytes)
            let text = value.text
            if text.utf8.count > budget {
                report.truncated = true
                let preview = String(decoding: text.utf8.prefix(budget / 2), as: UTF8.self)
                report.value = [
                    "truncated": true,
                    "notice": .string("The result was \(text.utf8.count) bytes; the limit is \(settings.maxOutputBytes) (codemode.max_output_bytes). Return less: filter, select fields or summarize in code."),
                    "preview": .string(preview),
                ]
            }
        }
        return report
    }

    private func stopMessage(_ stop: ExecutionReport.Failure) -> String {
        switch stop {
        case .timeout: return "the execution ran longer than \(Self.format(settings.timeoutSeconds)) s (codemode.timeout_seconds)"
        case .cpu: return "the code used more than \(Self.format(settings.cpuSeconds)) s of CPU (codemode.cpu_seconds); look for an endless loop"
        case .memory: return "the code used more than \(settings.memoryMB) MB of memory (codemode.memory_mb)"
        case .cancelled: return "the execution was cancelled"
        default: return stop.rawValue
        }
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }

    // MARK: Limits

    /// Polls the limits every tick of JavaScript CPU time (the engine's
    /// watchdog; with polling traps it reaches tight loops and allocation
    /// loops alike). JavaScriptCore has no heap cap, so memory is a limit
    /// on how much the heap grew during the execution.
    private func armWatchdog(_ group: JSContextGroupRef) {
        JSContextGroupSetExecutionTimeLimit(group, Self.tick, { context, raw in
            guard let raw, let context else { return true }
            let worker = Unmanaged<SandboxWorker>.fromOpaque(raw).takeUnretainedValue()
            return worker.shouldTerminate(context)
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    private func shouldTerminate(_ context: JSContextRef) -> Bool {
        guard let run = current else { return true }
        if run.stop == nil {
            if run.request.cancellation.isCancelled {
                run.stop = .cancelled
            } else if Date() >= run.deadline {
                run.stop = .timeout
            } else if Self.threadCPU() - run.cpuStart > settings.cpuSeconds {
                run.stop = .cpu
            } else if overMemory(context) {
                run.stop = .memory
            }
        }
        if run.stop != nil { return true }
        if let group = self.group { armWatchdog(group) }
        return false
    }

    /// Whether the VM's heap grew past the limit. Reading the statistics
    /// walks the heap, so it happens only here, while code runs long; when
    /// the heap looks too big, a full collection first tells live memory
    /// from garbage left by earlier executions.
    private func overMemory(_ context: JSContextRef) -> Bool {
        let limit = Double(settings.memoryMB) * 1_048_576
        guard Self.heapBytes(context) - groupBaseline > limit else { return false }
        JSSynchronousGarbageCollectForDebugging(context)
        return Self.heapBytes(context) - groupBaseline > limit
    }

    static func heapBytes(_ context: JSContextRef) -> Double {
        let statistics = JSGetMemoryUsageStatistics(context)
        return (JSC.number(context, JSC.property(context, statistics, "heapSize")) ?? 0)
            + (JSC.number(context, JSC.property(context, statistics, "extraMemorySize")) ?? 0)
    }

    static func threadCPU() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    // MARK: Setting up

    /// Makes the next execution's context ahead of time: called on the
    /// sandbox thread when it has nothing else to do.
    func prepareNext() {
        guard prepared == nil else { return }
        prepared = prepare()
    }

    private func takePrepared() -> Prepared? {
        defer { prepared = nil }
        return prepared ?? prepare()
    }

    private func prepare() -> Prepared? {
        if group == nil {
            group = JSContextGroupCreate()
            groupExecutions = 0
            if let group, let probe = JSGlobalContextCreateInGroup(group, nil) {
                groupBaseline = Self.heapBytes(probe)
                JSGlobalContextRelease(probe)
            }
        }
        guard let group, let context = JSGlobalContextCreateInGroup(group, nil) else { return nil }
        do {
            return try bootstrap(context)
        } catch {
            JSGlobalContextRelease(context)
            return nil
        }
    }

    /// Runs the bootstrap in a new context: `codemode` and `console` on the
    /// global object, the host functions in its closure. The functions
    /// serve whichever execution the slot holds, and nothing before one
    /// takes the context.
    private func bootstrap(_ context: JSGlobalContextRef) throws(JSException) -> Prepared {
        let slot = Slot()
        var errorConstructor: JSObjectRef?
        if let error = JSC.property(context, JSContextGetGlobalObject(context), "Error"), JSValueIsObject(context, error) {
            errorConstructor = JSValueToObject(context, error, nil)
            JSValueProtect(context, error)
        }
        func running(_ context: JSContextRef) throws(JSException) -> RunState {
            guard let run = slot.run else { throw JSException(value: JSC.makeError(context, "no execution is running")!) }
            return run
        }
        let natives: [JSValueRef?] = [
            HostFunction.make(context) { [unowned self] context, arguments throws(JSException) in
                try self.hostCall(context, arguments, try running(context))
            },
            HostFunction.make(context) { context, _ throws(JSException) in
                JSC.fromJSON(context, try running(context).catalog.listing)
            },
            HostFunction.make(context) { context, arguments throws(JSException) in
                let run = try running(context)
                let name = JSC.text(context, arguments.first ?? nil) ?? ""
                guard let tool = run.catalog.tool(named: name) else {
                    throw JSException(value: JSC.makeError(context, Self.unknownTool(name))!)
                }
                return JSC.makeString(context, TypeDeclaration.declaration(for: tool))
            },
            HostFunction.make(context) { [unowned self] context, arguments throws(JSException) in
                self.hostLog(context, arguments, try running(context))
                return nil
            },
            HostFunction.make(context) { context, arguments throws(JSException) in
                let run = try running(context)
                let value = arguments.first ?? nil
                guard run.outcome == nil else { return nil }
                do {
                    let text = try value.flatMap { value throws(JSCError) in try JSC.json(context, value) }
                    run.outcome = (try text.map { try JSON.parse($0) }, nil, nil)
                } catch let error as JSCError {
                    run.outcome = (nil, .result, "the returned value cannot be turned into JSON: \(error.message)")
                } catch {
                    run.outcome = (nil, .result, "the returned value cannot be turned into JSON: \(error)")
                }
                return nil
            },
            HostFunction.make(context) { [unowned self] context, arguments throws(JSException) in
                let run = try running(context)
                if run.outcome == nil { run.outcome = (nil, .thrown, self.describe(arguments.first ?? nil, run)) }
                return nil
            },
        ]
        let factory = try JSC.evaluate(context, Bootstrap.source, url: "portal-bootstrap.js")
        guard let factory, let function = JSValueToObject(context, factory, nil),
              let runner = try JSC.call(context, function, natives), let object = JSValueToObject(context, runner, nil) else {
            if let errorConstructor { JSValueUnprotect(context, errorConstructor) }
            throw JSException(value: JSC.makeError(context, "the sandbox bootstrap failed")!)
        }
        JSValueProtect(context, object)
        return Prepared(context: context, runner: object, errorConstructor: errorConstructor, slot: slot)
    }

    /// Compiles the code as a function (or value) expression, else as a
    /// function body. A syntax error becomes the execution's outcome.
    private func compile(_ run: RunState) throws(JSException) -> JSValueRef? {
        let context = run.context
        let code = CodeSource.unfenced(run.request.code)
        let expression = CodeSource.wrapped(code, as: .expression)
        guard let expressionError = JSC.syntaxError(context, expression, url: CodeSource.url) else {
            run.form = .expression
            return try JSC.evaluate(context, expression, url: CodeSource.url)
        }
        let body = CodeSource.wrapped(code, as: .body)
        guard let bodyError = JSC.syntaxError(context, body, url: CodeSource.url) else {
            run.form = .body
            return try JSC.evaluate(context, body, url: CodeSource.url)
        }
        let function = CodeSource.looksLikeFunction(code)
        run.form = function ? .expression : .body
        let message = describe(function ? expressionError : bodyError, run)
        run.outcome = (nil, .syntax, message + ". Send plain JavaScript (no TypeScript types or imports): an async arrow function `async () => { ... }`, or the body of one with `return`.")
        return nil
    }

    // MARK: Host functions

    private func hostCall(_ context: JSContextRef, _ arguments: [JSValueRef?], _ run: RunState) throws(JSException) -> JSValueRef? {
        let key = JSC.text(context, arguments.first ?? nil) ?? ""
        let byIdentifier = arguments.count > 2 && JSValueToBoolean(context, arguments[2])
        var resolve: JSObjectRef?
        var reject: JSObjectRef?
        guard let promise = JSObjectMakeDeferredPromise(context, &resolve, &reject, nil), let resolve, let reject else {
            throw JSException(value: JSC.makeError(context, "could not make a promise")!)
        }
        func rejected(_ message: String, name: String = "Error") throws(JSException) -> JSValueRef? {
            _ = try JSC.call(context, reject, [JSC.makeError(context, message, name: name)])
            return promise
        }
        guard run.request.mode == .execute else {
            return try rejected("portal_codemode_search only reads codemode.tools() and codemode.describe(); call tools from portal_codemode_execute")
        }
        let name: String
        switch run.catalog.lookup(key, byIdentifier: byIdentifier) {
        case .tool(let found): name = found
        case .ambiguous(let names):
            return try rejected("codemode.\(key) is ambiguous: \(names.joined(separator: ", ")) all become \(key); use codemode.call(name, args)")
        case .unknown:
            return try rejected(Self.unknownTool(key))
        }
        guard run.calls < settings.maxCalls else {
            return try rejected("tool call limit reached: \(settings.maxCalls) calls per execution (codemode.max_calls)", name: "CallLimitError")
        }
        var argumentJSON: JSON = [:]
        if let value = arguments.count > 1 ? arguments[1] : nil, !JSValueIsUndefined(context, value), !JSValueIsNull(context, value) {
            guard JSValueIsObject(context, value), !JSValueIsArray(context, value) else {
                return try rejected("\(name): arguments must be an object, like codemode.\(key)({ field: value })", name: "TypeError")
            }
            do {
                argumentJSON = try JSON.parse(try JSC.json(context, value) ?? "{}")
            } catch let error as JSCError {
                return try rejected("\(name): arguments cannot be turned into JSON: \(error.message)", name: "TypeError")
            } catch {
                return try rejected("\(name): arguments cannot be turned into JSON", name: "TypeError")
            }
        }
        run.calls += 1
        run.nextCall += 1
        JSValueProtect(context, resolve)
        JSValueProtect(context, reject)
        run.pending[run.nextCall] = .init(name: name, arguments: argumentJSON, resolve: resolve, reject: reject)
        if run.active < settings.concurrency { start(run.nextCall, run) } else { run.queued.append(run.nextCall) }
        return promise
    }

    private func start(_ call: Int, _ run: RunState) {
        guard let pending = run.pending[call] else { return }
        run.active += 1
        run.peakActive = max(run.peakActive, run.active)
        let host = run.request.host
        let executionID = run.request.id
        let serial = run.serial
        let (name, arguments) = (pending.name, pending.arguments)
        Task { [weak self] in
            let outcome = await host.callTool(name: name, arguments: arguments, executionID: executionID)
            self?.post(.completion(serial: serial, call: call, outcome: outcome))
        }
    }

    private func deliver(_ call: Int, _ outcome: ToolCallOutcome, _ run: RunState) {
        guard let pending = run.pending.removeValue(forKey: call) else { return }
        run.active -= 1
        if !run.queued.isEmpty { start(run.queued.removeFirst(), run) }
        let context = run.context
        defer {
            JSValueUnprotect(context, pending.resolve)
            JSValueUnprotect(context, pending.reject)
        }
        do {
            let outputSchema = run.catalog.tool(named: pending.name)?.definition["outputSchema"]
            switch ToolResult.unwrap(outcome, outputSchema: outputSchema) {
            case .value(let value):
                _ = try JSC.call(context, pending.resolve, [JSC.fromJSON(context, value.text) ?? JSValueMakeNull(context)])
            case .error(let message):
                _ = try JSC.call(context, pending.reject, [JSC.makeError(context, "\(pending.name): \(message)")])
            }
        } catch {
            // Only termination escapes a resolve; `stop` already says why.
        }
    }

    private func hostLog(_ context: JSContextRef, _ arguments: [JSValueRef?], _ run: RunState) {
        let level = JSC.text(context, arguments.first ?? nil) ?? "log"
        guard !run.logsCut else { return }
        var parts: [String] = []
        if let list = arguments.count > 1 ? arguments[1] : nil, let array = JSValueToObject(context, list, nil) {
            let count = Int(JSC.number(context, JSC.property(context, array, "length")) ?? 0)
            for index in 0..<min(count, 100) {
                parts.append(format(JSObjectGetPropertyAtIndex(context, array, UInt32(index), nil), run))
            }
        }
        var text = parts.joined(separator: " ")
        let budget = settings.maxOutputBytes / 4
        if run.logBytes + text.utf8.count > budget {
            text = String(decoding: text.utf8.prefix(max(0, budget - run.logBytes)), as: UTF8.self)
                + " [console output cut at \(budget) bytes]"
            run.logsCut = true
        }
        run.logBytes += text.utf8.count
        run.logs.append(.init(level: level, text: text))
    }

    /// One console argument as text: strings as they are, errors as
    /// `Name: message`, everything else as JSON where it can be.
    private func format(_ value: JSValueRef?, _ run: RunState) -> String {
        let context = run.context
        guard let value else { return "undefined" }
        if JSValueIsString(context, value) { return JSC.text(context, value) ?? "" }
        if JSValueIsUndefined(context, value) { return "undefined" }
        if let error = run.errorConstructor, JSValueIsInstanceOfConstructor(context, value, error, nil) {
            return JSC.text(context, value) ?? "Error"
        }
        if JSValueIsObject(context, value), JSObjectIsFunction(context, JSValueToObject(context, value, nil)) {
            return "[function]"
        }
        if let text = try? JSC.json(context, value) { return text }
        return JSC.text(context, value) ?? "[value]"
    }

    /// A thrown value as the model should read it, with the line and
    /// column in its own code.
    private func describe(_ value: JSValueRef?, _ run: RunState) -> String {
        let context = run.context
        guard let value else { return "uncaught exception" }
        var text = JSC.text(context, value) ?? "uncaught exception"
        if JSValueIsObject(context, value),
           JSC.text(context, JSC.property(context, value, "sourceURL")) == CodeSource.url,
           let line = JSC.number(context, JSC.property(context, value, "line")) {
            var column = JSC.number(context, JSC.property(context, value, "column")) ?? 0
            if line == 1 { column = max(1, column - Double(CodeSource.prefix(run.form).count)) }
            text += " (line \(Int(line)), column \(Int(column)))"
        }
        return text
    }

    static func unknownTool(_ name: String) -> String {
        "Unknown tool: \(name). codemode.tools() lists the tools you can use."
    }
}
