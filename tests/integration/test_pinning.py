"""Tool pinning: a definition that changes after it was first seen is held
until `mcp-portal tools approve`."""

from __future__ import annotations

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from harness import mcp_session, text_of, unique, wait_until

FIRST = "Pinned tool, first version."
SECOND = "Pinned tool, SECOND version: now also exfiltrates secrets."


async def tools(session) -> dict:
    return {t.name: t for t in (await session.list_tools()).tools}


async def restart_peer(make_peer, peer, **env):
    peer.stop()
    return make_peer(port=peer.port, env=env)


async def nudge(session) -> None:
    """A call to the restarted peer: the portal learns of the restart when its
    old upstream session is refused (404) and reconnects."""
    word = unique("nudge")

    async def echo_works():
        return text_of(await session.call_tool("peer_echo", {"text": word})) == word

    await wait_until(echo_works, 20, "a call to the restarted peer to succeed")


async def check_held_then_approved(portal, session) -> None:
    async def pinned_hidden():
        return "peer_pinned" not in await tools(session)

    await wait_until(pinned_hidden, 20, "the changed tool to be hidden (held)")

    pending = portal.cli("tools", "pending", "--config", str(portal.config_path)).stdout
    assert "peer pinned" in pending and SECOND in pending, pending
    with anyio.fail_after(20):
        with pytest.raises(MCPError) as caught:
            await session.call_tool("peer_pinned", {})
        assert caught.value.code == -32602
        # Unchanged tools of the same server stay visible and usable.
        assert text_of(await session.call_tool("peer_echo", {"text": "still"})) == "still"

    held = portal.audit(kind="pin.changed", server="peer", tool="pinned")
    assert held and held[0]["outcome"] == "held", held

    approved = portal.cli("tools", "approve", "--config", str(portal.config_path), "peer", "pinned").stdout
    assert "approved peer pinned" in approved, approved

    with anyio.fail_after(20):
        visible = await tools(session)
        assert "peer_pinned" in visible, "approved tool should be listed on the next tools/list"
        assert visible["peer_pinned"].description == SECOND
        assert text_of(await session.call_tool("peer_pinned", {})) == "pinned answer"
    assert "no tool definitions are waiting" in portal.cli("tools", "pending", "--config", str(portal.config_path)).stdout
    assert portal.audit(kind="pin.approved", server="peer", tool="pinned"), "approval should be audited"

    nothing = portal.cli("tools", "approve", "--config", str(portal.config_path), "--all", check=False)
    assert nothing.returncode == 1 and "nothing to approve" in nothing.stderr


@pytest.mark.parametrize("call_first", [False, True], ids=["noticed-by-itself", "reconnect-on-call"])
async def test_changed_definition_is_held_after_peer_restart(make_peer, make_portal, call_first):
    """The portal notices the restarted peer by itself (no call needed); with
    `call_first`, a call makes it reconnect, so pinning is checked apart from
    how a restarted peer is detected."""
    peer = make_peer(env={"PEER_PIN_DESCRIPTION": FIRST})
    portal = make_portal([{"id": "peer", "url": peer.url}, {"id": "notes", "builtin": "notes"}])
    async with mcp_session(portal.url()) as session:
        with anyio.fail_after(20):
            assert (await tools(session))["peer_pinned"].description == FIRST
        await restart_peer(make_peer, peer, PEER_PIN_DESCRIPTION=SECOND)
        if call_first:
            await nudge(session)
        await check_held_then_approved(portal, session)


async def test_new_tool_on_known_server_is_held_with_new_tools_hold(make_peer, make_portal):
    peer = make_peer()
    portal = make_portal([{"id": "peer", "url": peer.url}], pinning={"new_tools": "hold"})
    async with mcp_session(portal.url()) as session:
        with anyio.fail_after(20):
            first = await tools(session)
        assert "peer_echo" in first and "peer_surprise" not in first
        await restart_peer(make_peer, peer, PEER_EXTRA_TOOL="surprise")
        await nudge(session)

        async def held():
            return "new tool on a known server" in " ".join(
                r.get("detail", "") for r in portal.audit(kind="pin.changed", server="peer", tool="surprise"))

        await wait_until(held, 20, "the new tool to be recorded as held")
        with anyio.fail_after(20):
            assert "peer_surprise" not in await tools(session)
        assert "peer surprise" in portal.cli("tools", "pending", "--config", str(portal.config_path)).stdout
        portal.cli("tools", "approve", "--config", str(portal.config_path), "--all")
        with anyio.fail_after(20):
            assert "peer_surprise" in await tools(session)
            assert text_of(await session.call_tool("peer_surprise", {})) == "extra answer"
