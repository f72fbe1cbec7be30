import MCPWire

/// The tools one caller may use from code, as `codemode.tools()` shows them
/// and as `codemode.<identifier>` and `codemode.call(name)` find them. Built
/// from the portal's policy-filtered, pinned catalog; immutable.
public struct CodeModeCatalog: Sendable {
    public struct Tool: Sendable {
        public var name: String
        public var server: String
        public var definition: JSON
        public var readOnly: Bool
        public var identifier: String

        public init(name: String, server: String, definition: JSON, readOnly: Bool) {
            self.name = name
            self.server = server
            self.definition = definition
            self.readOnly = readOnly
            self.identifier = JSIdentifier.make(name)
        }
    }

    public enum Lookup: Sendable, Equatable {
        case tool(String)
        /// Several tool names become the same identifier; none is chosen.
        case ambiguous([String])
        case unknown
    }

    public let tools: [Tool]
    let index: [String: Int]
    let identifiers: [String: [String]]
    /// `codemode.tools()`'s answer, serialized once.
    public let listing: String

    public init(tools: [Tool]) {
        self.tools = tools
        var index: [String: Int] = [:]
        var identifiers: [String: [String]] = [:]
        for (position, tool) in tools.enumerated() {
            index[tool.name] = position
            identifiers[tool.identifier, default: []].append(tool.name)
        }
        self.index = index
        self.identifiers = identifiers
        self.listing = JSON.array(tools.map { tool in
            var entry: JSONObject = [
                "name": .string(tool.name),
                "server": .string(tool.server),
                "description": tool.definition["description"] ?? "",
                "inputSchema": tool.definition["inputSchema"] ?? ["type": "object"],
            ]
            if let output = tool.definition["outputSchema"] { entry["outputSchema"] = output }
            if let annotations = tool.definition["annotations"] { entry["annotations"] = annotations }
            entry["readOnly"] = .bool(tool.readOnly)
            let sharing = identifiers[tool.identifier] ?? []
            if sharing.count > 1 {
                entry["identifier"] = .null
                entry["collision"] = .string("\(sharing.joined(separator: ", ")) all become codemode.\(tool.identifier); call this one with codemode.call(\"\(tool.name)\", args)")
            } else if tool.identifier != tool.name {
                entry["identifier"] = .string(tool.identifier)
            }
            return .object(entry)
        }).text
    }

    /// Finds a tool by its name (`codemode.call`) or identifier (`codemode.<id>`).
    public func lookup(_ key: String, byIdentifier: Bool) -> Lookup {
        if !byIdentifier {
            return index[key].map { .tool(tools[$0].name) } ?? .unknown
        }
        guard let names = identifiers[key] else { return .unknown }
        return names.count == 1 ? .tool(names[0]) : .ambiguous(names)
    }

    public func tool(named name: String) -> Tool? {
        if let position = index[name] { return tools[position] }
        if case .tool(let found) = lookup(name, byIdentifier: true), let position = index[found] { return tools[position] }
        return nil
    }

    /// Identifier collisions, for the portal's log.
    public var collisions: [[String]] {
        identifiers.values.filter { $0.count > 1 }.sorted { $0[0] < $1[0] }
    }
}
