"""Tools of every kind of upstream, listed and called through the portal, and
compared with calling the upstream directly."""

from __future__ import annotations

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from mcp.client.streamable_http import streamable_http_client

from harness import PYTHON, http_client, legacy_session, list_servers, mcp_session, text_of, time_server, unique

async def call_direct_stdio(args: list[str], tool: str, arguments: dict):
    params = StdioServerParameters(command=PYTHON, args=args)
    with anyio.fail_after(30):
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await session.call_tool(tool, arguments)


async def call_direct_http(url: str, tool: str, arguments: dict):
    with anyio.fail_after(30):
        async with http_client() as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await session.call_tool(tool, arguments)


async def test_lists_tools_of_every_upstream_kind(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            names = {tool.name for tool in (await session.list_tools()).tools}
    expected = {
        "portal_list_servers", "portal_toggle_servers",
        "time_get_current_time",              # stdio (mcp-server-time)
        "git_git_status", "git_git_log",      # stdio (mcp-server-git)
        "echo2", "peer_progress",             # fastmcp Streamable HTTP peer (echo aliased)
        "speer_echo", "speer_progress",       # fastmcp SSE peer reached through transport: auto
        "notes_search_notes", "notes_get_note",  # built-in
    }
    assert expected <= names, f"missing: {expected - names}"


async def test_every_server_is_ready_and_sse_fallback_was_used(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            servers = await list_servers(session)
    assert set(servers) == {"time", "git", "peer", "speer", "notes"}
    for server_id, entry in servers.items():
        assert entry["status"] == "ready", entry
        assert entry["enabled"] is True, entry
        assert entry["tools"] > 0, entry
    fallback = [r for r in main_portal.log.json_records()
                if r.get("upstream.id") == "speer" and "legacy SSE" in r.get("msg", "")]
    assert fallback, "transport: auto did not log a fall back to SSE for the SSE peer"


async def test_time_tool_matches_direct_call(main_portal):
    arguments = {"source_timezone": "UTC", "time": "12:30", "target_timezone": "Asia/Tokyo"}
    direct = await call_direct_stdio(["-m", "mcp_server_time", "--local-timezone", "UTC"], "convert_time", arguments)
    async with mcp_session(main_portal.url("full")) as session:
        with anyio.fail_after(20):
            via_portal = await session.call_tool("time_convert_time", arguments)
            current = await session.call_tool("time_get_current_time", {"timezone": "UTC"})
    assert not via_portal.is_error, via_portal
    assert text_of(via_portal) == text_of(direct)
    assert via_portal.structured_content == direct.structured_content
    assert not current.is_error and "UTC" in text_of(current)


async def test_git_tool_matches_direct_call(main_portal, git_repo):
    direct = await call_direct_stdio(["-m", "mcp_server_git", "--repository", str(git_repo)],
                                     "git_status", {"repo_path": str(git_repo)})
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            via_portal = await session.call_tool("git_git_status", {"repo_path": str(git_repo)})
    assert not via_portal.is_error, via_portal
    assert text_of(via_portal) == text_of(direct)
    assert "untracked.txt" in text_of(via_portal)


@pytest.mark.parametrize("server, name", [("peer", "echo2"), ("speer", "speer_echo")])
async def test_fastmcp_peer_tool_matches_direct_call(main_portal, http_peer, server, name):
    word = unique("echo")
    direct = await call_direct_http(http_peer.url, "echo", {"text": word})
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            via_portal = await session.call_tool(name, {"text": word})
    assert not via_portal.is_error, via_portal
    assert text_of(via_portal) == text_of(direct) == word
    assert via_portal.structured_content == direct.structured_content


async def test_builtin_notes_tool(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            result = await session.call_tool("notes_search_notes", {"query": "On-call"})
    assert not result.is_error, result
    assert "On-call handbook" in text_of(result)


async def test_legacy_sse_endpoint(make_portal, http_peer):
    # Its own portal: at the end the fixture checks that the portal still
    # exits cleanly on SIGTERM after a legacy SSE client came and went.
    portal = make_portal([time_server(), {"id": "peer", "url": http_peer.url}, {"id": "notes", "builtin": "notes"}])
    async with legacy_session(portal.sse_url()) as session:
        with anyio.fail_after(20):
            names = {tool.name for tool in (await session.list_tools()).tools}
            assert {"time_get_current_time", "peer_echo", "notes_search_notes"} <= names
            word = unique("legacy")
            result = await session.call_tool("peer_echo", {"text": word})
            assert text_of(result) == word
            current = await session.call_tool("time_get_current_time", {"timezone": "UTC"})
            assert not current.is_error


async def test_default_portal_is_also_at_slash_mcp(main_portal):
    async with mcp_session(f"{main_portal.base_url}/mcp") as session:
        with anyio.fail_after(20):
            word = unique("root")
            assert text_of(await session.call_tool("echo2", {"text": word})) == word
