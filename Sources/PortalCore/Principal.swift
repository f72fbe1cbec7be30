/// Who is calling. Until identity lands every caller is anonymous on loopback.
public struct Principal: Sendable, Hashable {
    public var subject: String
    public var groups: [String]
    public var clientAddress: String?

    public init(subject: String, groups: [String] = [], clientAddress: String? = nil) {
        self.subject = subject
        self.groups = groups
        self.clientAddress = clientAddress
    }

    public static let anonymous = Principal(subject: "anonymous")
}
