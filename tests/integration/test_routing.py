"""Methods the portal routes by name or URI beyond tools: completion,
logging level, and upstream pagination followed through the portal."""

from __future__ import annotations

import anyio
import pytest
from mcp import types

from harness import PYTHON, PEERS, mcp_session

PEER_IDS = ["peer", "speer"]


@pytest.mark.parametrize("server", PEER_IDS)
async def test_completion_routes_by_prompt_and_template(main_portal, server):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            names = await session.complete(types.PromptReference(type="ref/prompt", name=f"{server}_greet"),
                                           {"name": "name", "value": "A"})
            users = await session.complete(
                types.ResourceTemplateReference(type="ref/resource", uri=f"{server}+resource://users/{{user_id}}/profile"),
                {"name": "user_id", "value": "42"})
    assert names.completion.values == ["Ada", "Alan"]
    assert users.completion.values == ["42", "420"]


async def test_completion_for_an_unknown_server_is_an_error(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            with pytest.raises(Exception):
                await session.complete(types.PromptReference(type="ref/prompt", name="ghost_greet"), {"name": "name", "value": ""})
            # Still serving.
            assert (await session.list_prompts()).prompts


async def test_set_logging_level_is_accepted(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            await session.set_logging_level("warning")
            assert (await session.list_tools()).tools


PAGED_SERVER = """
from fastmcp import FastMCP

mcp = FastMCP("paged", list_page_size=40)
for i in range(250):
    mcp.tool(name=f"t{i:03d}", description=f"tool {i}", annotations={"readOnlyHint": True})(lambda: "ok")
mcp.run(show_banner=False)
"""


async def test_upstream_pages_are_followed_and_the_portal_pages_its_own(make_portal, tmp_path):
    script = tmp_path / "paged.py"
    script.write_text(PAGED_SERVER)
    portal = make_portal([{"id": "paged", "command": PYTHON, "args": [str(script)]}])
    async with mcp_session(portal.url()) as session:
        with anyio.fail_after(30):
            names: list[str] = []
            cursor = None
            while True:
                page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
                names += [tool.name for tool in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    break
            assert len([n for n in names if n.startswith("paged_t")]) == 250
            assert len(names) == len(set(names))
            assert (await session.call_tool("paged_t249", {})).content[0].text == "ok"
