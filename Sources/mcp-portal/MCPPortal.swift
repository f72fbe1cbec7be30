import ArgumentParser
import Foundation
import HTTPEdge
import Logging
import PortalCore

@main
struct MCPPortal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp-portal",
        abstract: "One governed MCP endpoint in front of many MCP servers.",
        subcommands: [Serve.self, ConfigCommand.self, AuditCommand.self, ToolsCommand.self, DLPCommand.self, DemoServer.self],
        defaultSubcommand: Serve.self
    )
}

/// Options shared by commands that read the configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "YAML configuration file. Without it the embedded defaults are used.")
    var config: String?

    func load() throws -> PortalConfig {
        guard let config else { return .embeddedDefaults }
        do {
            return try ConfigLoader().load(file: config)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

func makeLogger(_ label: String = "mcp-portal") -> Logger {
    let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
    return Logger(label: label)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the portal.")
    @OptionGroup var options: ConfigOptions
    @Option(help: "Override the listen port.") var port: Int?
    @Option(help: "Override the listen address.") var host: String?

    func run() async throws {
        var config = try options.load()
        if let port { config.listen.port = port }
        if let host { config.listen.host = host }
        let logger = makeLogger()
        let paths = config.portals.map { "/\($0.id)/mcp" }.joined(separator: " ")
        let portal = try PortalApplication(config: config, logger: logger)
        let app = portal.application { channel in
            logger.info("mcp-portal listening", metadata: [
                "address": "\(channel.localAddress?.description ?? "?")",
                "portals": "\(paths)",
            ])
        }
        try await app.runService()
    }
}
