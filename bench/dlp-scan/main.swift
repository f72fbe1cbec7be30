// The Swift side of the DLP benchmark (bench/dlp/run.py drives it):
//
//   mcp-bench-dlp accuracy LABELED.jsonl
//       one line per record: {"id": n, "spans": [{"entity", "start", "end"}]}
//       with code-point offsets, every built-in PII and secret detector
//   mcp-bench-dlp throughput MESSAGES.jsonl [--seconds S]
//       the whole built-in set over MCP messages on one thread, as the
//       gateway scans them (already parsed), and again with JSON parsing
//   mcp-bench-dlp patterns MESSAGES.jsonl
//       for tuning: Hyperscan alone over the messages' strings, each
//       first-pass pattern on its own and all of them together (those
//       found from runs of digits are not in Hyperscan's first pass)
import CHyperscan
import DLP
import Foundation
import MCPWire
import PortalCore

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("mcp-bench-dlp: \(message)\n".utf8))
    exit(2)
}

func lines(_ path: String) -> [[UInt8]] {
    guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
    return Array(data).split(separator: 0x0A).map(Array.init)
}

/// The built-in detectors, compiled when a mode needs them.
func makeEngine() -> DLPEngine {
    do { return try DLPEngine(config: DLPConfig()) } catch { fail("\(error)") }
}
let signatures = Set(Detector.builtIn.filter { $0.category == .signature }.map(\.id))

/// Code-point offsets of UTF-8 byte offsets (Python's string indices).
func codePointOffsets(_ bytes: [UInt8]) -> [Int] {
    var offsets = [Int](repeating: 0, count: bytes.count + 1)
    var points = 0
    for (index, byte) in bytes.enumerated() {
        offsets[index] = points
        if byte & 0xC0 != 0x80 { points += 1 }
    }
    offsets[bytes.count] = points
    // A continuation byte belongs to the code point its lead byte started.
    for index in bytes.indices where bytes[index] & 0xC0 == 0x80 { offsets[index] = offsets[index] - 1 }
    return offsets
}

func accuracy(_ path: String) {
    let engine = makeEngine()
    var out = ""
    for line in lines(path) {
        guard let record = try? JSON.parse(line), let id = record["id"], let text = record["text"]?.stringValue else {
            fail("\(path): each line needs id and text")
        }
        let bytes = Array(text.utf8)
        let found: [Finding]
        do { found = try engine.findings(in: bytes) } catch { fail("scan failed: \(error)") }
        let offsets = codePointOffsets(bytes)
        let spans: [JSON] = found.filter { !signatures.contains($0.detector) }.map {
            ["entity": .string($0.detector), "start": .int(offsets[$0.start]), "end": .int(offsets[$0.end])]
        }
        out += JSON.object(["id": id, "spans": .array(spans)]).text + "\n"
    }
    FileHandle.standardOutput.write(Data(out.utf8))
}

func throughput(_ path: String, seconds: Double) {
    let engine = makeEngine()
    let raw = lines(path)
    let messages: [JSON]
    do { messages = try raw.map { try JSON.parse($0) } } catch { fail("\(path): \(error)") }
    let bytes = raw.reduce(0) { $0 + $1.count }
    let clock = ContinuousClock()

    // Scan only: the gateway has the message parsed already.
    var findings = 0, passes = 0
    let start = clock.now
    repeat {
        findings = 0
        for message in messages {
            do { findings += try engine.findings(in: message).count } catch { fail("scan failed: \(error)") }
        }
        passes += 1
    } while clock.now - start < .seconds(seconds)
    let elapsed = clock.now - start
    let scanSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18

    // Parse and scan: the cost from bytes on the wire.
    var parsePasses = 0
    let parseStart = clock.now
    repeat {
        for line in raw {
            do { _ = try engine.findings(in: try JSON.parse(line)) } catch { fail("\(error)") }
        }
        parsePasses += 1
    } while clock.now - parseStart < .seconds(seconds / 2)
    let parseElapsed = clock.now - parseStart
    let parseSeconds = Double(parseElapsed.components.seconds) + Double(parseElapsed.components.attoseconds) / 1e18

    let report: JSON = [
        "bytes": .int(bytes * passes),
        "seconds": .number(String(format: "%.3f", scanSeconds)),
        "mb_per_s": .number(String(format: "%.1f", Double(bytes * passes) / scanSeconds / 1e6)),
        "messages": .int(messages.count),
        "passes": .int(passes),
        "findings_per_pass": .int(findings),
        "parse_mb_per_s": .number(String(format: "%.1f", Double(bytes * parsePasses) / parseSeconds / 1e6)),
    ]
    print(report.text)
}

/// Hyperscan's first pass alone: where the scanning time goes.
func patterns(_ path: String, trying: [String]) {
    var strings: [UInt8] = []
    func collect(_ json: JSON) {
        switch json {
        case .string(let s): strings += s.utf8; strings.append(0)
        case .array(let items): items.forEach(collect)
        case .object(let object): object.forEach { collect($0.value) }
        default: break
        }
    }
    for line in lines(path) { if let message = try? JSON.parse(line) { collect(message) } }
    // Hyperscan's share of the first pass: patterns found from runs of digits are not in it.
    let all = Detector.builtIn.flatMap(\.patterns).filter { $0.digitGate == nil }
    func measure(_ name: String, _ chosen: [PatternSet.Pattern], startOfMatch: Bool = false) {
        let copies = chosen.map { strdup($0.prefilter ?? $0.expression) }
        defer { copies.forEach { free($0) } }
        let flags = chosen.map { ((startOfMatch ? $0.caseless : $0.prefilterCaseless) ? UInt32(HS_FLAG_CASELESS) : 0) | (startOfMatch ? UInt32(HS_FLAG_SOM_LEFTMOST) : 0) }
        let ids = chosen.indices.map(UInt32.init)
        var database: OpaquePointer?, error: UnsafeMutablePointer<hs_compile_error_t>?, scratch: OpaquePointer?
        let status = copies.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            hs_compile_multi($0.baseAddress, flags, ids, UInt32(chosen.count), UInt32(HS_MODE_BLOCK), nil, &database, &error)
        }
        guard status == HS_SUCCESS, let database, hs_alloc_scratch(database, &scratch) == HS_SUCCESS else {
            print("\(name) does not compile: \(error.flatMap { $0.pointee.message.map { String(cString: $0) } } ?? "?")")
            return
        }
        final class Count { var n = 0 }
        let count = Count()
        let clock = ContinuousClock()
        var passes = 0
        let start = clock.now
        repeat {
            count.n = 0
            strings.withUnsafeBufferPointer { buffer in
                _ = buffer.withMemoryRebound(to: CChar.self) { chars in
                    hs_scan(database, chars.baseAddress, UInt32(chars.count), 0, scratch, { _, _, _, _, context in
                        Unmanaged<Count>.fromOpaque(context!).takeUnretainedValue().n += 1
                        return 0
                    }, Unmanaged.passUnretained(count).toOpaque())
                }
            }
            passes += 1
        } while clock.now - start < .seconds(1)
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(String(format: "%6.0f MB/s %8d hits  %@", Double(strings.count * passes) / seconds / 1e6, count.n, name))
        hs_free_scratch(scratch)
        hs_free_database(database)
    }
    print("\(strings.count) bytes of strings")
    if !trying.isEmpty {
        // Expressions from the command line, `i:` in front for caseless: all
        // together, then each, then each with start-of-match tracking.
        let tried = trying.map { $0.hasPrefix("i:") ? PatternSet.Pattern(String($0.dropFirst(2)), caseless: true) : PatternSet.Pattern($0) }
        measure("together", tried)
        for pattern in tried { measure(pattern.expression, [pattern]) }
        for pattern in tried { measure("start of match: " + pattern.expression, [pattern], startOfMatch: true) }
        return
    }
    measure("all", all)
    for detector in Detector.builtIn {
        for (index, pattern) in detector.patterns.enumerated() where pattern.digitGate == nil { measure("\(detector.id)[\(index)] \(pattern.prefilter ?? pattern.expression)", [pattern]) }
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch (arguments.first, arguments.count) {
case ("accuracy", 2):
    accuracy(arguments[1])
case ("patterns", _) where arguments.count >= 2:
    patterns(arguments[1], trying: Array(arguments.dropFirst(2)))
case ("throughput", let count) where count == 2 || (count == 4 && arguments[2] == "--seconds"):
    let seconds = arguments.count == 4 ? Double(arguments[3]) ?? 0 : 10
    guard seconds > 0 else { fail("--seconds takes a positive number") }
    throughput(arguments[1], seconds: seconds)
default:
    fail("usage: mcp-bench-dlp accuracy LABELED.jsonl | throughput MESSAGES.jsonl [--seconds S] | patterns MESSAGES.jsonl")
}
