"""What an upstream says during a call reaches the client through the portal:
progress, sampling and elicitation requests, logging; cancellation goes back
upstream; list changes are relayed; resources and prompts are namespaced."""

from __future__ import annotations

import json

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from harness import mcp_session, raw_session, text_of, unique, wait_until

# The Streamable HTTP peer and the SSE peer behind the shared portal.
PEERS = ["peer", "speer"]


def tool(server: str, name: str) -> str:
    # peer_echo is aliased in the shared portal; the other tools keep their names.
    return "echo2" if (server, name) == ("peer", "echo") else f"{server}_{name}"


@pytest.mark.parametrize("server", PEERS)
async def test_progress_is_relayed(main_portal, server):
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            result = await session.call_tool(tool(server, "progress"), {"steps": 4}, progress_callback=on_progress)
    assert text_of(result) == "did 4 steps"
    assert updates == [(1, 4, "step 1"), (2, 4, "step 2"), (3, 4, "step 3"), (4, 4, "step 4")]


@pytest.mark.parametrize("server", PEERS)
async def test_sampling_round_trip(main_portal, server):
    seen: list[types.CreateMessageRequestParams] = []

    async def sampling(context, params: types.CreateMessageRequestParams):
        seen.append(params)
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text="forty-two"))

    question = unique("question")
    async with mcp_session(main_portal.url(), sampling_callback=sampling) as session:
        with anyio.fail_after(20):
            result = await session.call_tool(tool(server, "ask_llm"), {"question": question})
    assert not result.is_error, result
    assert text_of(result) == "model said: forty-two"
    assert len(seen) == 1
    assert seen[0].messages[0].content.text == question
    assert seen[0].max_tokens == 50


@pytest.mark.parametrize("server", PEERS)
@pytest.mark.parametrize("action, expected", [("accept", "hello Ada"), ("decline", "user chose decline")])
async def test_elicitation_round_trip(main_portal, server, action, expected):
    seen: list[types.ElicitRequestParams] = []

    async def elicit(context, params):
        seen.append(params)
        if action == "accept":
            return types.ElicitResult(action="accept", content={"value": "Ada"})
        return types.ElicitResult(action=action)

    async with mcp_session(main_portal.url(), elicitation_callback=elicit) as session:
        with anyio.fail_after(20):
            result = await session.call_tool(tool(server, "ask_user"), {})
    assert not result.is_error, result
    assert text_of(result) == expected
    assert len(seen) == 1 and seen[0].message == "What is your name?"
    assert seen[0].requested_schema["properties"]["value"]["type"] == "string"


@pytest.mark.parametrize("server", PEERS)
async def test_roots_round_trip(main_portal, server):
    asked = []

    async def list_roots(context):
        asked.append(context)
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project-a", name="a"),
                                            types.Root(uri="file:///work/project-b", name="b")])

    async with mcp_session(main_portal.url(), list_roots_callback=list_roots) as session:
        with anyio.fail_after(20):
            result = await session.call_tool(tool(server, "list_roots"), {})
    assert not result.is_error, result
    assert result.structured_content == {"result": ["file:///work/project-a", "file:///work/project-b"]}
    assert len(asked) == 1


@pytest.mark.parametrize("server", PEERS)
async def test_logging_notifications_arrive(main_portal, server):
    word = unique("log")
    received: list[types.LoggingMessageNotificationParams] = []
    both = anyio.Event()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        if isinstance(params.data, dict) and word in str(params.data.get("msg")):
            received.append(params)
            if len(received) == 2:
                both.set()

    async with mcp_session(main_portal.url(), logging_callback=on_log) as session:
        with anyio.fail_after(20):
            result = await session.call_tool(tool(server, "log"), {"message": word})
            assert text_of(result) == "logged"
            await both.wait()
    levels = sorted(params.level for params in received)
    assert levels == ["info", "warning"]
    # The portal names the server in the logger, so the client can tell servers apart.
    assert all(params.logger and params.logger.startswith(server) for params in received), received


async def test_logging_during_a_call_rides_the_calls_stream(main_portal):
    """Spec (and the portal's brief): messages an upstream sends while serving
    a call go on that POST's SSE stream, before the response."""
    word = unique("stream-log")
    async with raw_session(main_portal.url()) as raw:
        with anyio.fail_after(20):
            response, before = await raw.request("tools/call", {"name": "echo2", "arguments": {"text": "warm-up"}})
            assert "result" in response
            response, before = await raw.request("tools/call", {"name": "peer_log", "arguments": {"message": word}})
    assert "result" in response, response
    logs = [m for m in before if m.get("method") == "notifications/message"]
    assert len(logs) == 2, (
        f"expected both log notifications on the tools/call response stream before the result; got {before}")
    assert {m["params"]["level"] for m in logs} == {"info", "warning"}


async def test_logging_of_one_session_does_not_leak_to_another(main_portal):
    word = unique("private-log")
    leaked: list = []

    async def spy(params: types.LoggingMessageNotificationParams) -> None:
        if word in json.dumps(params.data, default=str):
            leaked.append(params)

    arrived = anyio.Event()

    async def mine(params: types.LoggingMessageNotificationParams) -> None:
        if word in json.dumps(params.data, default=str):
            arrived.set()

    async with mcp_session(main_portal.url(), logging_callback=spy) as bystander:
        async with mcp_session(main_portal.url(), logging_callback=mine) as caller:
            with anyio.fail_after(20):
                await caller.call_tool("peer_log", {"message": word})
                await arrived.wait()
                # The bystander's own round trip: anything relayed to it before
                # this answer has been delivered by now.
                await bystander.send_ping()
                await bystander.call_tool("echo2", {"text": "sync"})
    assert not leaked, f"a log message of another session's call reached this session: {leaked}"


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_cancellation_reaches_upstream(make_peer, make_portal, transport):
    peer = make_peer(transport=transport)
    portal = make_portal([{"id": "peer", "url": peer.url}])
    async with mcp_session(portal.url()) as session:
        with anyio.fail_after(30):
            with anyio.move_on_after(1.5) as scope:
                await session.call_tool("peer_slow", {"seconds": 60})
            assert scope.cancelled_caught, "the slow call was expected to be cancelled by the client"
            # The portal keeps serving this session.
            word = unique("after-cancel")
            assert text_of(await session.call_tool("peer_echo", {"text": word})) == word

            async def upstream_saw_cancel():
                counts = (await session.call_tool("peer_cancelled_count", {})).structured_content
                return counts["cancelled"] == 1 and counts["slow_started"] == 1

            await wait_until(upstream_saw_cancel, 10, "the peer to see its slow call cancelled")
    records = portal.audit(server="peer", tool="slow")
    assert len(records) == 1, records
    assert records[0]["outcome"] == "error"
    assert "cancel" in records[0]["error"].lower()
    assert records[0]["duration_us"] < 30_000_000


async def test_client_timeout_cancels_upstream_call(make_peer, make_portal):
    peer = make_peer()
    portal = make_portal([{"id": "peer", "url": peer.url}])
    async with mcp_session(portal.url()) as session:
        with anyio.fail_after(30):
            with pytest.raises(MCPError):
                await session.call_tool("peer_slow", {"seconds": 60}, read_timeout_seconds=1.0)

            async def upstream_saw_cancel():
                return (await session.call_tool("peer_cancelled_count", {})).structured_content["cancelled"] == 1

            await wait_until(upstream_saw_cancel, 10, "the peer to see its slow call cancelled")


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_tools_list_changed_is_relayed(make_peer, make_portal, transport):
    peer = make_peer(transport=transport)
    portal = make_portal([{"id": "peer", "url": peer.url}, {"id": "notes", "builtin": "notes"}])
    changed = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with mcp_session(portal.url(), message_handler=on_message) as session:
        with anyio.fail_after(20):
            assert "peer_runtime_added" not in {t.name for t in (await session.list_tools()).tools}
        with anyio.fail_after(20):
            result = await session.call_tool("peer_add_tool", {"name": "runtime_added"})
        assert text_of(result) == "added runtime_added", result
        with anyio.fail_after(10, reason="no notifications/tools/list_changed reached the client"):
            await changed.wait()
        with anyio.fail_after(20):
            assert "peer_runtime_added" in {t.name for t in (await session.list_tools()).tools}
            assert text_of(await session.call_tool("peer_runtime_added", {})) == "I am runtime_added"
            # The other server was not disturbed.
            assert not (await session.call_tool("notes_search_notes", {"query": "Release"})).is_error


@pytest.mark.parametrize("server", PEERS)
async def test_resources_and_templates_are_namespaced(main_portal, server):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            resources = {str(r.uri): r for r in (await session.list_resources()).resources}
            templates = {t.uri_template for t in (await session.list_resource_templates()).resource_templates}
            greeting = await session.read_resource(f"{server}+resource://greeting")
            profile = await session.read_resource(f"{server}+resource://users/42/profile")
    assert f"{server}+resource://greeting" in resources
    assert "notes+notes://index" in resources
    assert f"{server}+resource://users/{{user_id}}/profile" in templates
    assert greeting.contents[0].text == "Hello from the feature peer"
    assert str(greeting.contents[0].uri) == f"{server}+resource://greeting"
    assert json.loads(profile.contents[0].text) == {"user": "42", "role": "tester"}
    assert str(profile.contents[0].uri) == f"{server}+resource://users/42/profile"


async def test_unknown_resource_is_an_error(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            with pytest.raises(MCPError):
                await session.read_resource("nosuchserver+resource://greeting")
            with pytest.raises(MCPError):
                await session.read_resource("resource://greeting")
            # Still serving.
            assert (await session.read_resource("peer+resource://greeting")).contents


@pytest.mark.parametrize("server", PEERS)
async def test_prompts_are_namespaced(main_portal, server):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            prompts = {p.name: p for p in (await session.list_prompts()).prompts}
            assert f"{server}_greet" in prompts
            assert prompts[f"{server}_greet"].description == "Greet someone"
            result = await session.get_prompt(f"{server}_greet", {"name": "Ada"})
    assert result.messages[0].content.text == "Please greet Ada warmly."
