/// A configuration problem, pointing at the file, line and key.
///
/// ```
/// portal.yaml:12:5: servers[1].url: expected an http or https URL, found "ftp://x"
/// ```
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var column: Int?
    /// The key path, e.g. `servers[1].url`.
    public var key: String
    public var message: String

    public init(file: String, line: Int?, column: Int?, key: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    public var description: String {
        var where_ = file
        if let line { where_ += ":\(line)" }
        if let column { where_ += ":\(column)" }
        return key.isEmpty ? "\(where_): \(message)" : "\(where_): \(key): \(message)"
    }
}
