import Foundation

/// One audited event: a session opening or closing, a listing, a call, a
/// pinning change.
public struct AuditEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case sessionOpen = "session.open"
        case sessionClose = "session.close"
        case list = "list"
        case call = "call"
        case read = "read"
        case prompt = "prompt"
        case pinChanged = "pin.changed"
        case pinApproved = "pin.approved"
        /// A Code Mode execution (`portal_codemode_search` or `_execute`).
        case execution = "execution"
        /// A DLP rule fired: rule, detectors, counts and paths in `detail`.
        case dlp = "dlp"
    }

    public enum Outcome: String, Sendable, CaseIterable {
        case ok, error, denied, held
    }

    public var time: Date
    public var kind: Kind
    public var portal: String
    public var sessionID: String?
    public var principal: String
    public var server: String?
    public var tool: String?
    public var method: String?
    public var outcome: Outcome
    public var error: String?
    public var durationMicros: Int64 = 0
    public var argumentBytes: Int = 0
    /// SHA-256 (hex) of the arguments' JSON text: lets an auditor match calls
    /// without the portal storing what was sent.
    public var argumentHash: String?
    public var resultBytes: Int = 0
    public var detail: String?
    /// The Code Mode execution that made this call, or the execution itself.
    public var executionID: String?

    public init(
        time: Date = Date(), kind: Kind, portal: String, sessionID: String? = nil, principal: String,
        server: String? = nil, tool: String? = nil, method: String? = nil, outcome: Outcome, error: String? = nil
    ) {
        self.time = time
        self.kind = kind
        self.portal = portal
        self.sessionID = sessionID
        self.principal = principal
        self.server = server
        self.tool = tool
        self.method = method
        self.outcome = outcome
        self.error = error
    }
}

/// Filters for `audit query`.
public struct AuditQuery: Sendable {
    public var since: Date?
    public var until: Date?
    public var portal: String?
    public var server: String?
    public var tool: String?
    public var outcome: AuditEvent.Outcome?
    public var kind: AuditEvent.Kind?
    public var executionID: String?
    public var limit = 100
    /// Only rows after this one (for `audit tail`).
    public var afterID: Int64?

    public init() {}
}

public struct StoredAuditEvent: Sendable {
    public var id: Int64
    public var event: AuditEvent
    public init(id: Int64, event: AuditEvent) {
        self.id = id
        self.event = event
    }
}

/// Where audit records go. `record` returns once the record is durable; a
/// throw means the caller must fail closed.
public protocol AuditStore: Sendable {
    func record(_ event: AuditEvent) async throws
    /// The same, for callers on an event loop: `completion` runs once the
    /// record is durable (nil) or could not be written (the error), on a
    /// thread of the store's choosing.
    func record(_ event: AuditEvent, completion: @escaping @Sendable ((any Error)?) -> Void)
    func query(_ query: AuditQuery) async throws -> [StoredAuditEvent]
}

extension AuditStore {
    public func record(_ event: AuditEvent, completion: @escaping @Sendable ((any Error)?) -> Void) {
        Task {
            do {
                try await record(event)
                completion(nil)
            } catch {
                completion(error)
            }
        }
    }
}

/// A pinned tool definition.
public struct ToolPin: Sendable, Equatable {
    public enum State: String, Sendable { case approved, pending }
    public var server: String
    public var tool: String
    public var hash: String
    public var state: State
    public var definition: String
    public init(server: String, tool: String, hash: String, state: State, definition: String) {
        self.server = server
        self.tool = tool
        self.hash = hash
        self.state = state
        self.definition = definition
    }
}

/// Where tool pins live. The approved pin and at most one pending change per tool.
public protocol PinStore: Sendable {
    func pins(server: String) async throws -> [ToolPin]
    func allPins() async throws -> [ToolPin]
    func save(_ pin: ToolPin) async throws
    /// Makes the pending definition of a tool the approved one. Returns false if none was pending.
    func approve(server: String, tool: String) async throws -> Bool
}
