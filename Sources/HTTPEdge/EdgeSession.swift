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

    /// Where a stream's events go: the HTTP response writing it, as an
    /// async sequence (Hummingbird's routes) or as callbacks (the fast
    /// lane, which writes from the event loop). Both are called with the
    /// session's lock held, so they only hand the event on. A stream ends
    /// with its final event, or with `finish` when it ends without one
    /// (detached, closed): never both.
    struct Sink: Sendable {
        var yield: @Sendable (Event) -> Void
        var finish: @Sendable () -> Void

        init(yield: @escaping @Sendable (Event) -> Void, finish: @escaping @Sendable () -> Void) {
            self.yield = yield
            self.finish = finish
        }

        init(_ continuation: AsyncStream<Event>.Continuation) {
            yield = { event in
                continuation.yield(event)
                if event.final { continuation.finish() }
            }
            finish = { continuation.finish() }
        }
    }

    /// One HTTP response writing a stream. A stream that is opened again
    /// (a second GET, a resume) gets a new attachment; the old writer's end
    /// must not detach the new one.
    struct Attachment {
        var token: Int
        var sink: Sink
    }

    struct State {
        var nextEventID = 1
        var nextStreamID = 1
        var nextToken = 1
        var live: [Int: Attachment] = [:]
        /// Request streams whose response has not been sent yet.
        var active: Set<Int> = []
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

    /// Events a client has not read yet, per stream; past this the oldest
    /// are dropped from the live stream (they stay in the resume buffer).
    var streamLimit: Int { max(bufferLimit, 64) * 4 }

    private func makeStream() -> (AsyncStream<Event>, AsyncStream<Event>.Continuation) {
        AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(streamLimit))
    }

    /// Opens the stream for one request and returns its id, the attachment
    /// token and its events.
    func openRequestStream(for requestID: JSON) -> (stream: Int, token: Int, events: AsyncStream<Event>) {
        let (events, continuation) = makeStream()
        let (stream, token) = openRequestStream(for: requestID, sink: Sink(continuation))
        return (stream, token, events)
    }

    /// The same with the events handed to `sink` as they come.
    func openRequestStream(for requestID: JSON, sink: Sink) -> (stream: Int, token: Int) {
        state.withLock { s -> (Int, Int) in
            let stream = s.nextStreamID
            s.nextStreamID += 1
            let token = attach(sink, to: stream, in: &s)
            s.requestStreams[requestID] = stream
            s.active.insert(stream)
            return (stream, token)
        }
    }

    /// Makes `sink` the stream's writer, ending the one it replaces.
    private func attach(_ sink: Sink, to stream: Int, in s: inout State) -> Int {
        let token = s.nextToken
        s.nextToken += 1
        s.live.updateValue(Attachment(token: token, sink: sink), forKey: stream)?.sink.finish()
        return token
    }

    /// Sends the final response of a request on its own stream and ends it.
    /// (A client that reuses an id while the first request runs still gets
    /// each response on the right stream.)
    func finish(_ response: JSONRPCMessage, stream: Int) {
        state.withLock { s in
            if let id = response.id, s.requestStreams[id] == stream { s.requestStreams[id] = nil }
            emit(response, on: stream, final: true, in: &s)
            s.live.removeValue(forKey: stream)  // the final event ended its writer
            s.streaming.remove(stream)
            s.active.remove(stream)
        }
    }

    /// The client went away from a stream: keep buffering for a resume.
    /// Only the writer holding `token` is detached.
    func detach(_ stream: Int, token: Int) {
        state.withLock { s in
            guard let attachment = s.live[stream], attachment.token == token else { return }
            attachment.sink.finish()
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
        if let attachment = s.live[stream] {
            attachment.sink.yield(event)
        } else if stream == Self.standalone {
            s.undelivered.append(event)
            if s.undelivered.count > max(bufferLimit, 16) { s.undelivered.removeFirst() }
        }
    }

    /// Opens the session's own stream (GET, or legacy SSE), replacing any
    /// earlier one, and first delivers what was waiting for it.
    func openStandalone() -> (token: Int, events: AsyncStream<Event>) {
        let (events, continuation) = makeStream()
        let token = state.withLock { s -> Int in
            for event in s.undelivered { continuation.yield(event) }
            s.undelivered = []
            return attach(Sink(continuation), to: Self.standalone, in: &s)
        }
        return (token, events)
    }

    enum ResumeError: Error { case unknownEvent }

    /// Resumes the stream that carried event `lastEventID`: replays the
    /// events after it, then stays live if that stream still is.
    func resume(after lastEventID: Int) throws -> (stream: Int, token: Int, events: AsyncStream<Event>) {
        let (events, continuation) = makeStream()
        let (stream, token) = try state.withLock { s -> (Int, Int) in
            guard let stream = s.buffer.first(where: { $0.event.id == lastEventID })?.stream else { throw ResumeError.unknownEvent }
            for entry in s.buffer where entry.stream == stream && entry.event.id > lastEventID {
                continuation.yield(entry.event)
            }
            if stream == Self.standalone {
                s.undelivered = []
                return (stream, attach(Sink(continuation), to: stream, in: &s))
            }
            guard s.active.contains(stream) else {
                // Its response was sent (and replayed above, if still buffered).
                continuation.finish()
                return (stream, 0)
            }
            return (stream, attach(Sink(continuation), to: stream, in: &s))
        }
        return (stream, token, events)
    }

    /// Writes a keep-alive comment on every open stream.
    /// Whether the client holds the session's own stream open.
    var isListening: Bool { state.withLock { $0.live[Self.standalone] != nil } }

    /// Only streams already sending events get one: a request still waiting
    /// for its first event must stay free to answer as plain JSON.
    func keepAlive() {
        state.withLock { s in
            for (stream, attachment) in s.live where stream == Self.standalone || s.streaming.contains(stream) {
                attachment.sink.yield(Event(id: 0, message: .notification(method: ""), final: false, keepAlive: true))
            }
        }
    }

    /// Ends the streams that are sending events (the session's own, and
    /// requests answering as SSE), as the portal starts to shut down;
    /// requests still waiting for a plain answer get it.
    func closeStreamingStreams() {
        state.withLock { s in
            for (stream, attachment) in s.live where stream == Self.standalone || s.streaming.contains(stream) {
                attachment.sink.finish()
                s.live[stream] = nil
            }
        }
    }

    func closeStreams() {
        state.withLock { s in
            for attachment in s.live.values { attachment.sink.finish() }
            s.live = [:]
        }
    }
}
