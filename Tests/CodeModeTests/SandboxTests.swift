import Foundation
import MCPWire
import PortalCore
import Synchronization
import Testing
@testable import CodeMode

/// An in-process host: tools answer from closures and every call is recorded.
/// An event a fake tool waits for, opened once by the test (or when enough
/// calls have arrived); tests wait on events, never on the clock.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { s -> Bool in
                if !s.open { s.waiters.append(continuation) }
                return s.open
            }
            if open { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }
}

final class FakeHost: CodeModeHost {
    let tools: CodeModeCatalog
    let answers: @Sendable (String, JSON) async -> ToolCallOutcome
    let calls = Mutex<[(name: String, arguments: JSON)]>([])
    let running = Mutex<(now: Int, peak: Int)>((0, 0))

    init(_ tools: [CodeModeCatalog.Tool] = FakeHost.sample, answers: @escaping @Sendable (String, JSON) async -> ToolCallOutcome = FakeHost.echo) {
        self.tools = CodeModeCatalog(tools: tools)
        self.answers = answers
    }

    func catalog() -> CodeModeCatalog { tools }

    func callTool(name: String, arguments: JSON, executionID: String) async -> ToolCallOutcome {
        calls.withLock { $0.append((name, arguments)) }
        running.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
        defer { running.withLock { $0.now -= 1 } }
        return await answers(name, arguments)
    }

    static let sample: [CodeModeCatalog.Tool] = [
        .init(name: "jira_search_issues", server: "jira", definition: [
            "name": "jira_search_issues", "description": "Search issues with JQL.",
            "inputSchema": ["type": "object", "properties": ["jql": ["type": "string", "description": "A JQL query"], "limit": ["type": "integer", "default": 50]], "required": ["jql"]],
            "outputSchema": ["type": "object", "properties": ["issues": ["type": "array", "items": ["type": "object", "properties": ["key": ["type": "string"]], "required": ["key"]]]]],
        ], readOnly: true),
        .init(name: "drive_get-content", server: "drive", definition: [
            "name": "drive_get-content", "description": "Read a file.", "inputSchema": ["type": "object", "properties": ["fileId": ["type": "string"]]],
        ], readOnly: true),
        .init(name: "slow_wait", server: "slow", definition: ["name": "slow_wait", "inputSchema": ["type": "object"]], readOnly: true),
    ]

    static let echo: @Sendable (String, JSON) async -> ToolCallOutcome = { name, arguments in
        switch name {
        case "jira_search_issues":
            return .result(["content": [["type": "text", "text": "{}"]], "structuredContent": ["issues": [["key": "BLOG-1"]], "jql": arguments["jql"] ?? .null]])
        case "drive_get-content":
            return .result(["content": [["type": "text", "text": "plain text, not JSON"]]])
        default:
            return .result(["content": [["type": "text", "text": "[1,2]"]]])
        }
    }
}

func settings(_ change: (inout PortalConfig.CodeMode) -> Void = { _ in }) -> PortalConfig.CodeMode {
    var settings = PortalConfig.CodeMode()
    settings.workers = 2
    // Suites run side by side on two sandboxes: an execution may wait a
    // while for one, and waiting counts against this.
    settings.timeoutSeconds = 30
    settings.cpuSeconds = 1
    settings.memoryMB = 64
    change(&settings)
    return settings
}

let sharedEngine = CodeModeEngine(settings: settings())
/// For memory bombs: CPU time to spare, so only the memory limit stops them.
let memoryEngine = CodeModeEngine(settings: settings { $0.cpuSeconds = 20; $0.memoryMB = 32 })

func run(_ code: String, mode: ExecutionRequest.Mode = .execute, host: FakeHost = FakeHost(), engine: CodeModeEngine = sharedEngine) async -> ExecutionReport {
    await engine.run(ExecutionRequest(id: "test", code: code, mode: mode, host: host))
}

@Suite struct CodeHandling {
    @Test(arguments: [
        "async () => { return 1 + 1 }",
        "return 1 + 1",
        "```js\nasync () => 1 + 1\n```",
        "Here is the code:\n```javascript\nreturn 1 + 1;\n```\nIt adds.",
        "async function main() { return 1 + 1 }",
    ])
    func acceptedForms(_ code: String) async {
        let report = await run(code)
        #expect(report.failure == nil, "\(report.message ?? "")")
        #expect(report.value == .number("2"))
    }

    @Test func syntaxErrorHasLineColumnAndHint() async {
        let report = await run("async () => {\n  const x = 1;\n  const y = ;\n}")
        #expect(report.failure == .syntax)
        let message = report.message ?? ""
        #expect(message.contains("line 3"), "\(message)")
        #expect(message.contains("plain JavaScript"))
    }

    @Test func typeScriptIsASyntaxErrorWithHint() async {
        let report = await run("const x: number = 1\nreturn x")
        #expect(report.failure == .syntax)
        #expect(report.message?.contains("line 1") == true, "\(report.message ?? "")")
    }

    @Test func thrownErrorsCarryTheirLine() async {
        let report = await run("const a = 1;\nthrow new Error('boom')")
        #expect(report.failure == .thrown)
        #expect(report.message == "Error: boom (line 2, column 16)", "\(report.message ?? "")")
    }
}

@Suite struct Calls {
    @Test func scenarioUnwrapsResults() async {
        let host = FakeHost()
        let report = await run("""
        async () => {
          const found = await codemode.jira_search_issues({ jql: 'project = BLOG' });
          const doc = await codemode.call("drive_get-content", { fileId: "1" });
          const same = await codemode.drive_get_content({ fileId: "2" });
          console.log("found", found.issues.length, { key: found.issues[0].key });
          return { key: found.issues[0].key, jql: found.jql, doc, same };
        }
        """, host: host)
        #expect(report.failure == nil, "\(report.message ?? "")")
        #expect(report.value == ["key": "BLOG-1", "jql": "project = BLOG", "doc": "plain text, not JSON", "same": "plain text, not JSON"])
        #expect(report.logs == [.init(level: "log", text: "found 1 {\"key\":\"BLOG-1\"}")])
        #expect(report.calls == 3)
        #expect(host.calls.withLock { $0.map(\.name) } == ["jira_search_issues", "drive_get-content", "drive_get-content"])
    }

    @Test func toolErrorsReject() async {
        let host = FakeHost { name, _ in
            name == "slow_wait" ? .result(["content": [["type": "text", "text": "quota exceeded"]], "isError": true])
                : .failure(code: -32602, message: "Unknown tool: \(name)")
        }
        let report = await run("""
        const out = [];
        try { await codemode.slow_wait({}) } catch (e) { out.push(e instanceof Error, e.message) }
        try { await codemode.jira_search_issues({ jql: "x" }) } catch (e) { out.push(e.message) }
        try { await codemode.nope({}) } catch (e) { out.push(e.message) }
        return out
        """, host: host)
        #expect(report.value == [true, "slow_wait: quota exceeded", "jira_search_issues: Unknown tool: jira_search_issues",
                                 "Unknown tool: nope. codemode.tools() lists the tools you can use."], "\(report.message ?? "")")
    }

    @Test func parallelCallsRespectTheCap() async {
        let engine = CodeModeEngine(settings: settings { $0.concurrency = 3; $0.timeoutSeconds = 10 })
        // The ten calls are made in one synchronous loop, so the cap decides
        // at once which start and which queue: the sandbox's own count of
        // calls in flight says how many it let go. The tool holds the calls
        // until three are running at once (a cap below three never gets
        // there: the execution times out), so the host sees three together.
        let gate = Gate()
        let arrived = Mutex(0)
        let host = FakeHost { _, _ in
            if arrived.withLock({ $0 += 1; return $0 }) == 3 { gate.open() }
            await gate.wait()
            return .result(["content": [["type": "text", "text": "[1,2]"]]])
        }
        let report = await run("return (await Promise.all(Array.from({length: 10}, () => codemode.slow_wait({})))).length", host: host, engine: engine)
        #expect(report.value == .number("10"), "\(report.message ?? "")")
        #expect(report.peakCalls == 3)
        #expect(host.running.withLock { $0.peak } == 3)
        #expect(report.calls == 10)
    }

    @Test func callLimit() async {
        let engine = CodeModeEngine(settings: settings { $0.maxCalls = 2 })
        let report = await run("for (let i = 0; i < 5; i++) await codemode.slow_wait({}); return 1", engine: engine)
        #expect(report.failure == .thrown)
        #expect(report.message?.contains("tool call limit reached: 2 calls") == true, "\(report.message ?? "")")
        #expect(report.calls == 2)
    }

    @Test func argumentsMustBeObjects() async {
        let report = await run("try { await codemode.slow_wait([1]) } catch (e) { return e.name + ': ' + e.message }")
        #expect(report.value == "TypeError: slow_wait: arguments must be an object, like codemode.slow_wait({ field: value })")
    }

    @Test func searchCannotCall() async {
        let host = FakeHost()
        let report = await run("""
        const tools = await codemode.tools();
        const decl = await codemode.describe("jira_search_issues");
        let refused = "";
        try { await codemode.slow_wait({}) } catch (e) { refused = e.message }
        return { names: tools.map(t => t.name), readOnly: tools[0].readOnly, id: tools[1].identifier, decl, refused }
        """, mode: .search, host: host)
        #expect(report.value?["names"] == ["jira_search_issues", "drive_get-content", "slow_wait"], "\(report.message ?? "")")
        #expect(report.value?["readOnly"] == true)
        #expect(report.value?["id"] == "drive_get_content")
        #expect(report.value?["decl"]?.stringValue?.contains("declare function jira_search_issues(args: {") == true)
        #expect(report.value?["refused"]?.stringValue?.contains("portal_codemode_execute") == true)
        #expect(host.calls.withLock { $0.isEmpty })
    }

    @Test func largeResultsAreCutAndStayJSON() async throws {
        let engine = CodeModeEngine(settings: settings { $0.maxOutputBytes = 4096 })
        let report = await run("return 'x'.repeat(100000)", engine: engine)
        #expect(report.truncated)
        #expect(report.value?["truncated"] == true)
        #expect(report.value?["preview"]?.stringValue?.count ?? 0 > 1000)
        #expect(try JSON.parse(report.value!.text) == report.value!)
    }

    @Test func undefinedAndUnserializable() async {
        #expect(await run("return undefined").value == nil)
        let cyclic = await run("const a = {}; a.a = a; return a")
        #expect(cyclic.failure == .result, "\(cyclic.message ?? "")")
        #expect(await run("return 10n").failure == .result)
    }
}

@Suite struct Containment {
    /// Each runs in the same small pool as everything else; after each, the
    /// pool still answers.
    @Test(arguments: [
        ("while (true) {}", ExecutionReport.Failure.cpu),
        ("await Promise.resolve(); while (true) {}", .cpu),
        ("await codemode.slow_wait({}); for (;;) {}", .cpu),
        // The engine's own string length limit answers first.
        ("let s = 'ab'; while (true) s += s", .thrown),
        ("return new Promise(() => {})", .neverSettled),
    ])
    func stopped(_ code: String, _ expected: ExecutionReport.Failure) async {
        let report = await run(code)
        #expect(report.failure == expected, "\(code): \(report.failure?.rawValue ?? "ok") \(report.message ?? "")")
        #expect(await run("return 42").value == .number("42"))
    }

    /// Memory bombs of every kind of storage stop at the memory limit (with
    /// CPU time to spare), and the sandbox answers afterwards.
    @Test(arguments: [
        "const a = []; while (true) a.push(new Array(100000).fill(1))",
        "const keep = []; while (true) keep.push('x'.repeat(1 << 20) + keep.length)",
        "const keep = []; while (true) keep.push(new Uint8Array(1 << 24).fill(1))",
        "const keep = new Map(); for (let i = 0; ; i++) keep.set(i, { i, text: 'item ' + i })",
    ])
    func memoryBombs(_ code: String) async {
        let report = await run(code, engine: memoryEngine)
        #expect(report.failure == .memory, "\(code): \(report.failure?.rawValue ?? "ok") \(report.message ?? "")")
        #expect(report.message == "the code used more than 32 MB of memory (codemode.memory_mb)")
        #expect(await run("return 42", engine: memoryEngine).value == .number("42"))
    }

    /// Garbage is not memory use: a loop that allocates far more than the
    /// limit in total, but keeps little alive, runs to the end.
    @Test func garbageIsNotCountedAgainstTheLimit() async {
        let report = await run("let total = 0; for (let i = 0; i < 400; i++) { total += new Array(100000).fill(i).length } return total", engine: memoryEngine)
        #expect(report.value == .number("40000000"), "\(report.failure?.rawValue ?? "") \(report.message ?? "")")
    }

    @Test func wallTimeWhileWaiting() async {
        let engine = CodeModeEngine(settings: settings { $0.timeoutSeconds = 0.3 })
        // The tool answers only once the test has its report.
        let answered = Gate()
        let host = FakeHost { _, _ in
            await answered.wait()
            return .result(["content": []])
        }
        let report = await run("await codemode.slow_wait({}); return 1", host: host, engine: engine)
        answered.open()
        #expect(report.failure == .timeout)
        #expect(report.message == "the execution ran longer than 0.3 s (codemode.timeout_seconds)")
    }

    @Test func deepRecursionIsAnError() async {
        let report = await run("function f() { return f() + 1 }; return f()")
        #expect(report.failure == .thrown)
        #expect(report.message?.contains("Maximum call stack size exceeded") == true, "\(report.message ?? "")")
    }

    @Test func catastrophicRegexEnds() async {
        let report = await run("return /(a+)+$/.test('a'.repeat(40) + 'b')")
        #expect(report.failure == nil || report.failure == .cpu, "\(report.message ?? "")")
    }

    @Test func noHostReach() async {
        let report = await run("""
        const seen = {};
        for (const name of ["fetch", "require", "process", "XMLHttpRequest", "WebAssembly", "setTimeout", "Deno", "Bun", "module", "exports"])
          seen[name] = typeof globalThis[name];
        let imported = "no error";
        try { await import("fs") } catch (e) { imported = "refused" }
        const viaFunction = typeof Function("return this")().fetch;
        const globals = Object.getOwnPropertyNames(globalThis).filter(n => /host|native|portal/i.test(n));
        return { seen, imported, viaFunction, globals, keys: Object.keys(codemode) }
        """)
        #expect(report.failure == nil, "\(report.message ?? "")")
        let seen = report.value?["seen"]?.objectValue
        #expect(seen?.keys.count == 10)
        for (_, value) in seen ?? [:] { #expect(value == "undefined") }
        #expect(report.value?["imported"] == "refused")
        #expect(report.value?["viaFunction"] == "undefined")
        #expect(report.value?["globals"] == [])
    }

    @Test func overwritingIsContained() async {
        let host = FakeHost()
        let report = await run("""
        "use strict";
        const results = [];
        try { codemode = {}; results.push("replaced") } catch (e) { results.push(e.name) }
        try { codemode.jira_search_issues = () => 1; results.push("patched") } catch (e) { results.push(e.name) }
        Object.prototype.then = function () { throw new Error("hijacked") };
        Object.prototype.toJSON = function () { return "hijacked" };
        Array.prototype.push = function () { throw new Error("hijacked") };
        JSON.stringify = () => "hijacked";
        const found = await codemode.jira_search_issues({ jql: "a" });
        results.length;
        return results.concat([found.issues[0].key]);
        """, host: host)
        #expect(report.failure != nil || report.value != nil)
        #expect(host.calls.withLock { $0.map(\.name) } == ["jira_search_issues"])
        // The next execution gets a fresh context.
        let next = await run("return [typeof Object.prototype.then, JSON.stringify({a: 1}), Object.isFrozen(codemode)]")
        #expect(next.value == ["undefined", "{\"a\":1}", true], "\(next.message ?? "")")
    }

    @Test func cancelledStops() async {
        let cancellation = ExecutionCancellation()
        let host = FakeHost { _, _ in
            cancellation.cancel()
            return .result(["content": []])
        }
        let report = await sharedEngine.run(ExecutionRequest(id: "c", code: "await codemode.slow_wait({}); while (true) {}", mode: .execute, host: host, cancellation: cancellation))
        #expect(report.failure == .cancelled || report.failure == .cpu)
    }
}

@Suite struct Naming {
    @Test(arguments: [
        ("jira_search", "jira_search"), ("drive_get-content", "drive_get_content"), ("a.b c", "a_b_c"),
        ("3d_print", "_3d_print"), ("delete", "delete_"), ("tools", "tools_"), ("then", "then_"), ("ünï", "_n_"),
    ])
    func identifiers(_ name: String, _ identifier: String) {
        #expect(JSIdentifier.make(name) == identifier)
    }

    @Test func collisionsAreReportedNotOverwritten() async {
        let definition: JSON = ["inputSchema": ["type": "object"]]
        let host = FakeHost([
            .init(name: "a-b", server: "a", definition: definition, readOnly: true),
            .init(name: "a.b", server: "a", definition: definition, readOnly: true),
        ])
        #expect(host.tools.collisions == [["a-b", "a.b"]])
        let report = await run("""
        const listed = await codemode.tools();
        let ambiguous = "";
        try { await codemode.a_b({}) } catch (e) { ambiguous = e.message }
        const direct = await codemode.call("a.b", {});
        return { collision: listed[0].collision, ambiguous, direct }
        """, host: host)
        #expect(report.value?["collision"]?.stringValue?.contains("a-b, a.b all become codemode.a_b") == true, "\(report.message ?? "")")
        #expect(report.value?["ambiguous"]?.stringValue?.contains("ambiguous") == true)
        #expect(host.calls.withLock { $0.map(\.name) } == ["a.b"])
    }

    @Test func declarations() {
        let declaration = TypeDeclaration.declaration(for: FakeHost.sample[0])
        #expect(declaration == """
        /** Search issues with JQL. */
        declare function jira_search_issues(args: {
          /** A JQL query */
          jql: string;
          limit?: number; // default 50
        }): Promise<{ issues?: { key: string }[] }>;
        """)
    }
}
