import ArgumentParser
import DLP
import Foundation
import MCPWire
import PortalCore

struct DLPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlp",
        abstract: "Try the DLP detectors and profiles on a file.",
        subcommands: [Test.self]
    )

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print what would match in FILE (or - for standard input): a JSON message is walked string by string with JSON paths; anything else is scanned as bytes.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Only this profile's detectors, and whether the profile would trip.") var profile: String?
        @Flag(help: "Scan each line on its own (byte offsets per line).") var lines = false
        @Flag(help: "One JSON object per finding.") var json = false
        @Argument(help: "The file, or - for standard input.") var file: String

        func run() async throws {
            let config = try options.load()
            let engine: DLPEngine
            do {
                engine = try DLPEngine(config: config.dlp)
            } catch {
                throw ValidationError("\(error)")
            }
            var detectors: Set<String>?
            if let profile {
                guard let found = engine.profiles[profile] else {
                    throw ValidationError("--profile: unknown profile \"\(profile)\"; known: \(engine.profiles.keys.sorted().joined(separator: ", "))")
                }
                detectors = found.detectors
            }
            let input: Data
            do {
                input = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            } catch {
                throw ValidationError("\(file): cannot read the file: \(error.localizedDescription)")
            }
            let bytes = Array(input)
            var total: [Finding] = []
            if lines {
                for (number, line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
                    let found = try engine.findings(in: Array(line)).filter { detectors?.contains($0.detector) ?? true }
                    total += found
                    for finding in found { emit(finding, bytes: Array(line), line: number, path: nil) }
                }
            } else if let message = try? JSON.parse(bytes) {
                let found: [LocatedFinding]
                do {
                    found = try engine.findings(in: message).filter { detectors?.contains($0.finding.detector) ?? true }
                } catch {
                    throw ValidationError("\(file): \(error)")
                }
                total = found.map(\.finding)
                for located in found { emit(located.finding, bytes: nil, line: nil, path: located.path) }
            } else {
                total = try engine.findings(in: bytes).filter { detectors?.contains($0.detector) ?? true }
                for finding in total { emit(finding, bytes: bytes, line: nil, path: nil) }
            }
            if !json { summarize(total, engine: engine) }
        }

        func emit(_ finding: Finding, bytes: [UInt8]?, line: Int?, path: String?) {
            if json {
                var object: JSONObject = ["detector": .string(finding.detector), "start": .int(finding.start), "end": .int(finding.end)]
                if let line { object["line"] = .int(line) }
                if let path { object["path"] = .string(path) }
                print(JSON.object(object).text)
                return
            }
            var where_ = path ?? (line.map { "line \($0 + 1)" } ?? "bytes")
            where_ += " \(finding.start)-\(finding.end)"
            var preview = ""
            if let bytes, finding.end <= bytes.count { preview = " " + Self.masked(Array(bytes[finding.start..<finding.end])) }
            print("\(finding.detector.padding(toLength: 16, withPad: " ", startingAt: 0)) \(where_)\(preview)")
        }

        /// Enough of a match to recognise it, never the whole value.
        static func masked(_ value: [UInt8]) -> String {
            let text = String(decoding: value, as: UTF8.self)
            guard text.count > 6 else { return String(repeating: "*", count: text.count) }
            return "\(text.prefix(2))\(String(repeating: "*", count: min(12, text.count - 4)))\(text.suffix(2))"
        }

        func summarize(_ findings: [Finding], engine: DLPEngine) {
            let counts = Dictionary(grouping: findings, by: \.detector).mapValues(\.count)
            print("\(findings.count) finding\(findings.count == 1 ? "" : "s")" + (counts.isEmpty ? "" : ": " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
            let profiles = profile.map { [$0] } ?? engine.profiles.keys.sorted()
            for id in profiles {
                guard let profile = engine.profiles[id] else { continue }
                let counted = findings.filter { profile.detectors.contains($0.detector) }.count
                guard counted > 0 || self.profile != nil else { continue }
                let trips = counted >= profile.minMatches && counted > 0
                print("profile \(id): \(counted) of at least \(profile.minMatches) -> \(trips ? "would trip" : "would not trip")")
            }
        }
    }
}
