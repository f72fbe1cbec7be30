import Gateway
import MCPWire
import NIOCore
import Synchronization

/// The transport side of one client session: which SSE stream each message
/// goes on, event ids, and a bounded buffer of sent events so a client that
/// lost a stream can resume it with `Last-Event-ID`. Its state sits behind a
/// lock held for a moment, so the request path never hops to another executor.
final class EdgeSession: SessionOutbound {
    /// One event on one stream; `final` ends a request's stream.
    struct Event: Sendable {
        var id: Int
        var message: JSONRPCMessage
        var final: Bool
        /// A comment line that keeps idle streams (and the proxies on the way) alive,
        /// and shows when a client has gone.
        var keepAlive = false
        var bytes: ByteBuffer {
            if keepAlive { return ByteBuffer(string: ": keepalive\n\n") }
            return ByteBuffer(bytes: SSEEvent(id: String(id), event: "message", data: String(decoding: message.serialized(), as: UTF8.self)).encoded())
        }
    }

    /// Stream 0 is the session's own stream (GET, or the legacy SSE stream).
    static let standalone = 0

    let id: String
    /// Legacy HTTP+SSE sessions send everything, responses too, on stream 0.
    let legacy: Bool
    let bufferLimit: Int
    private let state = Mutex(State())

    struct State {
        var nextEventID = 1
        var nextStreamID = 1
        var live: [Int: AsyncStream<Event>.Continuation] = [:]
        var requestStreams: [JSON: Int] = [:]
        /// Request streams that sent something before their response (so they
        /// are SSE streams whose events are kept for resumption).
        var streaming: Set<Int> = []
        var buffer: [(stream: Int, event: Event)] = []
        var undelivered: [Event] = []
    }

    init(id: String, legacy: Bool, bufferLimit: Int) {
        self.id = id
        self.legacy = legacy
        self.bufferLimit = bufferLimit
    }

    /// Opens the stream for one request and returns its events.
    func openRequestStream(for requestID: JSON) -> (Int, AsyncStream<Event>) {
        let (events, continuation) = AsyncStream<Event>.makeStream()
        let stream = state.withLock { s -> Int in
            let stream = s.nextStreamID
            s.nextStreamID += 1
            s.live[stream] = continuation
            s.requestStreams[requestID] = stream
            return stream
        }
        return (stream, events)
    }

    /// Sends the final response of a request on its own stream and ends it.
    /// (A client that reuses an id while the first request runs still gets
    /// each response on the right stream.)
    func finish(_ response: JSONRPCMessage, stream: Int) {
        state.withLock { s in
            if let id = response.id, s.requestStreams[id] == stream { s.requestStreams[id] = nil }
            emit(response, on: stream, final: true, in: &s)
            s.live.removeValue(forKey: stream)?.finish()
            s.streaming.remove(stream)
        }
    }

    /// The client went away from a stream: keep buffering for a resume.
    func detach(_ stream: Int) {
        state.withLock { s in
            if stream == Self.standalone { s.live[stream]?.finish() }
            s.live[stream] = nil
        }
    }

    func send(_ message: JSONRPCMessage, relatedTo requestID: JSON?) async {
        state.withLock { s in
            if !legacy, let requestID, let stream = s.requestStreams[requestID] {
                emit(message, on: stream, final: false, in: &s)
            } else {
                emit(message, on: Self.standalone, final: false, in: &s)
            }
        }
    }

    private func emit(_ message: JSONRPCMessage, on stream: Int, final: Bool, in s: inout State) {
        let event = Event(id: s.nextEventID, message: message, final: final)
        s.nextEventID += 1
        // A response that comes first is answered as plain JSON: nothing to resume.
        let plainJSON = final && stream != Self.standalone && !s.streaming.contains(stream)
        if !final, stream != Self.standalone { s.streaming.insert(stream) }
        if bufferLimit > 0, !plainJSON {
            s.buffer.append((stream, event))
            // Trimmed in steps, so appending stays O(1) on average.
            if s.buffer.count >= 2 * bufferLimit { s.buffer.removeFirst(s.buffer.count - bufferLimit) }
        }
        if let continuation = s.live[stream] {
            continuation.yield(event)
        } else if stream == Self.standalone {
            s.undelivered.append(event)
            if s.undelivered.count > max(bufferLimit, 16) { s.undelivered.removeFirst() }
        }
    }

    /// Opens the session's own stream (GET, or legacy SSE), replacing any
    /// earlier one, and first delivers what was waiting for it.
    func openStandalone() -> AsyncStream<Event> {
        let (events, continuation) = AsyncStream<Event>.makeStream()
        state.withLock { s in
            s.live.removeValue(forKey: Self.standalone)?.finish()
            for event in s.undelivered { continuation.yield(event) }
            s.undelivered = []
            s.live[Self.standalone] = continuation
        }
        return events
    }

    enum ResumeError: Error { case unknownEvent }

    /// Resumes the stream that carried event `lastEventID`: replays the
    /// events after it, then stays live if that stream still is.
    func resume(after lastEventID: Int) throws -> AsyncStream<Event> {
        let (events, continuation) = AsyncStream<Event>.makeStream()
        try state.withLock { s in
            guard let stream = s.buffer.first(where: { $0.event.id == lastEventID })?.stream else { throw ResumeError.unknownEvent }
            for entry in s.buffer where entry.stream == stream && entry.event.id > lastEventID {
                continuation.yield(entry.event)
            }
            if stream == Self.standalone {
                s.live.removeValue(forKey: stream)?.finish()
                s.live[stream] = continuation
                s.undelivered = []
            } else if s.buffer.contains(where: { $0.stream == stream && $0.event.final }) {
                continuation.finish()
            } else {
                s.live[stream] = continuation
            }
        }
        return events
    }

    /// Writes a keep-alive comment on every open stream.
    func keepAlive() {
        state.withLock { s in
            for continuation in s.live.values {
                continuation.yield(Event(id: 0, message: .notification(method: ""), final: false, keepAlive: true))
            }
        }
    }

    func closeStreams() {
        state.withLock { s in
            for continuation in s.live.values { continuation.finish() }
            s.live = [:]
        }
    }
}
