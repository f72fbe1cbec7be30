import NIOCore

/// The head of a pipeline: bytes written here go straight to the socket,
/// past anything behind it. The pool writes its requests this way (its
/// pipeline has no HTTP codec), and the portal's fast lane its whole JSON
/// answers, past NIO's response encoder (one buffer, no response head to
/// build and encode).
public final class HeadWriter: ChannelOutboundHandler, @unchecked Sendable {
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer
    /// Touched on the channel's event loop only.
    private var context: ChannelHandlerContext?

    public init() {}

    public func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    public func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Writes and flushes `bytes`; false when the handler has left the pipeline.
    @discardableResult
    public func write(_ bytes: ByteBuffer, promise: EventLoopPromise<Void>?) -> Bool {
        guard let context else { return false }
        context.writeAndFlush(wrapOutboundOut(bytes), promise: promise)
        return true
    }
}
