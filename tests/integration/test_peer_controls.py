"""Controls: the same checks made directly against the fastmcp peer, without
the portal. When a portal test fails and its control passes, the fault is on
the portal's side."""

from __future__ import annotations

import anyio
import mcp_types as types

from harness import mcp_session, raw_session, text_of, unique


async def test_peer_logs_on_the_calls_stream(http_peer):
    word = unique("direct-log")
    async with raw_session(http_peer.url) as raw:
        with anyio.fail_after(20):
            response, before = await raw.request("tools/call", {"name": "log", "arguments": {"message": word}})
    assert "result" in response, response
    logs = [m for m in before if m.get("method") == "notifications/message"]
    assert {m["params"]["level"] for m in logs} == {"info", "warning"}, before


async def test_peer_announces_added_tools(make_peer):
    peer = make_peer()
    changed = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with mcp_session(peer.url, message_handler=on_message) as session:
        with anyio.fail_after(20):
            assert text_of(await session.call_tool("add_tool", {"name": "runtime_added"})) == "added runtime_added"
            await changed.wait()
            assert "runtime_added" in {t.name for t in (await session.list_tools()).tools}
