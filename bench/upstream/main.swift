// A deliberately fast MCP server over Streamable HTTP (plain JSON answers),
// used as the one upstream that every benchmark path talks to.
// Usage: mcp-bench-upstream PORT
import Foundation
import MCPWire
import NIOCore
import NIOHTTP1
import NIOPosix

final class Handler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    var body: ByteBuffer?
    var keepAlive = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            body = context.channel.allocator.buffer(capacity: 512)
        case .body(var chunk):
            body?.writeBuffer(&chunk)
        case .end:
            let bytes = body.map { Array($0.readableBytesView) } ?? []
            respond(context: context, to: bytes)
        }
    }

    func respond(context: ChannelHandlerContext, to bytes: [UInt8]) {
        var headers = HTTPHeaders()
        var status = HTTPResponseStatus.ok
        var payload: [UInt8] = []
        if case .single(let message)? = try? JSONRPCMessage.parse(bytes) {
            switch message.method {
            case "initialize":
                headers.add(name: "Mcp-Session-Id", value: "bench-session")
                payload = JSONRPCMessage.response(id: message.id ?? .null, result: [
                    "protocolVersion": message.params?["protocolVersion"] ?? "2025-11-25",
                    "capabilities": ["tools": [:]], "serverInfo": ["name": "bench", "version": "1"],
                ]).serialized()
            case "tools/list":
                payload = JSONRPCMessage.response(id: message.id ?? .null, result: ["tools": [[
                    "name": "echo", "description": "Echoes its text.",
                    "inputSchema": ["type": "object", "properties": ["text": ["type": "string"]]],
                    "annotations": ["readOnlyHint": true],
                ]]]).serialized()
            case "tools/call":
                let text = message.params?["arguments"]?["text"] ?? ""
                payload = JSONRPCMessage.response(id: message.id ?? .null, result: [
                    "content": [["type": "text", "text": text]],
                ]).serialized()
            case .some where message.kind == .request:
                payload = JSONRPCMessage.response(id: message.id ?? .null, result: [:]).serialized()
            default:
                status = .accepted
            }
        } else {
            status = .badRequest
        }
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(payload.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !payload.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: payload)))), promise: nil)
        }
        let keepAlive = self.keepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}

let port = Int(CommandLine.arguments.dropFirst().first ?? "9100") ?? 9100
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 512)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelInitializer { channel in
        channel.pipeline.configureHTTPServerPipeline().flatMap { channel.pipeline.addHandler(Handler()) }
    }
    .bind(host: "127.0.0.1", port: port).wait()
FileHandle.standardOutput.write(Data("bench upstream listening on \(channel.localAddress!)\n".utf8))
try channel.closeFuture.wait()
