/// Model-written code as the sandbox compiles it. Models send an async
/// arrow function, a bare function body, or either inside a markdown fence.
struct CodeSource: Equatable {
    enum Form: Equatable {
        /// `(code)`: a function (or a value) to run.
        case expression
        /// `(async () => {code})`: statements with `return`.
        case body
    }

    static let url = "code.js"

    /// The code without a markdown fence around it.
    static func unfenced(_ code: String) -> String {
        let trimmed = code.trimmingWhitespace()
        guard let open = trimmed.range(of: "```") else { return trimmed }
        // The first fenced block; the language tag ends with the line.
        let afterOpen = trimmed[open.upperBound...]
        guard let newline = afterOpen.firstIndex(of: "\n") else { return trimmed }
        let inside = afterOpen[afterOpen.index(after: newline)...]
        let end = inside.range(of: "```")?.lowerBound ?? inside.endIndex
        return String(inside[..<end]).trimmingWhitespace()
    }

    static func wrapped(_ code: String, as form: Form) -> String {
        switch form {
        case .expression: return prefix(form) + code + "\n)"
        case .body: return prefix(form) + code + "\n})"
        }
    }

    static func prefix(_ form: Form) -> String {
        form == .expression ? "(" : "(async () => {"
    }

    /// Whether a failing parse should be explained as a function (rather
    /// than as a body): the code starts like one.
    static func looksLikeFunction(_ code: String) -> Bool {
        let start = code.prefix(40)
        return start.hasPrefix("async") || start.hasPrefix("function") || start.hasPrefix("(")
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[first...last])
        return String(view)
    }
}
