/// A JSON value that keeps what a proxy must not change: object key order and
/// the exact text of numbers (`1.0` stays `1.0`, `12345678901234567890` stays
/// as written). Strings are decoded; re-encoding escapes only what JSON
/// requires, which is equivalent JSON.
///
/// ```swift
/// let value = try JSON.parse(#"{"a":1.0,"b":[true,null]}"#)
/// value["a"]            // .number("1.0")
/// value.serialized()    // {"a":1.0,"b":[true,null]}
/// ```
public enum JSON: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number exactly as it was written (already checked to be valid JSON).
    case number(String)
    case string(String)
    case array([JSON])
    case object(JSONObject)
}

/// A JSON object with its keys in their original order.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var entries: [(key: String, value: JSON)]

    public init() { entries = [] }
    public init(_ entries: [(key: String, value: JSON)]) { self.entries = entries }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        entries = elements.map { (key: $0.0, value: $0.1) }
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }

    /// Reads a key; setting a key keeps its position, or appends it; setting
    /// `nil` removes it.
    public subscript(key: String) -> JSON? {
        get {
            for entry in entries where entry.key == key { return entry.value }
            return nil
        }
        set {
            if let index = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                entries.append((key: key, value: newValue))
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: JSON)]> { entries.makeIterator() }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(entries.count)
        for entry in entries {
            hasher.combine(entry.key)
            hasher.combine(entry.value)
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSON {
    public static func int(_ value: Int) -> JSON { .number(String(value)) }
    public static func double(_ value: Double) -> JSON {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return .number(String(Int(value))) }
        return .number(value.isFinite ? String(value) : "0")
    }

    public subscript(key: String) -> JSON? {
        get { if case .object(let object) = self { return object[key] } else { return nil } }
        set {
            guard case .object(var object) = self else { return }
            object[key] = newValue
            self = .object(object)
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a } else { return nil } }
    public var intValue: Int? {
        if case .number(let text) = self {
            if let i = Int(text) { return i }
            if let d = Double(text), d == d.rounded(), abs(d) < 9e15 { return Int(d) }
        }
        return nil
    }
    public var doubleValue: Double? { if case .number(let text) = self { return Double(text) } else { return nil } }
    public var isNull: Bool { if case .null = self { return true } else { return false } }
}
