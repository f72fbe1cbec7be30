"""Upstreams that misbehave: garbage on stdout, hanging calls, a process that
dies mid-call, an HTTP peer that goes away. The portal answers with JSON-RPC
errors for that server only, and reconnects by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from harness import (PortalProcess, fault_server, list_servers, mcp_session, text_of, time_server,
                     unique, wait_until)

CALL_TIMEOUT = 2


@pytest.fixture(scope="module")
def fault_portal(tmp_path_factory) -> Iterator[PortalProcess]:
    servers = [
        fault_server("garbage", "garbage", env={"FAULT_TAG": "tagged"}),
        fault_server("hang", "hang"),
        fault_server("crash", "crash"),
        time_server(),
    ]
    portal = PortalProcess(tmp_path_factory.mktemp("fault-portal"), servers,
                           [{"id": "default", "servers": [s["id"] for s in servers]}],
                           limits={"call_timeout_seconds": CALL_TIMEOUT}).start()
    try:
        yield portal
    finally:
        portal.stop()


async def test_garbage_writing_server_still_works(fault_portal):
    async with mcp_session(fault_portal.url()) as session:
        with anyio.fail_after(20):
            names = {t.name for t in (await session.list_tools()).tools}
            assert {"garbage_ping", "garbage_env"} <= names
            assert (await list_servers(session))["garbage"]["status"] == "ready"
            for _ in range(3):
                assert text_of(await session.call_tool("garbage_ping", {})) == "pong"
            # The server's env from the configuration reached it.
            assert text_of(await session.call_tool("garbage_env", {})) == "tagged"
            assert not (await session.call_tool("time_get_current_time", {"timezone": "UTC"})).is_error
    assert fault_portal.log.contains("upstream wrote a line that is not JSON-RPC")


async def test_hanging_server_times_out_while_others_work(fault_portal):
    async with mcp_session(fault_portal.url()) as session:
        outcome: dict = {}

        async def hang() -> None:
            started = time.monotonic()
            try:
                await session.call_tool("hang_hang", {})
                outcome["result"] = "answered"
            except MCPError as error:
                outcome["error"] = error
            outcome["elapsed"] = time.monotonic() - started

        with anyio.fail_after(CALL_TIMEOUT + 15):
            async with anyio.create_task_group() as group:
                group.start_soon(hang)
                # While the hanging call waits, another server answers in the same session.
                started = time.monotonic()
                current = await session.call_tool("time_get_current_time", {"timezone": "UTC"})
                assert not current.is_error
                assert "elapsed" not in outcome, "the other server's call waited for the hanging call"
                assert time.monotonic() - started < CALL_TIMEOUT
                # And the hanging server's other tool too.
                assert text_of(await session.call_tool("hang_quick", {})) == "quick answer"
        assert "error" in outcome, f"the hanging call should fail with a JSON-RPC error, got {outcome}"
        assert CALL_TIMEOUT - 0.5 <= outcome["elapsed"] < CALL_TIMEOUT + 5, outcome
        assert "did not answer" in outcome["error"].message
        with anyio.fail_after(20):
            assert text_of(await session.call_tool("hang_quick", {})) == "quick answer"
    records = fault_portal.audit(server="hang", tool="hang")
    assert records and records[0]["outcome"] == "error", records


async def test_server_killed_mid_call_errors_then_comes_back(fault_portal):
    async with mcp_session(fault_portal.url()) as session:
        with anyio.fail_after(20):
            pid_before = text_of(await session.call_tool("crash_alive", {}))
            started = time.monotonic()
            with pytest.raises(MCPError) as caught:
                await session.call_tool("crash_die", {})
            # Fails when the process exits, not after the call timeout.
            assert time.monotonic() - started < CALL_TIMEOUT, caught.value
            # Others keep working meanwhile.
            assert not (await session.call_tool("time_get_current_time", {"timezone": "UTC"})).is_error

        async def ready_again():
            return (await list_servers(session))["crash"]["status"] == "ready"

        await wait_until(ready_again, 15, "the crashed server to be ready again")
        with anyio.fail_after(20):
            pid_after = text_of(await session.call_tool("crash_alive", {}))
        assert pid_after != pid_before, "the server should have been started again"
    assert fault_portal.log.contains("upstream unavailable")


async def test_http_peer_down_errors_fast_and_reconnects(make_peer, make_portal):
    peer = make_peer()
    portal = make_portal([{"id": "peer", "url": peer.url}, {"id": "notes", "builtin": "notes"}],
                         limits={"call_timeout_seconds": CALL_TIMEOUT})
    async with mcp_session(portal.url()) as session:
        with anyio.fail_after(20):
            assert text_of(await session.call_tool("peer_echo", {"text": "up"})) == "up"
        peer.stop()
        # The peer is gone: its call fails with a JSON-RPC error within the call timeout.
        started = time.monotonic()
        with anyio.fail_after(CALL_TIMEOUT + 10, reason=(
                f"a call to the stopped peer got no answer within call_timeout_seconds ({CALL_TIMEOUT}s) + 10s")):
            with pytest.raises(MCPError):
                await session.call_tool("peer_echo", {"text": "down"})
        assert time.monotonic() - started < CALL_TIMEOUT + 2
        with anyio.fail_after(20):
            assert not (await session.call_tool("notes_search_notes", {"query": "Q3"})).is_error
        # The peer comes back on the same port; the portal reconnects by itself.
        make_peer(port=peer.port)
        word = unique("back")

        async def echo_works():
            result = await session.call_tool("peer_echo", {"text": word})
            return text_of(result) == word

        await wait_until(echo_works, 20, "calls to the restarted peer to succeed")
