import Foundation
import Gateway
import PortalCore
import Synchronization

/// Open sessions by id. Ids are 32 random bytes from the system's secure
/// generator, hex encoded.
final class SessionRegistry: Sendable {
    struct Entry: Sendable {
        var edge: EdgeSession
        var portal: PortalSession
        var lastSeen: ContinuousClock.Instant
    }

    private let sessions = Mutex<[String: Entry]>([:])
    let limit: Int

    init(limit: Int) { self.limit = limit }

    static func newID() -> String {
        Hex.random(32)
    }

    /// Adds a session, or returns false when the portal is at its session limit.
    func add(_ id: String, edge: EdgeSession, portal: PortalSession) -> Bool {
        sessions.withLock { sessions in
            guard sessions.count < limit else { return false }
            sessions[id] = Entry(edge: edge, portal: portal, lastSeen: .now)
            return true
        }
    }

    /// Looks a session up and marks it used.
    func touch(_ id: String) -> Entry? {
        sessions.withLock { sessions in
            // One lookup (a session id is 64 bytes to hash), on every request.
            guard let index = sessions.index(forKey: id) else { return nil }
            sessions.values[index].lastSeen = .now
            return sessions.values[index]
        }
    }

    func remove(_ id: String) -> Entry? { sessions.withLock { $0.removeValue(forKey: id) } }

    var count: Int { sessions.withLock { $0.count } }

    var all: [Entry] { sessions.withLock { Array($0.values) } }

    /// Removes and returns sessions idle for longer than `idle`.
    func expire(idle: Duration) -> [Entry] {
        let now = ContinuousClock.now
        return sessions.withLock { sessions in
            let stale = sessions.filter { now - $0.value.lastSeen > idle }
            for key in stale.keys { sessions[key] = nil }
            return Array(stale.values)
        }
    }

    func removeAll() -> [Entry] {
        sessions.withLock { sessions in
            defer { sessions = [:] }
            return Array(sessions.values)
        }
    }
}
