import ArgumentParser
import DLP
import Foundation
import MCPWire
import PortalCore

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check or import configuration.",
        subcommands: [Check.self, ImportClaude.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a configuration file and report the first problem precisely.")
        @Argument(help: "The YAML file.") var file: String

        func run() async throws {
            do {
                let config = try ConfigLoader().load(file: file)
                _ = try DLPEngine(config: config.dlp)
                print("\(file): ok (\(config.servers.count) servers, \(config.portals.count) portals)")
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct ImportClaude: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-claude",
            abstract: "Turn a Claude Desktop or Cursor mcpServers JSON file into portal YAML (printed).")
        @Argument(help: "claude_desktop_config.json, .cursor/mcp.json or similar.") var file: String
        @Option(help: "The id of the portal that gets every imported server.") var portal = "default"

        func run() async throws {
            let bytes: [UInt8]
            do {
                bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
            } catch {
                throw ValidationError("\(file): cannot read the file: \(error.localizedDescription)")
            }
            do {
                print(try ClaudeImport.yaml(from: bytes, file: file, portal: portal), terminator: "")
            } catch let error as ConfigError {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}

/// Converts the `mcpServers` map that Claude Desktop, Cursor and VS Code use.
enum ClaudeImport {
    static func yaml(from bytes: [UInt8], file: String, portal: String) throws -> String {
        let root: JSON
        do {
            root = try JSON.parse(bytes)
        } catch {
            throw ConfigError(file: file, line: nil, column: nil, key: "", message: "not valid JSON: \(error)")
        }
        guard let servers = (root["mcpServers"] ?? root["servers"])?.objectValue else {
            throw ConfigError(file: file, line: nil, column: nil, key: "mcpServers", message: "expected an object of servers")
        }
        var out = "# Imported from \(file) by mcp-portal config import-claude\nservers:\n"
        var ids: [String] = []
        for (name, spec) in servers {
            var id = String(name.lowercased().map { ($0.isLetter || $0.isNumber) && $0.isASCII ? $0 : "-" })
            while id.hasPrefix("-") { id.removeFirst() }
            id = String(id.prefix(32))
            if id.isEmpty || ids.contains(id) { id = "server\(ids.count + 1)" }
            ids.append(id)
            out += "  - id: \(quote(id))   # \(name)\n"
            if let command = spec["command"]?.stringValue {
                out += "    command: \(quote(command))\n"
                if let args = spec["args"]?.arrayValue, !args.isEmpty {
                    out += "    args: [\(args.map { quote($0.stringValue ?? $0.text) }.joined(separator: ", "))]\n"
                }
                if let env = spec["env"]?.objectValue, !env.isEmpty {
                    out += "    env:\n"
                    for (key, value) in env { out += "      \(key): \(quote(value.stringValue ?? value.text))\n" }
                }
                if let cwd = spec["cwd"]?.stringValue { out += "    cwd: \(quote(cwd))\n" }
            } else if let url = (spec["url"] ?? spec["serverUrl"])?.stringValue {
                out += "    url: \(quote(url))\n"
                if let type = spec["type"]?.stringValue ?? spec["transport"]?.stringValue {
                    let mode = type.lowercased() == "sse" ? "sse" : (type.lowercased().contains("http") ? "streamable-http" : "auto")
                    out += "    transport: \(mode)\n"
                }
                if let headers = spec["headers"]?.objectValue, !headers.isEmpty {
                    out += "    headers:\n"
                    for (key, value) in headers { out += "      \(quote(key)): \(quote(value.stringValue ?? value.text))\n" }
                }
            } else {
                throw ConfigError(file: file, line: nil, column: nil, key: "mcpServers.\(name)", message: "needs a command or a url")
            }
        }
        out += "portals:\n  - id: \(quote(portal))\n    servers: [\(ids.map(quote).joined(separator: ", "))]\n"
        return out
    }

    /// A YAML double-quoted scalar (JSON string syntax is valid YAML).
    static func quote(_ text: String) -> String { JSON.string(text).text }
}
