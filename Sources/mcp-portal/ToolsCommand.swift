import ArgumentParser
import Foundation
import PortalCore
import Storage

struct ToolsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tools", abstract: "Tool pinning: list pending definitions, approve them.",
        subcommands: [Pending.self, Approve.self])

    struct Pending: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tool definitions waiting for approval.")
        @OptionGroup var options: ConfigOptions

        func run() async throws {
            let store = try SQLiteStore(folder: try options.load().storage.path)
            let pending = try await store.allPins().filter { $0.state == .pending }
            if pending.isEmpty { print("no tool definitions are waiting for approval") }
            for pin in pending { print("\(pin.server) \(pin.tool) sha256=\(pin.hash.prefix(16))  \(pin.definition)") }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve the pending definition of tools, so they are shown again.",
            discussion: "Give SERVER and TOOL names, or --all for every pending definition.")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The server id.") var server: String?
        @Argument(help: "Tool names (upstream names). Without them every pending tool of the server.") var tools: [String] = []
        @Flag(help: "Approve every pending definition of every server.") var all = false

        func run() async throws {
            let store = try SQLiteStore(folder: try options.load().storage.path)
            guard all || server != nil else { throw ValidationError("give a server id, or --all") }
            let pending = try await store.allPins().filter { pin in
                pin.state == .pending && (all || (pin.server == server && (tools.isEmpty || tools.contains(pin.tool))))
            }
            if pending.isEmpty {
                FileHandle.standardError.write(Data("nothing to approve\n".utf8))
                throw ExitCode(1)
            }
            for pin in pending where try await store.approve(server: pin.server, tool: pin.tool) {
                var event = AuditEvent(kind: .pinApproved, portal: "*", principal: NSUserName(), server: pin.server, tool: pin.tool, outcome: .ok)
                event.detail = "approved sha256 \(pin.hash)"
                try await store.record(event)
                print("approved \(pin.server) \(pin.tool)")
            }
        }
    }
}
