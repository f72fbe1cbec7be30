import Foundation
import Logging
import MCPWire

/// Writes one JSON object per line to stderr:
/// `{"ts":"…","level":"info","label":"…","msg":"…","upstream.id":"notes"}`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String

    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: JSONObject = [
            "ts": .string(Date().formatted(.iso8601)),
            "level": .string(event.level.rawValue),
            "label": .string(label),
            "msg": .string("\(event.message)"),
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            object[key] = .string("\(value)")
        }
        var bytes = JSON.object(object).serialized()
        bytes.append(0x0A)
        FileHandle.standardError.write(Data(bytes))
    }
}
