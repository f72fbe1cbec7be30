import CDigitRuns

extension PatternSet {
    /// Candidates for a pattern whose digits are all joined by the
    /// separators numbers are written with (space . - ( ) +), so they lie in
    /// one run of those bytes. A SIMD pass finds the runs (blocks of text
    /// without digits cost almost nothing, where a regex over digit classes
    /// costs Hyperscan about a nanosecond a byte); a run becomes a window,
    /// from `before` bytes before its first digit to `after` bytes after its
    /// last, when it has `minDigits` digits, `minDots` dots, and the
    /// `shape` the pattern needs. Each test is implied by the pattern (or by its
    /// validator): a gate narrows, it never loses a finding.
    public struct DigitGate: Sendable {
        /// Groups of digits a match must hold, one after another.
        public enum Shape: Sendable {
            /// Some group of 3, one of `separators`, a group of 4 (555-1234).
            case threeThenFour(separators: PatternSet.ByteClass)
            /// A group of 3-6 digits opening with `0[1-9]`, a space or `-`,
            /// and a group of 3-8 (a national number with its trunk zero).
            case trunkZero
            /// Groups joined by single spaces or dashes, `digits` in all.
            case chained(digits: Int)
            /// Groups of 3, 2 and 4 joined by the same one of `separators`.
            case ssn(separators: PatternSet.ByteClass)
            /// Four groups of 1-3 joined by dots.
            case dottedQuad
            /// A UK National Insurance number: two prefix letters, three
            /// pairs of digits, a suffix letter A-D.
            case nino
            /// An IBAN: a country code right before the check digits, and
            /// at least 15 letters and digits.
            case iban

            /// Whether the run opens after two uppercase letters.
            var needsLetters: Bool {
                switch self {
                case .nino, .iban: true
                default: false
                }
            }
        }

        public var minDigits: Int
        /// Dots from the first digit on (those of an address).
        public var minDots: Int
        public var shape: Shape
        public var before: Int
        public var after: Int

        public init(minDigits: Int, minDots: Int = 0, shape: Shape, before: Int, after: Int) {
            self.minDigits = minDigits
            self.minDots = minDots
            self.shape = shape
            self.before = before
            self.after = after
        }

        /// The counts the C pass gives: a run failing them is not looked at closer.
        func counts(_ run: digit_run) -> Bool {
            Int(run.digits) >= minDigits && Int(run.dots) >= minDots && (!shape.needsLetters || run.letters_before == 2)
        }

        /// The shape, from the run's groups (filled for this run).
        func fits(_ run: digit_run, groups: DigitGroups) -> Bool {
            switch shape {
            case .threeThenFour(let separators):
                return groups.any(2) { g in g.length(0) == 3 && g.joined(0, by: separators) && g.length(1) == 4 }
            case .trunkZero:
                return groups.any(2) { g in
                    (3...6).contains(g.length(0)) && g.byte(0, 0) == 0x30 && g.byte(0, 1) != 0x30
                        && g.joined(0, by: .spaceOrDash) && (3...8).contains(g.length(1))
                }
            case .chained(let digits):
                var total = 0
                for index in 0..<groups.count {
                    total += groups.length(at: index)
                    if total >= digits { return true }
                    if !groups.joined(at: index, by: .spaceOrDash) { total = 0 }
                }
                return false
            case .ssn(let separators):
                return groups.any(3) { g in
                    g.length(0) == 3 && g.length(1) == 2 && g.length(2) == 4 && g.joined(0, by: separators)
                        && g.separator(0) == g.separator(1)
                }
            case .nino:
                return Self.isNINO(at: Int(run.start), in: groups.bytes)
            case .iban:
                return Self.isIBAN(at: Int(run.start), in: groups.bytes)
            case .dottedQuad:
                let dot = PatternSet.ByteClass(0x2E...0x2E)
                return groups.any(4) { g in
                    (0..<4).allSatisfy { (1...3).contains(g.length($0)) } && (0..<3).allSatisfy { g.joined($0, by: dot) }
                }
            }
        }
    }

    /// The letters a NINO's prefix may use: first and second.
    static let ninoFirst = PatternSet.ByteClass(0x41...0x43, 0x45...0x45, 0x47...0x48, 0x4A...0x50, 0x52...0x54, 0x57...0x5A)
    static let ninoSecond = PatternSet.ByteClass(0x41...0x43, 0x45...0x45, 0x47...0x48, 0x4A...0x4E, 0x50...0x50, 0x52...0x54, 0x57...0x5A)

    /// IBAN country codes, by (first - A) * 26 + (second - A).
    static let ibanCountries: [Bool] = {
        var codes = [Bool](repeating: false, count: 26 * 26)
        for code in Validator.ibanLengths.keys {
            let letters = Array(code.utf8)
            codes[Int(letters[0] - 0x41) * 26 + Int(letters[1] - 0x41)] = true
        }
        return codes
    }()
}

extension PatternSet.DigitGate {
    static func isUpper(_ byte: UInt8) -> Bool { byte &- 0x41 < 26 }

    /// `[A-Z][A-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]` with its digits at `start`.
    static func isNINO(at start: Int, in bytes: UnsafeRawBufferPointer) -> Bool {
        var prefix = start
        if prefix >= 1, bytes[prefix - 1] == 0x20 { prefix -= 1 }
        guard prefix >= 2, PatternSet.ninoFirst.contains(bytes[prefix - 2]), PatternSet.ninoSecond.contains(bytes[prefix - 1]) else { return false }
        var index = start, digits = 0
        while digits < 6 {
            guard index < bytes.count else { return false }
            if Validator.isDigit(bytes[index]) {
                digits += 1
                index += 1
            } else if bytes[index] == 0x20, digits % 2 == 0, bytes[index - 1] != 0x20 {
                index += 1
            } else {
                return false
            }
        }
        if index < bytes.count, bytes[index] == 0x20 { index += 1 }
        return index < bytes.count && bytes[index] &- 0x41 < 4
    }

    /// A known country code right before the check digits at `start`, and
    /// at least 15 letters and digits from it on (single spaces allowed).
    static func isIBAN(at start: Int, in bytes: UnsafeRawBufferPointer) -> Bool {
        guard start >= 2, isUpper(bytes[start - 2]), isUpper(bytes[start - 1]),
              PatternSet.ibanCountries[Int(bytes[start - 2] - 0x41) * 26 + Int(bytes[start - 1] - 0x41)] else { return false }
        var index = start, count = 2
        while index < bytes.count, count < 15 {
            let byte = bytes[index]
            if Validator.isDigit(byte) || isUpper(byte) {
                count += 1
            } else if byte != 0x20 || bytes[index - 1] == 0x20 {
                break
            }
            index += 1
        }
        return count >= 15
    }
}

extension PatternSet {
    /// The groups of digits in a run: where each starts, how long it is,
    /// and the bytes between it and the next. Filled in place, reused.
    final class DigitGroups {
        @exclusivity(unchecked) private(set) var starts: [Int] = []
        @exclusivity(unchecked) private(set) var lengths: [Int] = []
        private(set) var bytes = UnsafeRawBufferPointer(start: nil, count: 0)

        var count: Int { lengths.count }

        func fill(_ run: digit_run, in bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
            starts.removeAll(keepingCapacity: true)
            lengths.removeAll(keepingCapacity: true)
            var index = Int(run.start)
            let end = Int(run.end)
            while index < end {
                while index < end, !Validator.isDigit(bytes[index]) { index += 1 }
                let start = index
                while index < end, Validator.isDigit(bytes[index]) { index += 1 }
                if index > start {
                    starts.append(start)
                    lengths.append(index - start)
                }
            }
        }

        func length(at index: Int) -> Int { lengths[index] }

        /// The one byte between group `index` and the next, if it is one byte.
        func separator(at index: Int) -> UInt8? {
            guard index + 1 < count else { return nil }
            let gap = starts[index] + lengths[index]
            return starts[index + 1] == gap + 1 ? bytes[gap] : nil
        }

        func joined(at index: Int, by separators: PatternSet.ByteClass) -> Bool {
            separator(at: index).map(separators.contains) ?? false
        }

        /// Whether `test` holds for some `width` groups in a row, seen
        /// through a window that numbers them from 0.
        func any(_ width: Int, _ test: (Window) -> Bool) -> Bool {
            guard count >= width else { return false }
            for first in 0...(count - width) where test(Window(groups: self, first: first)) { return true }
            return false
        }

        struct Window {
            let groups: DigitGroups
            let first: Int
            func length(_ index: Int) -> Int { groups.length(at: first + index) }
            func separator(_ index: Int) -> UInt8? { groups.separator(at: first + index) }
            func joined(_ index: Int, by separators: PatternSet.ByteClass) -> Bool { groups.joined(at: first + index, by: separators) }
            /// Byte `offset` of group `index`.
            func byte(_ index: Int, _ offset: Int) -> UInt8 { groups.bytes[groups.starts[first + index] + offset] }
        }
    }
}

extension PatternSet.ByteClass {
    static let spaceOrDash = PatternSet.ByteClass(0x20...0x20, 0x2D...0x2D)
}
