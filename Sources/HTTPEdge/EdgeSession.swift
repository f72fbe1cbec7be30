import Gateway
import MCPWire
import NIOCore

/// The transport side of one client session: which SSE stream each message
/// goes on, event ids, and a bounded buffer of sent events so a client that
/// lost a stream can resume it with `Last-Event-ID`.
actor EdgeSession: SessionOutbound {
    /// One event on one stream; `final` ends a request's stream.
    struct Event: Sendable {
        var id: Int
        var message: JSONRPCMessage
        var final: Bool
        var bytes: ByteBuffer {
            ByteBuffer(bytes: SSEEvent(id: String(id), event: "message", data: String(decoding: message.serialized(), as: UTF8.self)).encoded())
        }
    }

    /// Stream 0 is the session's own stream (GET, or the legacy SSE stream).
    static let standalone = 0

    let id: String
    /// Legacy HTTP+SSE sessions send everything, responses too, on stream 0.
    let legacy: Bool
    let bufferLimit: Int
    private var nextEventID = 1
    private var nextStreamID = 1
    private var live: [Int: AsyncStream<Event>.Continuation] = [:]
    /// Request streams that have sent something before their response (so
    /// they are SSE streams whose events are kept for resumption).
    private var streaming: Set<Int> = []
    private var requestStreams: [JSON: Int] = [:]
    private var buffer: [(stream: Int, event: Event)] = []
    private var undelivered: [Event] = []

    init(id: String, legacy: Bool, bufferLimit: Int) {
        self.id = id
        self.legacy = legacy
        self.bufferLimit = bufferLimit
    }

    /// Opens the stream for one request and returns its events.
    func openRequestStream(for requestID: JSON) -> (Int, AsyncStream<Event>) {
        let stream = nextStreamID
        nextStreamID += 1
        let (events, continuation) = AsyncStream<Event>.makeStream()
        live[stream] = continuation
        requestStreams[requestID] = stream
        return (stream, events)
    }

    /// Sends the final response of a request on its own stream and ends it.
    /// (A client that reuses an id while the first request runs still gets
    /// each response on the right stream.)
    func finish(_ response: JSONRPCMessage, stream: Int) {
        if let id = response.id, requestStreams[id] == stream { requestStreams[id] = nil }
        emit(response, on: stream, final: true)
        live.removeValue(forKey: stream)?.finish()
        streaming.remove(stream)
    }

    /// The client went away from a stream: keep buffering for a resume.
    func detach(_ stream: Int) {
        if stream == Self.standalone { live[stream]?.finish() }
        live[stream] = nil
    }

    nonisolated func send(_ message: JSONRPCMessage, relatedTo requestID: JSON?) async {
        await route(message, relatedTo: requestID)
    }

    private func route(_ message: JSONRPCMessage, relatedTo requestID: JSON?) {
        if !legacy, let requestID, let stream = requestStreams[requestID] {
            emit(message, on: stream, final: false)
        } else {
            emit(message, on: Self.standalone, final: false)
        }
    }

    private func emit(_ message: JSONRPCMessage, on stream: Int, final: Bool) {
        let event = Event(id: nextEventID, message: message, final: final)
        nextEventID += 1
        // A response that comes first is answered as plain JSON: nothing to resume.
        let plainJSON = final && stream != Self.standalone && !streaming.contains(stream)
        if !final, stream != Self.standalone { streaming.insert(stream) }
        if bufferLimit > 0, !plainJSON {
            buffer.append((stream, event))
            // Trimmed in steps, so appending stays O(1) on average.
            if buffer.count >= 2 * bufferLimit { buffer.removeFirst(buffer.count - bufferLimit) }
        }
        if let continuation = live[stream] {
            continuation.yield(event)
        } else if stream == Self.standalone {
            undelivered.append(event)
            if undelivered.count > max(bufferLimit, 16) { undelivered.removeFirst() }
        }
    }

    /// Opens the session's own stream (GET, or legacy SSE), replacing any
    /// earlier one, and first delivers what was waiting for it.
    func openStandalone() -> AsyncStream<Event> {
        live.removeValue(forKey: Self.standalone)?.finish()
        let (events, continuation) = AsyncStream<Event>.makeStream()
        for event in undelivered { continuation.yield(event) }
        undelivered = []
        live[Self.standalone] = continuation
        return events
    }

    enum ResumeError: Error { case unknownEvent }

    /// Resumes the stream that carried event `lastEventID`: replays the
    /// events after it, then stays live if that stream still is.
    func resume(after lastEventID: Int) throws -> AsyncStream<Event> {
        guard let stream = buffer.first(where: { $0.event.id == lastEventID })?.stream else { throw ResumeError.unknownEvent }
        let (events, continuation) = AsyncStream<Event>.makeStream()
        for entry in buffer where entry.stream == stream && entry.event.id > lastEventID {
            continuation.yield(entry.event)
        }
        if stream == Self.standalone {
            live.removeValue(forKey: stream)?.finish()
            live[stream] = continuation
            undelivered = []
        } else if buffer.contains(where: { $0.stream == stream && $0.event.final }) {
            continuation.finish()
        } else {
            live[stream] = continuation
        }
        return events
    }

    func closeStreams() {
        for continuation in live.values { continuation.finish() }
        live = [:]
    }
}
