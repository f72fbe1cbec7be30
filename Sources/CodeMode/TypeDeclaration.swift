import MCPWire

/// A compact TypeScript-style declaration of a tool, generated from its JSON
/// Schemas, for `codemode.describe(name)`:
///
///     /** Search issues with JQL. */
///     declare function jira_search_issues(args: {
///       /** A JQL query */
///       jql: string;
///       maxResults?: number;
///     }): Promise<{ issues: { key: string; summary: string }[] }>;
public enum TypeDeclaration {
    static let maxDepth = 6

    public static func declaration(for tool: CodeModeCatalog.Tool) -> String {
        let definition = tool.definition
        var out = ""
        if let description = definition["description"]?.stringValue, !description.isEmpty {
            out += "/** \(comment(description)) */\n"
        }
        let input = definition["inputSchema"] ?? ["type": "object"]
        let defs = definitions(input)
        out += "declare function \(tool.identifier)(args: \(topLevel(input, defs: defs))): "
        if let output = definition["outputSchema"] {
            let value = ToolResult.isWrapped(output) ? (output["properties"]?["result"] ?? output) : output
            out += "Promise<\(type(value, defs: definitions(output), depth: 1))>;"
        } else {
            out += "Promise<unknown>;"
        }
        if tool.identifier != tool.name { out += "\n// call as codemode.call(\(JSON.string(tool.name).text), args)" }
        return out
    }

    /// The arguments object, one property per line with its description.
    static func topLevel(_ schema: JSON, defs: JSONObject) -> String {
        guard let properties = schema["properties"]?.objectValue, !properties.isEmpty else {
            return type(schema, defs: defs, depth: 1)
        }
        let required = Set(schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        var lines = ["{"]
        for (name, property) in properties {
            if let description = property["description"]?.stringValue, !description.isEmpty {
                lines.append("  /** \(comment(description)) */")
            }
            var line = "  \(key(name))\(required.contains(name) ? "" : "?"): \(type(property, defs: defs, depth: 2));"
            if let value = property["default"] { line += " // default \(value.text)" }
            lines.append(line)
        }
        lines.append("}")
        return lines.joined(separator: "\n")
    }

    static func type(_ schema: JSON, defs: JSONObject, depth: Int) -> String {
        guard depth <= maxDepth else { return "unknown" }
        if schema == .bool(true) { return "unknown" }
        if schema == .bool(false) { return "never" }
        guard schema.objectValue != nil else { return "unknown" }
        if let reference = schema["$ref"]?.stringValue {
            let name = reference.split(separator: "/").last.map(String.init) ?? ""
            guard let target = defs[name] else { return "unknown" }
            return type(target, defs: defs, depth: depth + 1)
        }
        if let constant = schema["const"] { return constant.text }
        if let values = schema["enum"]?.arrayValue, !values.isEmpty { return values.map(\.text).joined(separator: " | ") }
        for (keyword, separator) in [("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")] {
            if let options = schema[keyword]?.arrayValue, !options.isEmpty {
                let parts = options.map { type($0, defs: defs, depth: depth + 1) }
                return parts.count == 1 ? parts[0] : "(" + parts.joined(separator: separator) + ")"
            }
        }
        if let types = schema["type"]?.arrayValue {
            return types.compactMap(\.stringValue).map { single($0, schema, defs: defs, depth: depth) }.joined(separator: " | ")
        }
        if let name = schema["type"]?.stringValue { return single(name, schema, defs: defs, depth: depth) }
        if schema["properties"] != nil { return single("object", schema, defs: defs, depth: depth) }
        if schema["items"] != nil { return single("array", schema, defs: defs, depth: depth) }
        return "unknown"
    }

    static func single(_ name: String, _ schema: JSON, defs: JSONObject, depth: Int) -> String {
        switch name {
        case "string": return "string"
        case "integer", "number": return "number"
        case "boolean": return "boolean"
        case "null": return "null"
        case "array":
            let item = schema["items"].map { type($0, defs: defs, depth: depth + 1) } ?? "unknown"
            let union = (item.contains(" | ") || item.contains(" & ")) && !item.hasPrefix("(")
            return union ? "(\(item))[]" : "\(item)[]"
        case "object":
            guard let properties = schema["properties"]?.objectValue, !properties.isEmpty else {
                if let extra = schema["additionalProperties"], extra.objectValue != nil {
                    return "Record<string, \(type(extra, defs: defs, depth: depth + 1))>"
                }
                return "Record<string, unknown>"
            }
            let required = Set(schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            let fields = properties.map { name, property in
                "\(key(name))\(required.contains(name) ? "" : "?"): \(type(property, defs: defs, depth: depth + 1))"
            }
            return "{ " + fields.joined(separator: "; ") + " }"
        default: return "unknown"
        }
    }

    static func definitions(_ schema: JSON) -> JSONObject {
        schema["$defs"]?.objectValue ?? schema["definitions"]?.objectValue ?? [:]
    }

    static func key(_ name: String) -> String {
        JSIdentifier.make(name) == name || JSIdentifier.reserved.contains(name) && name.allSatisfy({ $0.isLetter })
            ? name : JSON.string(name).text
    }

    static func comment(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "*/", with: "* /").split(whereSeparator: \.isNewline).joined(separator: " ")
        return flat.count > 300 ? String(flat.prefix(297)) + "..." : flat
    }
}
