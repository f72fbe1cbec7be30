import Foundation
import Logging
import MCPWire

/// Runs an MCP server as a child process and speaks newline-delimited
/// JSON-RPC over its stdin and stdout. Its stderr goes to the log.
public final class StdioTransport: MessageTransport, @unchecked Sendable {
    public let command: String
    public let arguments: [String]
    public let environment: [String: String]
    public let workingDirectory: String?
    let logger: Logger
    private let lock = NSLockish()
    private var process: Process?
    private var stdin: FileHandle?
    private let writeQueue = DispatchQueue(label: "mcp-portal.stdio.write")

    /// Variables passed on from the portal's own environment; everything else
    /// must be named in the server's `env`, so the portal's secrets stay home.
    public static let inheritedVariables = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH"]

    public init(command: String, arguments: [String], environment: [String: String], workingDirectory: String?, logger: Logger) {
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.logger = logger
    }

    public func connect(
        onMessage: @escaping @Sendable (InboundMessage) -> Void,
        onClose: @escaping @Sendable ((any Error)?) -> Void
    ) async throws {
        signal(SIGPIPE, SIG_IGN)
        let process = Process()
        if command.contains("/") {
            process.executableURL = URL(fileURLWithPath: command)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [command] + arguments
        }
        let parent = ProcessInfo.processInfo.environment
        var env: [String: String] = [:]
        for name in Self.inheritedVariables { if let value = parent[name] { env[name] = value } }
        env.merge(environment) { _, new in new }
        process.environment = env
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        let logger = self.logger
        process.terminationHandler = { proc in
            logger.info("upstream process exited", metadata: ["upstream.exit": "\(proc.terminationStatus)"])
        }
        do {
            try process.run()
        } catch {
            throw TransportError("cannot start \(command): \(error)")
        }
        lock.withLock {
            self.process = process
            self.stdin = input.fileHandleForWriting
        }
        let outHandle = output.fileHandleForReading
        let errHandle = errors.fileHandleForReading
        let maxLine = 64 << 20
        Thread.detachNewThread {
            var pending: [UInt8] = []
            while true {
                let chunk = outHandle.availableData
                if chunk.isEmpty { break }
                var start = pending.count
                pending.append(contentsOf: chunk)
                var lineStart = 0
                while let newline = pending[start...].firstIndex(of: 0x0A) {
                    let line = Array(pending[lineStart..<newline])
                    lineStart = newline + 1
                    start = lineStart
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
                    switch Result(catching: { try JSONRPCMessage.parse(line) }) {
                    case .success(.single(let message)): onMessage(InboundMessage(message: message))
                    case .success(.batch(let messages)): messages.forEach { onMessage(InboundMessage(message: $0)) }
                    case .failure(let error):
                        logger.warning("upstream wrote a line that is not JSON-RPC", metadata: ["error": "\(error)", "upstream.bytes": "\(line.count)"])
                    }
                }
                pending.removeFirst(lineStart)
                if pending.count > maxLine {
                    logger.warning("upstream line too long; dropped", metadata: ["upstream.bytes": "\(pending.count)"])
                    pending.removeAll()
                }
            }
            process.waitUntilExit()
            onClose(TransportError("process exited with status \(process.terminationStatus)"))
        }
        Thread.detachNewThread {
            var pending: [UInt8] = []
            while true {
                let chunk = errHandle.availableData
                if chunk.isEmpty { break }
                pending.append(contentsOf: chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self)
                    pending.removeFirst(newline + 1)
                    logger.debug("upstream stderr", metadata: ["upstream.stderr": "\(line)"])
                }
                if pending.count > 65536 { pending.removeAll() }
            }
        }
    }

    public func send(_ message: JSONRPCMessage) async throws {
        guard let handle = lock.withLock({ stdin }) else { throw TransportError("process not running") }
        var bytes = message.serialized()
        bytes.append(0x0A)
        let data = Data(bytes)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            writeQueue.async {
                do {
                    try handle.write(contentsOf: data)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: TransportError("write to process failed: \(error)"))
                }
            }
        }
    }

    public func close() async {
        let (process, stdin) = lock.withLock { (self.process, self.stdin) }
        try? stdin?.close()
        if let process, process.isRunning {
            process.terminate()
            let pid = process.processIdentifier
            // A server that ignores SIGTERM is killed after a grace period.
            DispatchQueue.global().asyncAfter(deadline: .now() + 2) {
                if process.isRunning { kill(pid, SIGKILL) }
            }
        }
    }
}
