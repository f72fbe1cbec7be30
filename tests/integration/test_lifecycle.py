"""Startup and SIGTERM shutdown of the portal process."""

from __future__ import annotations

import anyio

from harness import legacy_session, mcp_session, raw_session, time_server, tool_names, wait_until


def small_portal(make_portal):
    return make_portal([time_server(), {"id": "notes", "builtin": "notes"}])


async def test_ready_line_lists_every_server(make_portal):
    portal = small_portal(make_portal)
    ready = portal.log.wait_for(lambda line: '"msg":"mcp-portal ready"' in line, 1)
    assert "time=ready" in ready and "notes=ready" in ready, portal.log.tail()
    portal.stop()


async def test_unreachable_server_does_not_block_readiness(make_portal):
    # Nothing listens on port 9: connecting is refused at once. The portal must
    # call the server failed within connect_timeout_seconds and say it is ready.
    portal = make_portal([{"id": "gone", "url": "http://127.0.0.1:9/mcp"}, {"id": "notes", "builtin": "notes"}],
                         limits={"connect_timeout_seconds": 3}, start_timeout=15)
    ready = portal.log.wait_for(lambda line: '"msg":"mcp-portal ready"' in line, 1)
    assert "gone=unavailable" in ready and "notes=ready" in ready, ready
    async with mcp_session(portal.url()) as session:
        with anyio.fail_after(20):
            assert "notes_search_notes" in await tool_names(session)


async def test_sigterm_exits_cleanly_after_clients_left(make_portal):
    portal = small_portal(make_portal)
    async with mcp_session(portal.url()) as session:
        with anyio.fail_after(20):
            await session.call_tool("time_get_current_time", {"timezone": "UTC"})
    portal.stop()


async def test_sigterm_exits_cleanly_with_a_client_connected(make_portal):
    """A connected client (its GET stream open) must not keep the portal alive."""
    portal = small_portal(make_portal)
    stopped, outcome = False, None
    try:
        async with mcp_session(portal.url()) as session:
            with anyio.fail_after(20):
                await session.call_tool("time_get_current_time", {"timezone": "UTC"})
            stopped = True
            with anyio.fail_after(30):
                try:
                    await anyio.to_thread.run_sync(portal.stop)
                except AssertionError as error:
                    outcome = error
    except Exception:
        if not stopped:
            raise
        # The client may complain that the server went away; that is expected.
    if outcome is not None:
        raise outcome


async def test_sigterm_exits_cleanly_after_a_legacy_sse_client_left(make_portal):
    portal = small_portal(make_portal)
    async with legacy_session(portal.sse_url()) as session:
        with anyio.fail_after(20):
            await session.call_tool("time_get_current_time", {"timezone": "UTC"})
    with anyio.fail_after(30):
        await anyio.to_thread.run_sync(portal.stop)


async def test_sigterm_lets_a_call_in_flight_finish(make_peer, make_portal):
    """SIGTERM while the fast lane is answering a call: the call gets its
    answer, then the portal exits cleanly."""
    peer = make_peer()
    portal = make_portal([{"id": "peer", "url": peer.url}])
    async with raw_session(portal.url()) as session, raw_session(portal.url()) as probe:
        answer: dict = {}

        async def slow_call():
            answer["response"] = await session.call("peer_slow", {"seconds": 1.5})

        async def started():
            counts = (await probe.call("peer_cancelled_count"))["result"]["structuredContent"]
            return counts["slow_started"] == 1

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(slow_call)
                await wait_until(started, 10, "the peer to start the slow call")
                await anyio.to_thread.run_sync(portal.stop)
    result = answer["response"]["result"]
    assert not result.get("isError"), result
    assert result["content"][0]["text"] == "slept 1.5"
