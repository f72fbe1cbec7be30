import ArgumentParser
import DemoServers
import Foundation
import MCPWire

/// Runs a built-in demo server over stdio, for clients that spawn servers.
struct DemoServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo-server", abstract: "Run a built-in demo MCP server over stdio.")
    @Argument(help: "notes or directory") var name: String
    @Option(help: "Folder for the notes database.") var data = ".mcp-portal"

    func run() async throws {
        let server: ToolServer
        switch name {
        case "notes": server = try NotesServer.make(folder: data)
        case "directory": server = DirectoryServer.make()
        default: throw ValidationError("unknown demo server \"\(name)\"; expected notes or directory")
        }
        while let line = readLine(strippingNewline: true) {
            guard !line.isEmpty else { continue }
            let reply: JSONRPCMessage?
            do {
                switch try JSONRPCMessage.parse(Array(line.utf8)) {
                case .single(let message): reply = await server.handle(message)
                case .batch: reply = .error(id: nil, .invalidRequest("batches are not supported"))
                }
            } catch {
                reply = .error(id: nil, error)
            }
            if let reply {
                FileHandle.standardOutput.write(Data(reply.serialized() + [0x0A]))
            }
        }
    }
}
