import MCPWire
import PortalCore

/// Rug-pull defence: every tool definition is pinned by a SHA-256 over its
/// name, description, schemas and annotations. A definition that changes
/// after it was approved is held back until an administrator approves the
/// new one (`mcp-portal tools approve`).
public struct ToolPinner: Sendable {
    public let store: any PinStore
    public let audit: any AuditStore
    public let newTools: PortalConfig.Pinning.NewToolRule

    public init(store: any PinStore, audit: any AuditStore, newTools: PortalConfig.Pinning.NewToolRule) {
        self.store = store
        self.audit = audit
        self.newTools = newTools
    }

    /// The pinned part of a definition, in a stable form.
    public static func pinnedText(_ tool: JSON) -> String {
        var pinned = JSONObject()
        for key in ["name", "title", "description", "inputSchema", "outputSchema", "annotations"] {
            if let value = tool[key] { pinned[key] = value }
        }
        return JSON.object(pinned).text
    }

    public static func hash(_ text: String) -> String { Hex.sha256(Array(text.utf8)) }

    /// Returns the tools that may be shown: unchanged approved ones, and new
    /// ones where the rule allows. Records pending changes and audits them.
    public func visibleTools(server: String, tools: [JSON]) async throws -> [JSON] {
        let pins = try await store.pins(server: server)
        let firstSight = pins.isEmpty
        var approved: [String: ToolPin] = [:], pending: [String: ToolPin] = [:]
        for pin in pins { if pin.state == .approved { approved[pin.tool] = pin } else { pending[pin.tool] = pin } }
        var visible: [JSON] = []
        for tool in tools {
            guard let name = tool["name"]?.stringValue else { continue }
            let text = Self.pinnedText(tool)
            let hash = Self.hash(text)
            if let pin = approved[name] {
                if pin.hash == hash {
                    visible.append(tool)
                } else if pending[name]?.hash != hash {
                    try await hold(server: server, tool: name, hash: hash, text: text,
                                   why: "definition changed from \(pin.hash.prefix(12)) to \(hash.prefix(12)); held until approved")
                }
            } else if firstSight || newTools == .allow {
                try await store.save(ToolPin(server: server, tool: name, hash: hash, state: .approved, definition: text))
                visible.append(tool)
            } else if pending[name]?.hash != hash {
                try await hold(server: server, tool: name, hash: hash, text: text, why: "new tool on a known server; held until approved")
            }
        }
        return visible
    }

    /// Records a definition as waiting for approval, and audits it.
    private func hold(server: String, tool: String, hash: String, text: String, why: String) async throws {
        try await store.save(ToolPin(server: server, tool: tool, hash: hash, state: .pending, definition: text))
        var event = AuditEvent(kind: .pinChanged, portal: "*", principal: "system", server: server, tool: tool, outcome: .held)
        event.detail = why
        try await audit.record(event)
    }
}

