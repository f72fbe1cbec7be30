"""A fastmcp peer exercising every relayed MCP feature.

Usage: python feature_peer.py PORT [http|sse]

Tools: echo, progress, ask_llm (sampling), ask_user (elicitation), list_roots
(roots/list), slow (for
cancellation and timeouts), cancelled_count, add_tool (list_changed), log
(ctx.info), pinned (its description comes from $PEER_PIN_DESCRIPTION, for the
pinning tests), and a tool named $PEER_EXTRA_TOOL if that is set. A
resource, a resource template and a prompt.
"""

from __future__ import annotations

import asyncio
import os
import sys

import mcp_types
from fastmcp import Context, FastMCP
from mcp.shared.message import ServerMessageMetadata

READ_ONLY = {"readOnlyHint": True}

mcp = FastMCP("feature-peer", instructions="Feature peer for mcp-portal tests.")
state = {"cancelled": 0, "slow_started": 0}


@mcp.tool(annotations=READ_ONLY)
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@mcp.tool(annotations=READ_ONLY)
async def progress(steps: int, ctx: Context) -> str:
    """Report progress `steps` times, then finish."""
    for step in range(1, steps + 1):
        await ctx.report_progress(progress=step, total=steps, message=f"step {step}")
        await asyncio.sleep(0.01)
    return f"did {steps} steps"


@mcp.tool(annotations=READ_ONLY)
async def ask_llm(question: str, ctx: Context) -> str:
    """Ask the client's model (sampling/createMessage) and return its answer."""
    result = await ctx.session.create_message(
        messages=[mcp_types.SamplingMessage(role="user", content=mcp_types.TextContent(type="text", text=question))],
        max_tokens=50,
        related_request_id=ctx.request_id,
    )
    content = result.content
    return f"model said: {content.text}"


@mcp.tool(annotations=READ_ONLY)
async def ask_user(ctx: Context) -> str:
    """Ask the user for their name (elicitation/create)."""
    answer = await ctx.elicit("What is your name?", response_type=str)
    if answer.action == "accept":
        return f"hello {answer.data}"
    return f"user chose {answer.action}"


@mcp.tool(annotations=READ_ONLY)
async def list_roots(ctx: Context) -> list[str]:
    """Ask the client for its roots (roots/list) during the call."""
    result = await ctx.session.send_request(
        mcp_types.ListRootsRequest(), mcp_types.ListRootsResult,
        metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
    )
    return [str(root.uri) for root in result.roots]


@mcp.tool(annotations=READ_ONLY)
async def slow(seconds: float) -> str:
    """Sleep for `seconds` (counts cancellations)."""
    state["slow_started"] += 1
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        state["cancelled"] += 1
        raise
    return f"slept {seconds}"


@mcp.tool(annotations=READ_ONLY)
def cancelled_count() -> dict:
    """How many `slow` calls were cancelled, and how many started."""
    return dict(state)


@mcp.tool(annotations=READ_ONLY)
async def add_tool(name: str, ctx: Context) -> str:
    """Add a tool named `name` at runtime and announce the change."""

    def added() -> str:
        return f"I am {name}"

    mcp.tool(added, name=name, description=f"Added at runtime: {name}", annotations=READ_ONLY)
    await ctx.send_notification(mcp_types.ToolListChangedNotification())
    return f"added {name}"


@mcp.tool(annotations=READ_ONLY)
async def log(message: str, ctx: Context) -> str:
    """Log `message` to the client (notifications/message), then answer."""
    await ctx.info(message)
    await ctx.warning(f"warning: {message}")
    return "logged"


@mcp.tool(annotations=READ_ONLY, description=os.environ.get("PEER_PIN_DESCRIPTION", "Pinned tool, first version."))
def pinned() -> str:
    return "pinned answer"


if os.environ.get("PEER_EXTRA_TOOL"):
    @mcp.tool(name=os.environ["PEER_EXTRA_TOOL"], annotations=READ_ONLY, description="Present only when $PEER_EXTRA_TOOL is set.")
    def extra() -> str:
        return "extra answer"


@mcp.resource("resource://greeting", name="greeting", description="A greeting", mime_type="text/plain")
def greeting() -> str:
    return "Hello from the feature peer"


@mcp.resource("resource://users/{user_id}/profile", name="user_profile", mime_type="application/json")
def user_profile(user_id: str) -> dict:
    return {"user": user_id, "role": "tester"}


@mcp.prompt(name="greet", description="Greet someone")
def greet(name: str) -> str:
    return f"Please greet {name} warmly."


@mcp.completion
def complete(ref, argument, context):
    """Completes the greet prompt's `name` and the profile template's `user_id`."""
    if argument.name == "name":
        return [n for n in ("Ada", "Alan", "Grace") if n.startswith(argument.value)]
    if argument.name == "user_id":
        return [u for u in ("41", "42", "420") if u.startswith(argument.value)]
    return None


if __name__ == "__main__":
    port = int(sys.argv[1])
    transport = sys.argv[2] if len(sys.argv) > 2 else "http"
    mcp.run(transport=transport, host="127.0.0.1", port=port, show_banner=False)
