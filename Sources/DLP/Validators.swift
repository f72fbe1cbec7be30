import Foundation

/// Checks a regex cannot make: checksums, number ranges, structure. Each
/// gets the matched bytes and says whether they are the real thing.
public enum Validator: String, Sendable, CaseIterable {
    case luhn
    case creditCard = "credit_card"
    case iban
    case usSSN = "us_ssn"
    case ukNINO = "uk_nino"
    case ipv4
    case ipv6
    case phone
    case jwt
    case entropy
    case awsSecret = "aws_secret"

    public func check(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.withUnsafeBytes { check($0[...]) }
    }

    /// The bytes a validator reads: a slice of the scanned buffer, not a copy.
    typealias Bytes = Slice<UnsafeRawBufferPointer>

    func check(_ bytes: Bytes) -> Bool {
        switch self {
        case .luhn: return Self.luhn(Self.digits(bytes))
        case .creditCard: return Self.creditCard(bytes)
        case .iban: return Self.iban(bytes)
        case .usSSN: return Self.ssn(bytes)
        case .ukNINO: return Self.nino(bytes)
        case .ipv4: return Self.ipv4(bytes)
        case .ipv6: return Self.ipv6(bytes)
        case .phone: return Self.phone(bytes)
        case .jwt: return Self.jwt(bytes)
        case .entropy: return !Self.isReference(bytes) && Self.secretLike(bytes, minimumEntropy: 3.3)
        case .awsSecret: return Self.secretLike(bytes, minimumEntropy: 4.0)
        }
    }

    static func digits(_ bytes: Bytes) -> [UInt8] {
        bytes.compactMap { $0 >= 0x30 && $0 <= 0x39 ? $0 - 0x30 : nil }
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    static func luhn(_ digits: [UInt8]) -> Bool {
        guard digits.count >= 2 else { return false }
        var sum = 0
        for (index, digit) in digits.reversed().enumerated() {
            var value = Int(digit)
            if index % 2 == 1 {
                value *= 2
                if value > 9 { value -= 9 }
            }
            sum += value
        }
        return sum % 10 == 0
    }

    /// 12-19 digits, Luhn-valid, an issuer prefix in use for that length,
    /// and the same separator throughout (or none). No allocation: this
    /// runs on every long run of digits.
    static func creditCard(_ bytes: Bytes) -> Bool {
        var separator: UInt8 = 0
        var count = 0, sum = 0, seen: UInt16 = 0, prefix = 0
        for byte in bytes.reversed() {
            if isDigit(byte) {
                var value = Int(byte - 0x30)
                seen |= 1 << value
                if count % 2 == 1 {
                    value *= 2
                    if value > 9 { value -= 9 }
                }
                sum += value
                count += 1
            } else if byte == 0x20 || byte == 0x2D {
                if separator == 0 { separator = byte } else if separator != byte { return false }
            } else {
                return false
            }
        }
        guard (12...19).contains(count), sum % 10 == 0, seen.nonzeroBitCount > 1 else { return false }
        var taken = 0
        for byte in bytes where isDigit(byte) && taken < 4 {
            prefix = prefix * 10 + Int(byte - 0x30)
            taken += 1
        }
        return issuer(prefix: prefix, length: count)
    }

    /// Whether the first four digits open a card number of this length at
    /// some scheme (Visa, Mastercard, Amex, Diners, JCB, Discover, UnionPay,
    /// Maestro, UATP). Maestro alone issues 12-digit numbers.
    static func issuer(prefix: Int, length: Int) -> Bool {
        let two = prefix / 100, three = prefix / 10
        let maestro = prefix == 5018 || prefix == 5020 || prefix == 5038 || prefix == 5893 || (56...58).contains(two)
            || prefix == 6304 || (6759...6763).contains(prefix) || prefix == 604 || prefix == 6390
        if length == 12 { return maestro }
        if maestro { return true }
        switch prefix / 1000 {
        case 4: return true // Visa
        case 5: return (51...55).contains(two) // Mastercard
        case 2: return (2221...2720).contains(prefix) || (prefix == 2131 && length == 15) // Mastercard 2-series, JCB 15
        case 3: return two == 34 || two == 37 || two == 35 || (300...305).contains(three) || two == 36 || two == 38 || two == 39 || prefix == 3095
        case 6: return prefix == 6011 || two == 65 || (644...649).contains(three) || two == 62 // Discover, UnionPay
        case 1: return length == 15 // UATP, JCB 1800
        case 8: return two == 81 // UnionPay 81
        default: return false
        }
    }

    static let ibanLengths: [String: Int] = [
        "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
        "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
        "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
        "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
        "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
        "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SD": 18,
        "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22,
        "VG": 24, "XK": 20,
    ]

    /// Known country and length, then ISO 13616's mod-97 check.
    static func iban(_ bytes: Bytes) -> Bool {
        var compact: [UInt8] = []
        compact.reserveCapacity(34)
        for byte in bytes where byte != 0x20 {
            guard compact.count < 34 else { return false }
            compact.append(byte)
        }
        guard compact.count >= 15 else { return false }
        let country = String(decoding: compact.prefix(2), as: UTF8.self)
        guard let length = ibanLengths[country], length == compact.count else { return false }
        var remainder = 0
        for index in 0..<compact.count {
            let byte = compact[(index + 4) % compact.count]
            switch byte {
            case 0x30...0x39: remainder = (remainder * 10 + Int(byte - 0x30)) % 97
            case 0x41...0x5A: remainder = (remainder * 100 + Int(byte - 0x41 + 10)) % 97
            default: return false
            }
        }
        return remainder == 1
    }

    /// Area 001-899 but not 666, group 01-99, serial 0001-9999, one kind
    /// of separator, and not a well-known sample number.
    static func ssn(_ bytes: Bytes) -> Bool {
        var separator: UInt8 = 0, separators = 0
        var number = 0, count = 0, seen: UInt16 = 0
        for byte in bytes {
            if isDigit(byte) {
                number = number * 10 + Int(byte - 0x30)
                seen |= 1 << (byte - 0x30)
                count += 1
            } else if byte == 0x20 || byte == 0x2D {
                if separator == 0 { separator = byte } else if separator != byte { return false }
                separators += 1
            } else {
                return false
            }
        }
        guard count == 9, separators == 0 || separators == 2, seen.nonzeroBitCount > 1 else { return false }
        let area = number / 1_000_000, group = number / 10_000 % 100, serial = number % 10_000
        guard area != 0, area != 666, area < 900, group != 0, serial != 0 else { return false }
        return ![78_051_120, 219_099_999, 123_456_789, 987_654_320].contains(number)
    }

    /// Two prefix letters from the allowed sets, not a reserved pair.
    static func nino(_ bytes: Bytes) -> Bool {
        let letters = bytes.filter { $0 >= 0x41 && $0 <= 0x5A }
        guard letters.count == 3 else { return false }
        let first = letters[letters.startIndex], second = letters[letters.startIndex + 1]
        guard !"DFIQUV".utf8.contains(first), !"DFIOQUV".utf8.contains(second) else { return false }
        let prefix = String(decoding: [first, second], as: UTF8.self)
        return !["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"].contains(prefix)
    }

    /// Four decimal parts 0-255, without leading zeros.
    static func ipv4(_ bytes: Bytes) -> Bool {
        var parts = 0, value = 0, digits = 0, leadingZero = false
        for byte in bytes {
            if isDigit(byte) {
                if digits == 0 { leadingZero = byte == 0x30 } else if leadingZero { return false }
                value = value * 10 + Int(byte - 0x30)
                digits += 1
                guard digits <= 3, value <= 255 else { return false }
            } else if byte == 0x2E {
                guard digits > 0 else { return false }
                parts += 1
                value = 0
                digits = 0
            } else {
                return false
            }
        }
        return digits > 0 && parts == 3
    }

    /// RFC 4291 text form: eight groups of 1-4 hex digits, or fewer with
    /// one `::`, optionally ending in dotted IPv4; at least three groups
    /// written (`::` or `1::` alone say nothing).
    static func ipv6(_ bytes: Bytes) -> Bool {
        var groups = 0, hexDigits = 0, compressed = false
        var index = bytes.startIndex
        let end = bytes.endIndex
        if index < end, bytes[index] == 0x3A {
            guard index + 1 < end, bytes[index + 1] == 0x3A else { return false }
            compressed = true
            index += 2
        }
        var groupStart = index
        while index < end {
            let byte = bytes[index]
            if isDigit(byte) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x66) {
                hexDigits += 1
                guard hexDigits <= 4 else { return false }
                index += 1
            } else if byte == 0x3A {
                guard hexDigits > 0 else { return false }
                groups += 1
                hexDigits = 0
                index += 1
                if index < end, bytes[index] == 0x3A {
                    guard !compressed else { return false }
                    compressed = true
                    index += 1
                }
                groupStart = index
            } else if byte == 0x2E {
                // The last 32 bits as IPv4.
                guard ipv4(bytes[groupStart..<end]) else { return false }
                groups += 2
                hexDigits = 0
                index = end
                break
            } else {
                return false
            }
        }
        if hexDigits > 0 { groups += 1 }
        let lastIsColon = bytes.last == 0x3A
        if lastIsColon, !compressed { return false }
        if lastIsColon, bytes.count >= 2, bytes[bytes.endIndex - 2] != 0x3A { return false }
        guard compressed ? groups <= 7 : groups == 8 else { return false }
        return groups >= 3
    }

    /// 7-15 digits (before an extension), and not one or two digits repeated.
    static func phone(_ bytes: Bytes) -> Bool {
        var count = 0, seen: UInt16 = 0
        for byte in bytes {
            if byte == 0x78 || byte == 0x65 { break } // x, ext
            if isDigit(byte) {
                count += 1
                seen |= 1 << (byte - 0x30)
            }
        }
        return (7...15).contains(count) && seen.nonzeroBitCount > 2
    }

    /// A JWT's header decodes to a JSON object with `alg`.
    static func jwt(_ bytes: Bytes) -> Bool {
        guard let dot = bytes.firstIndex(of: 0x2E) else { return false }
        guard let header = base64URLDecode(bytes[bytes.startIndex..<dot]) else { return false }
        let text = String(decoding: header, as: UTF8.self)
        return text.hasPrefix("{") && text.contains("\"alg\"")
    }

    static func base64URLDecode(_ bytes: Bytes) -> [UInt8]? {
        var text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.utf8.count % 4 != 0 { text += "=" }
        return Data(base64Encoded: text).map { Array($0) }
    }

    /// A value that names a secret instead of holding one: a dotted path
    /// (`process.env.API_TOKEN`, `settings.secrets.key`), a placeholder
    /// (`${API_TOKEN}`, `<your-token>`, `{{ token }}`) or a call in code
    /// (`lexer.get_token()`, `bytes(memoryview(password))`).
    static func isReference(_ bytes: Bytes) -> Bool {
        guard let first = bytes.first else { return false }
        if first == 0x3C || first == 0x7B || (first == 0x24 && bytes.dropFirst().first == 0x7B) { return true }
        if bytes.last == 0x29, let open = bytes.firstIndex(of: 0x28), open > bytes.startIndex,
           bytes[..<open].allSatisfy({ $0 == 0x2E || $0 == 0x5F || $0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A || isDigit($0) }),
           !isDigit(first) { return true }
        var dots = 0, digits = 0
        for byte in bytes {
            if byte == 0x2E { dots += 1 } else if isDigit(byte) { digits += 1 } else if !(byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) && byte != 0x5F { return false }
        }
        return dots > 0 && digits == 0
    }

    /// A value that looks generated: enough Shannon entropy per character,
    /// at least two kinds of characters.
    static func secretLike(_ bytes: Bytes, minimumEntropy: Double) -> Bool {
        guard bytes.count >= 16 else { return false }
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 256) { counts in
            counts.initialize(repeating: 0)
            var classes: UInt8 = 0
            for byte in bytes {
                counts[Int(byte)] += 1
                switch byte {
                case 0x30...0x39: classes |= 1
                case 0x41...0x5A: classes |= 2
                case 0x61...0x7A: classes |= 4
                default: classes |= 8
                }
            }
            guard classes.nonzeroBitCount >= 2 else { return false }
            let total = Double(bytes.count)
            var entropy = 0.0
            for byte in bytes where counts[Int(byte)] > 0 {
                // Each distinct byte once: its count is cleared when counted.
                let p = Double(counts[Int(byte)]) / total
                entropy -= p * log2(p)
                counts[Int(byte)] = 0
            }
            return entropy >= minimumEntropy
        }
    }
}
