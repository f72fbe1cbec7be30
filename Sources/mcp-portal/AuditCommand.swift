import ArgumentParser
import Foundation
import MCPWire
import PortalCore
import Storage

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Read the audit log.", subcommands: [Query.self, Tail.self])

    struct Filters: ParsableArguments {
        @OptionGroup var options: ConfigOptions
        @Option(help: "From this time: ISO 8601, or an age like 15m, 2h, 7d.") var since: String?
        @Option(help: "Up to this time (same forms).") var until: String?
        @Option var portal: String?
        @Option var server: String?
        @Option var tool: String?
        @Option(help: "ok, error, denied or held.") var outcome: String?
        @Option(help: "call, list, read, prompt, session.open, session.close, pin.changed, pin.approved, execution.") var kind: String?
        @Option(help: "Only the Code Mode execution with this id and the calls it made.") var execution: String?
        @Option(help: "At most this many rows.") var limit = 100
        @Flag(help: "One JSON object per line.") var json = false

        func query() throws -> AuditQuery {
            var query = AuditQuery()
            query.since = try since.map { try parseTime($0, option: "--since") }
            query.until = try until.map { try parseTime($0, option: "--until") }
            query.portal = portal
            query.server = server
            query.tool = tool
            if let outcome {
                guard let parsed = AuditEvent.Outcome(rawValue: outcome) else {
                    throw ValidationError("--outcome: expected one of \(AuditEvent.Outcome.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                query.outcome = parsed
            }
            if let kind {
                guard let parsed = AuditEvent.Kind(rawValue: kind) else {
                    throw ValidationError("--kind: expected one of \(AuditEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                query.kind = parsed
            }
            if let execution {
                query.executionID = execution
            }
            query.limit = limit
            return query
        }

        func parseTime(_ text: String, option: String) throws -> Date {
            if let date = ISO8601DateFormatter().date(from: text) { return date }
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
            if let unit = text.last, let scale = units[unit], let value = Double(text.dropLast()) {
                return Date().addingTimeInterval(-value * scale)
            }
            throw ValidationError("\(option): expected an ISO 8601 time or an age like 15m, 2h, 7d; found \"\(text)\"")
        }
    }

    /// Writes a line unbuffered, so `tail --follow` shows records as they come.
    static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func render(_ row: StoredAuditEvent, json: Bool) -> String {
        let e = row.event
        if json {
            var object: JSONObject = [
                "id": .number(String(row.id)), "time": .string(e.time.formatted(.iso8601)), "kind": .string(e.kind.rawValue),
                "portal": .string(e.portal), "principal": .string(e.principal), "outcome": .string(e.outcome.rawValue),
                "duration_us": .number(String(e.durationMicros)), "argument_bytes": .int(e.argumentBytes), "result_bytes": .int(e.resultBytes),
            ]
            for (key, value) in [("session", e.sessionID), ("server", e.server), ("tool", e.tool), ("method", e.method),
                                 ("error", e.error), ("argument_sha256", e.argumentHash), ("detail", e.detail),
                                 ("execution", e.executionID)] {
                if let value { object[key] = .string(value) }
            }
            return JSON.object(object).text
        }
        var line = "\(e.time.formatted(.iso8601)) \(e.kind.rawValue) \(e.outcome.rawValue) portal=\(e.portal) principal=\(e.principal)"
        if let server = e.server { line += " server=\(server)" }
        if let tool = e.tool { line += " tool=\(tool)" }
        if let method = e.method { line += " method=\(method)" }
        if let execution = e.executionID { line += " execution=\(execution)" }
        if e.kind == .call || e.kind == .execution { line += " duration=\(e.durationMicros)us args=\(e.argumentBytes)B result=\(e.resultBytes)B" }
        if let error = e.error { line += " error=\(JSON.string(error).text)" }
        if let detail = e.detail { line += " detail=\(JSON.string(detail).text)" }
        return line
    }

    struct Query: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print matching audit records, newest first.")
        @OptionGroup var filters: Filters

        func run() async throws {
            let store = try SQLiteStore(folder: try filters.options.load().storage.path)
            for row in try await store.query(try filters.query()) { AuditCommand.emit(AuditCommand.render(row, json: filters.json)) }
        }
    }

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the latest records, then follow new ones.")
        @OptionGroup var filters: Filters
        @Flag(name: .shortAndLong, help: "Keep printing new records as they arrive.") var follow = false

        func run() async throws {
            let store = try SQLiteStore(folder: try filters.options.load().storage.path)
            var query = try filters.query()
            let latest = try await store.query(query).reversed()
            for row in latest { AuditCommand.emit(AuditCommand.render(row, json: filters.json)) }
            guard follow else { return }
            query.afterID = latest.last?.id ?? 0
            while true {
                let rows = try await store.query(query)
                for row in rows { AuditCommand.emit(AuditCommand.render(row, json: filters.json)) }
                query.afterID = rows.last?.id ?? query.afterID
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
