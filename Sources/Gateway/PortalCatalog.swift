import MCPWire
import PortalCore

/// Where a client-facing tool name leads.
public struct ToolRoute: Sendable {
    public var server: String
    public var tool: String
    public var readOnly: Bool
    public var definition: JSON
}

/// What one portal shows: its tools under client-facing names, built from
/// the pool's pinned tools and the portal's settings. Rebuilt only when a
/// server's tools change.
public struct PortalCatalog: Sendable {
    public var tools: [(server: String, definition: JSON)] = []
    public var routes: [String: ToolRoute] = [:]
    /// The pool's tools generation it was built at.
    public var stamp = -1

    public static func build(portal: PortalDefinition, servers: [UpstreamPool.ServerState], stamp: Int) -> PortalCatalog {
        var catalog = PortalCatalog()
        catalog.stamp = stamp
        for server in servers {
            for tool in server.tools {
                guard let name = tool["name"]?.stringValue else { continue }
                let defaultName = ToolNaming.exposedName(server: server.id, tool: name)
                let setting = portal.tools[defaultName] ?? .init()
                guard setting.enabled else { continue }
                let readOnly = tool["annotations"]?["readOnlyHint"] == .bool(true) || server.config.readOnlyTools.contains(name)
                // Writes are denied by default: a tool that may change something
                // is shown only where the portal grants writes.
                guard readOnly || portal.allowWrites || setting.allowWrite else { continue }
                let exposed = setting.alias ?? defaultName
                guard catalog.routes[exposed] == nil else { continue }
                var definition = tool
                definition["name"] = .string(exposed)
                catalog.routes[exposed] = ToolRoute(server: server.id, tool: name, readOnly: readOnly, definition: definition)
                catalog.tools.append((server.id, definition))
            }
        }
        return catalog
    }
}
