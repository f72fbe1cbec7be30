import CDigitRuns
import Testing
@testable import DLP

/// A seeded generator, so a failure can be replayed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Text dense with numbers of every kind, near misses, and the noise
/// around them, cut at random places.
func numberSoup(_ random: inout SplitMix, pieces: Int) -> [UInt8] {
    let fragments = [
        "555-123-4567", "(415) 555-0132", "+1 415 555 0132 x12", "+447700 900123", "+44 20 7946 0958", "020 7946 0958",
        "07700 900123", "030-1234567", "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "6011000990139424",
        "536-90-4399", "536 90 4399", "078-05-1120", "AB 12 34 56 C", "AB123456C", "GB82 WEST 1234 5698 7654 32",
        "DE89370400440532013000", "NL91ABNA0417164300", "192.168.10.254", "10.0.0.1", "1.2.3.4.5", "2024-03-15T11:26:02.768Z",
        "v10.0.19041.1", "12:30:45", "3.14159", "(0)30 123456", "phone:", "tel ", "ssn ", " ", "-", ".", "(", ")", "+", "/",
        "\n", "x", "ext.", "abc", "ID", "QQ", "0", "00", "123", "4567", "99", "\u{00e9}",
    ]
    var text: [UInt8] = []
    for _ in 0..<pieces {
        if Int.random(in: 0..<4, using: &random) == 0 {
            text.append(UInt8(ascii: "0") + UInt8.random(in: 0...9, using: &random))
        } else {
            text += fragments.randomElement(using: &random)!.utf8
        }
    }
    return text
}

@Suite struct Narrowing {
    /// The runs as the definition says, a byte at a time.
    func expectedRuns(_ bytes: [UInt8], minDigits: Int, minDots: Int) -> [[Int]] {
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        func joins(_ b: UInt8) -> Bool { isDigit(b) || " .-()+".utf8.contains(b) }
        func upper(_ b: UInt8) -> Bool { b >= 0x41 && b <= 0x5A }
        var runs: [[Int]] = []
        var index = 0
        while index < bytes.count {
            guard isDigit(bytes[index]) else { index += 1; continue }
            let start = index
            var end = index, digits = 0, dots = 0
            while index < bytes.count, joins(bytes[index]) {
                if isDigit(bytes[index]) { digits += 1; end = index + 1 }
                if bytes[index] == 0x2E { dots += 1 }
                index += 1
            }
            var at = start, letters = 0
            if at >= 1, bytes[at - 1] == 0x20 { at -= 1 }
            if at >= 1, upper(bytes[at - 1]) { letters = at >= 2 && upper(bytes[at - 2]) ? 2 : 1 }
            if digits >= minDigits || dots >= minDots || letters == 2 { runs.append([start, end, digits, dots, letters]) }
        }
        return runs
    }

    final class Found { var runs: [[Int]] = [] }

    func runs(_ bytes: [UInt8], minDigits: Int, minDots: Int = 1000) -> [[Int]] {
        let found = Found()
        bytes.withUnsafeBufferPointer { buffer in
            digit_runs(buffer.baseAddress, buffer.count, UInt32(minDigits), UInt32(minDots), { context, run in
                let run = run!.pointee
                Unmanaged<Found>.fromOpaque(context!).takeUnretainedValue().runs.append(
                    [Int(run.start), Int(run.end), Int(run.digits), Int(run.dots), Int(run.letters_before)])
            }, Unmanaged.passUnretained(found).toOpaque())
        }
        return found.runs
    }

    @Test func digitRunsMatchTheirDefinition() {
        var random = SplitMix(state: 7)
        for round in 0..<400 {
            // Lengths around the 64-byte blocks, runs across their edges.
            let bytes = Array(numberSoup(&random, pieces: Int.random(in: 0...60, using: &random)).prefix(Int.random(in: 0...300, using: &random)))
            let minDigits = Int.random(in: 1...12, using: &random), minDots = Int.random(in: 1...4, using: &random)
            #expect(runs(bytes, minDigits: minDigits, minDots: minDots) == expectedRuns(bytes, minDigits: minDigits, minDots: minDots), "round \(round): \(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test func aRunAcrossManyBlocksIsOneRun() {
        let bytes = Array(String(repeating: "1 2-3.", count: 100).utf8) + [0x61]
        let found = runs(bytes, minDigits: 4)
        #expect(found.count == 1)
        #expect(found.first?[2] == 300)
        #expect(found.first?[3] == 100)
        #expect(found.first?[1] == bytes.count - 2)
    }

    /// The built-in detectors with every narrowing taken off: candidates
    /// from Hyperscan alone, windows at full width.
    static let plain: Scanner = {
        let detectors = Detector.builtIn.map { detector in
            var detector = detector
            detector.patterns = detector.patterns.map { pattern in
                var pattern = pattern
                pattern.digitGate = nil
                pattern.within = nil
                pattern.minDigits = 0
                return pattern
            }
            return detector
        }
        return try! Scanner(detectors: detectors)
    }()

    @Test func narrowingNeverLosesAMatch() throws {
        var random = SplitMix(state: 42)
        var compared = 0
        for round in 0..<3000 {
            let bytes = numberSoup(&random, pieces: Int.random(in: 1...40, using: &random))
            let narrowed = try engine.scanner.scan(bytes)
            let full = try Self.plain.scan(bytes)
            #expect(narrowed == full, "round \(round): \(String(decoding: bytes, as: UTF8.self))")
            compared += full.count
        }
        // The soup is rich enough to say something.
        #expect(compared > 3000)
    }
}
