import MCPWire

/// One kind of sensitive data: its patterns, the check a regex cannot
/// make, and the words that must appear nearby when the pattern alone is
/// too weak.
public struct Detector: Sendable {
    public enum Category: String, Sendable {
        case pii, secret, signature, custom
    }

    /// How a raw match becomes the span that is reported and redacted.
    public enum Span: Sendable {
        case match
        /// `key = value`: only the value, through its last character.
        case valueAfterAssignment
        /// A PEM header: through its `-----END ...-----` line.
        case pemBlock
        /// Within a run of base64url and dots: the header (`eyJ`), the
        /// payload (`eyJ`) and the signature, not what is glued around them.
        case jwt
        /// `length` bytes ending `dropping` bytes before the match's end
        /// (the match reads one byte past the value to see where it ends).
        case tail(Int, dropping: Int)
    }

    public var id: String
    public var category: Category
    public var patterns: [PatternSet.Pattern]
    public var validator: Validator?
    /// When not empty, one of these (case-insensitive) must appear within
    /// `contextWindow` bytes before the match.
    public var contextWords: [String] { didSet { contextBytes = ContextWords(contextWords) } }
    /// The context words lowercased, as bytes.
    private(set) var contextBytes: ContextWords
    public var contextWindow: Int
    /// Words that count as context when they follow the match closely
    /// instead ("555 0132 (mobile)"); either side will do.
    public var contextWordsAfter: [String] { didSet { contextAfterBytes = ContextWords(contextWordsAfter) } }
    private(set) var contextAfterBytes: ContextWords
    public var contextWindowAfter: Int
    /// The match must stand alone: not glued by `-` or `.` to a letter or
    /// digit before it, nor to a digit after it (a piece of a UUID, of a
    /// longer dotted number, is not a phone number or an address).
    public var isolated: Bool
    public var span: Span
    /// Where two detectors claim overlapping bytes, the higher priority wins.
    public var priority: Int

    public init(id: String, category: Category, patterns: [PatternSet.Pattern], validator: Validator? = nil,
                contextWords: [String] = [], contextWindow: Int = 64, contextWordsAfter: [String] = [], contextWindowAfter: Int = 16,
                isolated: Bool = false, span: Span = .match, priority: Int = 50) {
        self.id = id
        self.category = category
        self.patterns = patterns
        self.validator = validator
        self.contextWords = contextWords
        self.contextBytes = ContextWords(contextWords)
        self.contextWindow = contextWindow
        self.contextWordsAfter = contextWordsAfter
        self.contextAfterBytes = ContextWords(contextWordsAfter)
        self.contextWindowAfter = contextWindowAfter
        self.isolated = isolated
        self.span = span
        self.priority = priority
    }

    /// Whether a match must have context words around it.
    var needsContext: Bool { !contextBytes.isEmpty || !contextAfterBytes.isEmpty }
}

/// Context words, lowercased, grouped by their first byte: a window is
/// read once, and at each byte only the words that start with it (in
/// either case) are compared.
struct ContextWords: Sendable {
    let words: [[UInt8]]
    /// An empty word is found anywhere.
    private let empty: Bool
    /// Words starting with byte `b` are `byFirst[first[b] ..< first[b + 1]]`.
    private let first: [Int]
    private let byFirst: [Int]

    init(_ words: [String]) {
        let all = words.map { Array($0.lowercased().utf8) }
        let nonEmpty = all.filter { !$0.isEmpty }
        self.words = nonEmpty
        empty = all.count > nonEmpty.count
        var first = [Int](repeating: 0, count: 257)
        var byFirst: [Int] = []
        for byte in 0...255 {
            first[byte] = byFirst.count
            byFirst += nonEmpty.indices.filter { nonEmpty[$0][0] == UInt8(byte) }
        }
        first[256] = byFirst.count
        self.first = first
        self.byFirst = byFirst
    }

    var isEmpty: Bool { words.isEmpty && !empty }

    /// Whether a word occurs (ASCII case-insensitively) wholly inside `range` of `bytes`.
    func occurs(in range: Range<Int>, of bytes: UnsafeRawBufferPointer) -> Bool {
        if empty { return true }
        for position in range {
            let byte = Int(ASCII.lower(bytes[position]))
            for slot in first[byte]..<first[byte + 1] {
                let word = words[byFirst[slot]]
                guard position + word.count <= range.upperBound else { continue }
                var index = 1
                while index < word.count, ASCII.lower(bytes[position + index]) == word[index] { index += 1 }
                if index == word.count { return true }
            }
        }
        return false
    }
}

extension PatternSet.Pattern {
    /// This pattern, its window kept to the run of `bytes` around a candidate.
    func within(_ bytes: PatternSet.ByteClass) -> Self {
        var pattern = self
        pattern.within = bytes
        return pattern
    }

    /// This pattern, its candidates found among runs of digits.
    func gate(_ gate: PatternSet.DigitGate) -> Self {
        var pattern = self
        pattern.digitGate = gate
        return pattern
    }

    /// This pattern, skipping windows with fewer than `count` digits.
    func digits(_ count: Int) -> Self {
        var pattern = self
        pattern.minDigits = count
        return pattern
    }
}

extension Detector {
    static func p(_ expression: String, caseless: Bool = false) -> PatternSet.Pattern {
        PatternSet.Pattern(expression, caseless: caseless)
    }

    static func p(_ expression: String, prefilter: String, run: PatternSet.ByteClass) -> PatternSet.Pattern {
        var pattern = PatternSet.Pattern(expression, prefilter: prefilter, before: 0, after: 0)
        pattern.run = run
        return pattern
    }

    static func p(_ expression: String, caseless: Bool = false, prefilter: String, prefilterCaseless: Bool? = nil,
                  before: Int, after: Int) -> PatternSet.Pattern {
        PatternSet.Pattern(expression, caseless: caseless, prefilter: prefilter, prefilterCaseless: prefilterCaseless, before: before, after: after)
    }

    /// The built-in detectors.
    public static let builtIn: [Detector] = [
        Detector(id: "EMAIL", category: .pii, patterns: [
            p(#"\b[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"#,
              prefilter: "@[A-Za-z0-9]", before: 80, after: 260).within(.init(0x30...0x39, 0x41...0x5A, 0x61...0x7A, and: "._%+-@")),
        ], priority: 60),
        Detector(id: "PHONE", category: .pii, patterns: [
            // North American forms: (555) 555-1234, 555-555-1234, 555.555.1234, +1-555-555-1234, 001-555-555-1234x12
            p(#"(?:\+1[ .\-]?|\b001[ .\-]?|\b1[ .\-])?(?:\([2-9][0-9]{2}\)[ .\-]?|\b[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}(?:\s?(?:x|ext\.?)\s?[0-9]{1,5})?\b"#)
              .gate(.init(minDigits: 10, shape: .threeThenFour(separators: .init(0x20...0x20, 0x2D...0x2E)), before: 2, after: 14)),
            // E.164: +4915123456789
            p(#"\+[1-9][0-9]{7,14}\b"#, prefilter: #"\+[1-9][0-9]{7}"#, before: 9, after: 8).within(.init(0x30...0x39, and: "+")).digits(8),
            // International with separators: +44 20 7946 0958, +49 (0)30 123456
            p(#"\+[1-9][0-9]{0,2}[ .\-]?(?:\(0\)[ .\-]?)?\(?[0-9]{1,4}\)?(?:[ .\-][0-9]{2,5}){1,4}\b"#,
              prefilter: #"\+[1-9]"#, before: 2, after: 44).within(.init(0x30...0x39, and: "+ .-()")).digits(7),
            // National forms with a trunk zero: 020 7946 0958, 07700 900123, 030-1234567
            p(#"\b0[1-9][0-9]{1,4}[ \-][0-9]{3,8}(?:[ \-][0-9]{3,4})?\b"#).gate(.init(minDigits: 7, shape: .trunkZero, before: 1, after: 1)),
        ], validator: .phone, isolated: true, priority: 20),
        Detector(id: "PHONE", category: .pii, patterns: [
            // Any national layout (69 849 69 22, (84) 244-757, 03.17.74.30.53,
            // 2980960824), but only where the text says it is a phone number.
            p(#"(?:\(\+?[0-9]{1,5}\)[ .\-]?|\b)[0-9]{2,11}(?:[ .\-][0-9]{2,8}){0,4}\b"#,
              // Found from its context words, which are rarer than digits.
              prefilter: #"(?:phone|tel|call|mobile|cell|fax|desk|contact|reach|sms|whatsapp|dial|office)"#, prefilterCaseless: true, before: 50, after: 80).digits(7),
        ], validator: .phone, contextWords: ["phone", "tel", "call", "mobile", "cell", "fax", "desk", "contact", "reach", "sms", "whatsapp", "dial"],
           contextWindow: 48, contextWordsAfter: ["office", "fax", "mobile", "cell", "phone"], contextWindowAfter: 12,
           isolated: true, priority: 19),
        Detector(id: "CREDIT_CARD", category: .pii, patterns: [
            p(#"\b[0-9](?:[ \-]?[0-9]){11,18}\b"#).gate(.init(minDigits: 12, shape: .chained(digits: 12), before: 1, after: 1)),
        ], validator: .creditCard, priority: 90),
        Detector(id: "IBAN", category: .pii, patterns: [
            p(#"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b"#).within(.init(0x30...0x39, 0x41...0x5A, and: " "))
              .gate(.init(minDigits: 2, shape: .iban, before: 3, after: 50)),
        ], validator: .iban, priority: 90),
        Detector(id: "US_SSN", category: .pii, patterns: [
            p(#"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"#).gate(.init(minDigits: 9, shape: .ssn(separators: .init(0x2D...0x2D)), before: 1, after: 1)),
            p(#"\b[0-9]{3} [0-9]{2} [0-9]{4}\b"#).gate(.init(minDigits: 9, shape: .ssn(separators: .init(0x20...0x20)), before: 1, after: 1)),
        ], validator: .usSSN, priority: 70),
        Detector(id: "US_SSN", category: .pii, patterns: [
            // Nine bare digits are an SSN only where the text says so: found from those words.
            p(#"\b[0-9]{9}\b"#, prefilter: #"(?:ssn|social sec|ss ?#)"#, prefilterCaseless: true, before: 10, after: 80).digits(9),
        ], validator: .usSSN, contextWords: ["ssn", "social security", "social sec", "ss#", "ss #"], priority: 70),
        Detector(id: "UK_NINO", category: .pii, patterns: [
            p(#"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b"#).gate(.init(minDigits: 6, shape: .nino, before: 4, after: 3)),
        ], validator: .ukNINO, priority: 70),
        Detector(id: "IP_ADDRESS", category: .pii, patterns: [
            p(#"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b"#).gate(.init(minDigits: 4, minDots: 3, shape: .dottedQuad, before: 1, after: 1)),
        ], validator: .ipv4, isolated: true, priority: 30),
        Detector(id: "IP_ADDRESS", category: .pii, patterns: [
            p(#"(?:\b[0-9A-Fa-f]{1,4}|::)(?::[0-9A-Fa-f]{0,4}){2,7}"#, prefilter: ":[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:", before: 45, after: 45).within(.init(0x30...0x3A, 0x41...0x46, 0x61...0x66)),
        ], validator: .ipv6, priority: 30),

        Detector(id: "AWS_ACCESS_KEY", category: .secret, patterns: [
            p(#"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b"#),
        ], priority: 100),
        Detector(id: "AWS_SECRET_KEY", category: .secret, patterns: [
            // A 40-character key, after "aws" or "secret" and a short gap,
            // and then a byte that cannot be part of it.
            p(#"(?:aws|secret)[A-Za-z0-9_\-. "':=]{0,40}[^A-Za-z0-9/+][A-Za-z0-9/+]{40}[^A-Za-z0-9/+]"#, caseless: true),
        ], validator: .awsSecret, span: .tail(40, dropping: 1), priority: 95),
        Detector(id: "GITHUB_TOKEN", category: .secret, patterns: [
            p(#"\bgh[pousr]_[A-Za-z0-9]{36,}\b"#, prefilter: #"gh[pousr]_[A-Za-z0-9]{36}"#, before: 40, after: 300).within(.word),
            p(#"\bgithub_pat_[A-Za-z0-9_]{22,}\b"#, prefilter: #"github_pat_[A-Za-z0-9_]{22}"#, before: 33, after: 300).within(.word),
        ], priority: 100),
        Detector(id: "GITLAB_TOKEN", category: .secret, patterns: [
            // Personal, pipeline-trigger, runner, deploy, and the other token kinds GitLab prefixes.
            p(#"\bgl(?:pat|ptt|rt|dt|soat|cbt|oas|imt|agent|ffct|ft)-[A-Za-z0-9_\-]{20,}"#,
              prefilter: #"gl(?:pat|ptt|rt|dt|soat|cbt|oas|imt|agent|ffct|ft)-[A-Za-z0-9_\-]{20}"#, before: 29, after: 300).within(.init(0x30...0x39, 0x41...0x5A, 0x61...0x7A, and: "_-")),
        ], priority: 100),
        Detector(id: "SLACK_TOKEN", category: .secret, patterns: [
            p(#"\b(?:xox[abposr]|xapp)-[A-Za-z0-9\-]{10,}"#, prefilter: #"(?:xox[abposr]|xapp)-[A-Za-z0-9\-]{10}"#, before: 15, after: 300).within(.init(0x30...0x39, 0x41...0x5A, 0x61...0x7A, and: "-")),
            p(#"https://hooks\.slack\.com/services/T[A-Za-z0-9_]{6,}/B[A-Za-z0-9_]{6,}/[A-Za-z0-9_]{16,}"#,
              prefilter: "https://hooks\\.slack\\.com/services/T", before: 35, after: 300).within(.init(0x30...0x39, 0x41...0x5A, 0x61...0x7A, and: "_:/.")),
        ], priority: 100),
        Detector(id: "STRIPE_KEY", category: .secret, patterns: [
            p(#"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b"#, prefilter: #"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16}"#, before: 24, after: 300).within(.word),
        ], priority: 100),
        Detector(id: "GOOGLE_API_KEY", category: .secret, patterns: [
            p(#"\bAIza[0-9A-Za-z_\-]{35}"#),
        ], priority: 100),
        Detector(id: "PRIVATE_KEY", category: .secret, patterns: [
            p(#"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"#),
        ], span: .pemBlock, priority: 100),
        Detector(id: "JWT", category: .secret, patterns: [
            // The whole run of base64url and dots around the payload's start, however long.
            p(#"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}"#, prefilter: #"[A-Za-z0-9_\-]{5}\.eyJ"#, run: .jwt),
        ], validator: .jwt, span: .jwt, priority: 100),
        Detector(id: "GENERIC_SECRET", category: .secret, patterns: [
            // A keyword (SECRET_KEY, api key, client_secret, REDIS_PASSWORD, ...), an
            // assignment, and a value of 16 or more characters that looks random.
            // The pattern reads the value's first 16; the span runs to its end.
            p(#"(?:api[_\-\s]?key|apikey|secret|token|passw(?:or)?d|pwd|auth[_\-]?key|access[_\-]?key|client[_\-]?secret|private[_\-]?key|credential)[A-Za-z0-9_\-]{0,16}["']?\s{0,2}[:=]\s{0,2}["']?[A-Za-z0-9_\-+/=.~!@#$%^&*()\[\]{}|<>?]{16}"#, caseless: true),
        ], validator: .entropy, span: .valueAfterAssignment, priority: 80),

        // MCP traffic signatures, for spotting MCP messages in other traffic.
        Detector(id: "MCP_METHOD", category: .signature, patterns: [
            p(#""method"\s{0,8}:\s{0,8}"(?:initialize|tools/call|tools/list|resources/read|resources/list|prompts/list|prompts/get|sampling/createMessage|elicitation/create|notifications/initialized|notifications/tools/list_changed|roots/list|completion/complete)""#),
        ], priority: 10),
        Detector(id: "MCP_PROTOCOL_VERSION", category: .signature, patterns: [
            p(#""protocolVersion"\s{0,8}:\s{0,8}"20(?:2[4-9]|[3-9][0-9])-[01][0-9]-[0-3][0-9]""#),
        ], priority: 10),
    ]
}
