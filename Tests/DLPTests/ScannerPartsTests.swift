import MCPWire
import Testing
@testable import DLP

@Suite struct ScannerPartsTests {
    /// The grouped search finds a word exactly where the plain definition
    /// does: somewhere wholly inside the range, ignoring ASCII case.
    @Test func contextWordsAreFoundWhereThePlainSearchFindsThem() {
        var random = SplitMix(state: 7)
        let words = ["phone", "tel", "call", "cell", "contact", "ss#", "social security", "dial"]
        let context = ContextWords(words)
        let lowered = words.map { Array($0.utf8) }
        let alphabet = Array("phoneTELcalCONTsSd# ity\u{0}é".utf8)
        var found = 0
        for _ in 0..<3000 {
            // Random bytes and whole or cut words in mixed case.
            var text: [UInt8] = []
            while text.count < 40 {
                if Bool.random(using: &random) {
                    text.append(alphabet.randomElement(using: &random)!)
                } else {
                    let word = lowered.randomElement(using: &random)!
                    text += word.prefix(Int.random(in: 1...word.count, using: &random)).map { Bool.random(using: &random) ? $0 : ($0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0) }
                }
            }
            let lower = Int.random(in: 0...text.count, using: &random), upper = Int.random(in: lower...text.count, using: &random)
            let plain = lowered.contains { word in
                (lower...max(lower, upper - word.count)).contains { start in
                    start + word.count <= upper && (0..<word.count).allSatisfy { ASCII.lower(text[start + $0]) == word[$0] }
                }
            }
            let grouped = text.withUnsafeBytes { context.occurs(in: lower..<upper, of: $0) }
            #expect(grouped == plain, "\(String(decoding: text, as: UTF8.self)) [\(lower), \(upper))")
            if plain { found += 1 }
        }
        #expect(found > 100) // the texts do hold words
        #expect(ContextWords([]).isEmpty)
        #expect(!ContextWords([""]).isEmpty)
        #expect([UInt8]("x".utf8).withUnsafeBytes { ContextWords([""]).occurs(in: 0..<0, of: $0) })
    }

    /// Packed keys sort candidates as the comparison does: by start, then
    /// detector, then the longest first; values too large for a key fall
    /// back to the comparison.
    @Test func candidatesSortByStartDetectorThenLongestFirst() {
        var random = SplitMix(state: 11)
        for huge in [false, true] {
            for _ in 0..<200 {
                var matches = (0..<Int.random(in: 0...60, using: &random)).map { _ -> PatternSet.Match in
                    let start = Int.random(in: 0...50, using: &random)
                    return PatternSet.Match(pattern: Int.random(in: 0...5, using: &random), start: start, end: start + Int.random(in: 0...8, using: &random))
                }
                if huge, !matches.isEmpty { matches[0].end = matches[0].start + (1 << 30) }
                let expected = matches.sorted { a, b in
                    a.start != b.start ? a.start < b.start : a.pattern != b.pattern ? a.pattern < b.pattern : a.end > b.end
                }
                Scanner.sortForConfirming(&matches)
                #expect(matches == expected)
            }
        }
    }
}
