"""The portal's own tools and the per-portal tool settings: disabled tools,
aliases, and writes denied by default."""

from __future__ import annotations

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from harness import list_servers, mcp_session, text_of, tool_names, unique


async def assert_unknown(session, name: str, arguments: dict | None = None) -> None:
    with pytest.raises(MCPError) as caught:
        await session.call_tool(name, arguments or {})
    assert caught.value.code == -32602, caught.value
    assert f"Unknown tool: {name}" in caught.value.message


async def test_list_servers(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            result = await session.call_tool("portal_list_servers", {})
            names = await tool_names(session)
    servers = result.structured_content["servers"]
    assert [s["id"] for s in servers] == ["time", "git", "peer", "speer", "notes"]
    by_id = {s["id"]: s for s in servers}
    for server_id, entry in by_id.items():
        assert entry["status"] == "ready" and entry["enabled"] is True, entry
    # Tool counts are what this portal shows: time_convert_time is disabled,
    # git's write tools are hidden.
    assert by_id["time"]["tools"] == len([n for n in names if n.startswith("time_")]) == 1
    assert by_id["git"]["tools"] == len([n for n in names if n.startswith("git_")])
    assert by_id["notes"]["tools"] == 3  # search, get, create (allow_write); delete hidden
    assert text_of(result)  # also given as text for clients without structured content


async def test_toggle_servers_is_per_session(main_portal):
    changed = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with mcp_session(main_portal.url(), message_handler=on_message) as session, \
            mcp_session(main_portal.url()) as other:
        with anyio.fail_after(20):
            result = await session.call_tool("portal_toggle_servers", {"disable": ["time", "git"]})
            assert not result.is_error, result
            assert result.structured_content["enabled"] == ["peer", "speer", "notes"]
            await changed.wait()

            names = await tool_names(session)
            assert not any(n.startswith(("time_", "git_")) for n in names), names
            assert "echo2" in names and "portal_list_servers" in names
            await assert_unknown(session, "time_get_current_time", {"timezone": "UTC"})
            servers = await list_servers(session)
            assert servers["time"]["enabled"] is False and servers["time"]["status"] == "ready"

            # Another session is not affected.
            assert "time_get_current_time" in await tool_names(other)
            assert not (await other.call_tool("time_get_current_time", {"timezone": "UTC"})).is_error
            assert (await list_servers(other))["time"]["enabled"] is True

            changed = anyio.Event()
            result = await session.call_tool("portal_toggle_servers", {"enable": ["time"]})
            assert result.structured_content["enabled"] == ["time", "peer", "speer", "notes"]
            await changed.wait()
            assert not (await session.call_tool("time_get_current_time", {"timezone": "UTC"})).is_error


async def test_toggle_unknown_server_is_an_error_and_changes_nothing(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            result = await session.call_tool("portal_toggle_servers", {"disable": ["time", "nope"]})
            assert result.is_error
            assert "nope" in text_of(result)
            assert (await list_servers(session))["time"]["enabled"] is True


async def test_disabled_tool_is_hidden_and_refused(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            names = await tool_names(session)
            assert "time_convert_time" not in names
            assert "time_get_current_time" in names
            await assert_unknown(session, "time_convert_time",
                                 {"source_timezone": "UTC", "time": "10:00", "target_timezone": "UTC"})


async def test_alias_replaces_the_default_name(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            names = await tool_names(session)
            assert "echo2" in names and "peer_echo" not in names
            word = unique("alias")
            assert text_of(await session.call_tool("echo2", {"text": word})) == word
            await assert_unknown(session, "peer_echo", {"text": word})
    # Another portal without the alias keeps the default name.
    async with mcp_session(main_portal.url("full")) as session:
        with anyio.fail_after(20):
            assert "peer_echo" in await tool_names(session)


async def test_write_tools_hidden_without_allow_write(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            names = await tool_names(session)
            # Not read-only and no grant: hidden.
            for hidden in ["notes_delete_note", "git_git_commit", "git_git_add", "git_git_reset"]:
                assert hidden not in names
            await assert_unknown(session, "notes_delete_note", {"id": 1})
            await assert_unknown(session, "git_git_add", {"repo_path": "/tmp", "files": ["x"]})
            # Granted per tool.
            assert "notes_create_note" in names
            created = await session.call_tool("notes_create_note", {"title": unique("t"), "body": "b"})
            assert not created.is_error, created
            # Read-only tools are always shown.
            assert {"notes_search_notes", "git_git_status"} <= names


async def test_allow_writes_portal_shows_write_tools(main_portal):
    async with mcp_session(main_portal.url("full")) as session:
        with anyio.fail_after(20):
            names = await tool_names(session)
    assert {"notes_delete_note", "git_git_commit", "git_git_add", "time_convert_time"} <= names


async def test_unknown_tool(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            await assert_unknown(session, "nosuch_tool")
            await assert_unknown(session, "peer_nosuch")
            assert text_of(await session.call_tool("echo2", {"text": "still"})) == "still"
