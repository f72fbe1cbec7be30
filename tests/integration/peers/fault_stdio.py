"""Misbehaving stdio MCP servers, written by hand (no SDK) for full control.

Usage: python fault_stdio.py MODE
  garbage  answers correctly, but surrounds every answer with lines that are
           not JSON-RPC (plain text, broken JSON, JSON that is not a message,
           binary bytes, a response to an id nobody asked for)
  hang     tool `hang` never answers; tool `quick` answers at once
  crash    tool `die` kills the process in the middle of the call (after
           writing half a response); tool `alive` answers with the pid
"""

from __future__ import annotations

import json
import os
import sys

MODE = sys.argv[1]
OUT = sys.stdout.buffer

READ_ONLY = {"readOnlyHint": True}
TOOLS = {
    "garbage": [("ping", "Answers pong."), ("env", "Returns $FAULT_TAG.")],
    "hang": [("hang", "Never answers."), ("quick", "Answers at once.")],
    "crash": [("die", "Exits in the middle of the call."), ("alive", "Answers with the pid.")],
}[MODE]


def write(data: bytes) -> None:
    OUT.write(data)
    OUT.flush()


def send(message: dict) -> None:
    write(json.dumps(message).encode() + b"\n")


def garbage() -> None:
    write(b"this line is not JSON at all\n")
    write(b'{"jsonrpc": "2.0", "id": \n')
    write(b'{"hello": "world"}\n')
    write(b"\x00\x01\x02\xff\xfe binary junk\n")
    write(b"[1, 2, 3]\n")
    write(b"\n   \n")
    write(b'{"jsonrpc":"2.0","id":987654,"result":{"unsolicited":true}}\n')
    write(b'{"jsonrpc":"2.0","method":"notifications/unknown_thing","params":{}}\n')


def result(message_id, value: dict) -> None:
    send({"jsonrpc": "2.0", "id": message_id, "result": value})


def text(value: str) -> dict:
    return {"content": [{"type": "text", "text": value}], "isError": False}


def main() -> None:
    if MODE == "garbage":
        write(b"starting up... (not JSON)\n")
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        message = json.loads(line)
        method, message_id = message.get("method"), message.get("id")
        if MODE == "garbage":
            garbage()
        if message_id is None or method is None:
            continue  # notifications and responses
        if method == "initialize":
            result(message_id, {
                "protocolVersion": message["params"].get("protocolVersion", "2025-11-25"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": f"fault-{MODE}", "version": "1.0"},
            })
        elif method == "ping":
            result(message_id, {})
        elif method == "tools/list":
            result(message_id, {"tools": [
                {"name": name, "description": description, "annotations": READ_ONLY,
                 "inputSchema": {"type": "object", "properties": {}}}
                for name, description in TOOLS
            ]})
        elif method == "tools/call":
            name = message["params"]["name"]
            if name == "ping":
                result(message_id, text("pong"))
            elif name == "env":
                result(message_id, text(os.environ.get("FAULT_TAG", "<unset>")))
            elif name == "hang":
                continue  # never answer
            elif name == "quick":
                result(message_id, text("quick answer"))
            elif name == "die":
                write(b'{"jsonrpc":"2.0","id":' + json.dumps(message_id).encode())
                os._exit(3)
            elif name == "alive":
                result(message_id, text(str(os.getpid())))
            else:
                send({"jsonrpc": "2.0", "id": message_id, "error": {"code": -32602, "message": f"Unknown tool: {name}"}})
        else:
            send({"jsonrpc": "2.0", "id": message_id, "error": {"code": -32601, "message": f"Method not found: {method}"}})


if __name__ == "__main__":
    main()
