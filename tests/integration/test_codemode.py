"""Code Mode: `?codemode=search_and_execute` turns a portal's tools into two
tools that run JavaScript, driven by the official Python `mcp` client in
front of realistic issue-tracker and drive servers (fastmcp)."""

from __future__ import annotations

import hashlib
import json

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from harness import PeerProcess, PortalProcess, RawSession, http_client, legacy_session, mcp_session, text_of

SEARCH = "portal_codemode_search"
EXECUTE = "portal_codemode_execute"

# The two snippets of the issue, as a model would send them.
SEARCH_CODE = """async () => (await codemode.tools())
  .filter(t => t.name.includes("jira") || t.name.includes("drive"))
  .map(t => ({ name: t.name, params: Object.keys(t.inputSchema.properties || {}) }))"""

EXECUTE_CODE = """async () => {
  const tickets = await codemode.jira_search_issues({ jql: 'project = BLOG AND status = "In Progress"' });
  const doc = await codemode.drive_get_content({ fileId: "1aBcDeFgHiJk" });
  await codemode.jira_update_issue({ issueKey: tickets[0].key, fields: { description: tickets[0].description + "\\n\\n" + doc.content } });
  return { updated: tickets[0].key };
}"""


@pytest.fixture(scope="module")
def work_portal(tmp_path_factory):
    tracker = PeerProcess("work_peer.py", "http", env={"PEER_KIND": "tracker"}).start()
    drive = PeerProcess("work_peer.py", "http", env={"PEER_KIND": "drive"}).start()
    servers = [{"id": "jira", "url": tracker.url}, {"id": "drive", "url": drive.url}]
    portals = [
        # Writes are denied by default: only update_issue is granted.
        {"id": "work", "servers": ["jira", "drive"],
         "tools": {"jira_update_issue": {"allow_write": True}, "drive_search_files": {"enabled": False}}},
        {"id": "nocode", "servers": ["jira"], "codemode": False},
    ]
    extra = {"codemode": {"cpu_seconds": 3, "timeout_seconds": 20, "workers": 2, "record_code": True}}
    portal = PortalProcess(tmp_path_factory.mktemp("codemode"), servers, portals, extra=extra).start()
    try:
        yield portal
    finally:
        portal.stop()
        tracker.stop()
        drive.stop()


def code_url(portal: PortalProcess, portal_id: str = "work") -> str:
    return portal.url(portal_id) + "?codemode=search_and_execute"


async def run(session, code: str, tool: str = EXECUTE):
    with anyio.fail_after(30):
        return await session.call_tool(tool, {"code": code})


async def test_tool_list_is_exactly_the_two_tools(work_portal):
    async with mcp_session(code_url(work_portal)) as session:
        tools = (await session.list_tools()).tools
        assert [t.name for t in tools] == [SEARCH, EXECUTE]
        for tool in tools:
            assert tool.input_schema["required"] == ["code"]
            assert "plain JavaScript" in tool.description and "TypeScript" in tool.description
        assert "console.log" in tools[1].description and "Promise.all" in tools[1].description


async def test_search_sees_exactly_the_allowed_tools(work_portal):
    async with mcp_session(code_url(work_portal)) as session:
        result = await run(session, SEARCH_CODE, SEARCH)
        assert not result.is_error, text_of(result)
        found = {entry["name"]: entry["params"] for entry in result.structured_content["result"]}
        # Policy-filtered: writes not granted and disabled tools are invisible.
        assert found == {
            "jira_search_issues": ["jql", "max_results"], "jira_get_issue": ["issueKey"],
            "jira_update_issue": ["issueKey", "fields"], "drive_get_content": ["fileId"],
        }
        detail = await run(session, """async () => {
            const tools = await codemode.tools();
            const update = tools.find(t => t.name === "jira_update_issue");
            return { readOnly: Object.fromEntries(tools.map(t => [t.name, t.readOnly])), server: update.server,
                     annotations: update.annotations, decl: await codemode.describe("jira_search_issues") };
        }""", SEARCH)
        value = detail.structured_content["result"]
        assert value["readOnly"] == {"jira_search_issues": True, "jira_get_issue": True, "jira_update_issue": False,
                                     "drive_get_content": True}
        assert value["server"] == "jira" and value["annotations"]["readOnlyHint"] is False
        assert "declare function jira_search_issues(args: {" in value["decl"]
        assert "jql: string;" in value["decl"] and "Promise<Record<string, unknown>[]>" in value["decl"]


async def test_the_issue_scenario_end_to_end(work_portal):
    async with mcp_session(code_url(work_portal)) as session:
        result = await run(session, EXECUTE_CODE)
        assert not result.is_error, text_of(result)
        assert result.structured_content["result"] == {"updated": "BLOG-1"}
        assert json.loads(result.content[0].text) == {"updated": "BLOG-1"}
        execution = result.structured_content["execution"]

    # The change is real: a direct session reads it back.
    async with mcp_session(work_portal.url("work")) as direct:
        issue = await direct.call_tool("jira_get_issue", {"issueKey": "BLOG-1"})
        assert issue.structured_content["description"].endswith("\n\nKey points: speed, governance, audit.")

    rows = work_portal.audit(execution=execution)
    calls = sorted((r["server"], r["tool"]) for r in rows if r["kind"] == "call")
    assert calls == [("drive", "get_content"), ("jira", "search_issues"), ("jira", "update_issue")]
    [run_row] = [r for r in rows if r["kind"] == "execution"]
    assert run_row["outcome"] == "ok" and run_row["tool"] == EXECUTE
    assert run_row["argument_sha256"] == hashlib.sha256(EXECUTE_CODE.encode()).hexdigest()
    assert run_row["argument_bytes"] == len(EXECUTE_CODE.encode())
    assert run_row["detail"] == EXECUTE_CODE  # record_code is on in this portal
    # Same session and principal for the execution and every call it made.
    assert {(r["session"], r["principal"]) for r in rows} == {(run_row["session"], run_row["principal"])}


async def test_a_tool_denied_directly_is_denied_in_code_mode(work_portal):
    async with mcp_session(code_url(work_portal)) as session:
        result = await run(session, """async () => {
            const out = {};
            for (const [name, args] of [["jira_delete_issue", { issueKey: "BLOG-2" }], ["jira_create_issue", { project: "X", summary: "s" }],
                                        ["drive_share_file", { fileId: "2xYz", email: "a@example.com" }], ["drive_search_files", { query: "b" }]]) {
              try { await codemode.call(name, args); out[name] = "called" } catch (e) { out[name] = e.message }
            }
            try { await codemode.jira_delete_issue({ issueKey: "BLOG-2" }) } catch (e) { out.direct = e.message }
            out.listed = (await codemode.tools()).map(t => t.name).filter(n => /delete|create|share|search_files/.test(n));
            return out;
        }""")
        value = result.structured_content["result"]
        assert value["listed"] == []
        for name in ("jira_delete_issue", "jira_create_issue", "drive_share_file", "drive_search_files"):
            assert value[name].startswith(f"Unknown tool: {name}"), value
        assert value["direct"].startswith("Unknown tool: jira_delete_issue"), value
        # Nothing reached the servers.
        assert not [r for r in work_portal.audit(execution=result.structured_content["execution"]) if r["kind"] == "call"]
    async with mcp_session(work_portal.url("work")) as direct:
        still = await direct.call_tool("jira_get_issue", {"issueKey": "BLOG-2"})
        assert still.structured_content["key"] == "BLOG-2"


async def test_errors_come_back_clearly(work_portal):
    async with mcp_session(code_url(work_portal)) as session:
        syntax = await run(session, "async () => {\n  const x: number = 1;\n  return x;\n}")
        assert syntax.is_error and text_of(syntax).startswith("SyntaxError:"), text_of(syntax)
        assert "line 2" in text_of(syntax) and "no TypeScript" in text_of(syntax)

        thrown = await run(session, "return await codemode.jira_get_issue({ issueKey: 'NOPE-1' })")
        assert thrown.is_error and "Error: jira_get_issue: no issue NOPE-1" in text_of(thrown), text_of(thrown)

        caught = await run(session, """try { await codemode.jira_get_issue({ issueKey: "NOPE-2" }) }
            catch (e) { console.warn("lookup failed:", e.message); return "handled" }""")
        assert not caught.is_error
        assert caught.structured_content["result"] == "handled"
        assert caught.structured_content["logs"] == [{"level": "warn", "text": "lookup failed: jira_get_issue: no issue NOPE-2"}]
        assert "console:\n[warn] lookup failed" in caught.content[1].text

        with pytest.raises(MCPError) as refused:
            await session.call_tool(EXECUTE, {})
        assert refused.value.code == -32602 and "needs arguments {\"code\": string}" in refused.value.message


async def test_parallel_calls_with_promise_all(work_portal):
    async with mcp_session(code_url(work_portal)) as session:
        result = await run(session, """async () => {
            const keys = ["BLOG-1", "BLOG-2", "OPS-7"];
            const issues = await Promise.all(keys.map(issueKey => codemode.jira_get_issue({ issueKey })));
            return issues.map(i => i.summary);
        }""")
        assert result.structured_content["result"] == ["Launch post", "Style guide", "Rotate keys"]
        assert result.structured_content["calls"] == 3


async def test_a_runaway_execution_stalls_nobody(work_portal):
    order: list[str] = []
    runaway_started = anyio.Event()

    async def runaway():
        async with mcp_session(code_url(work_portal)) as session:
            runaway_started.set()
            result = await run(session, "async () => { while (true) {} }")
            assert result.is_error and text_of(result).startswith("CPULimitError:"), text_of(result)
            order.append("runaway")

    async def others():
        await runaway_started.wait()
        async with mcp_session(code_url(work_portal)) as session, mcp_session(work_portal.url("work")) as direct:
            # Both run while the runaway spins in its own sandbox thread.
            result = await run(session, "return (await codemode.jira_get_issue({ issueKey: 'OPS-7' })).key")
            assert result.structured_content["result"] == "OPS-7"
            direct_result = await direct.call_tool("jira_get_issue", {"issueKey": "OPS-7"})
            assert direct_result.structured_content["key"] == "OPS-7"
            order.append("others")

    async with anyio.create_task_group() as group:
        group.start_soon(runaway)
        group.start_soon(others)
    # The others finished while the runaway was still spinning.
    assert order == ["others", "runaway"]


async def test_code_mode_can_be_turned_off_and_bad_values_are_refused(work_portal):
    async with http_client() as http:
        for url, expected in [(work_portal.url("nocode") + "?codemode=search_and_execute", "Code Mode is turned off for portal \"nocode\""),
                              (work_portal.url("work") + "?codemode=everything", "unsupported codemode \"everything\"")]:
            raw = RawSession(http, url)
            body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
            response = await raw.post(body)
            assert response.status_code == 400, response.text
            assert expected in response.json()["error"]["message"]
    # The same portal without the query serves its tools as usual.
    async with mcp_session(work_portal.url("nocode")) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert "jira_search_issues" in names and EXECUTE not in names


async def test_code_mode_over_legacy_sse(work_portal):
    async with legacy_session(work_portal.sse_url("work") + "?codemode=search_and_execute") as session:
        assert [t.name for t in (await session.list_tools()).tools] == [SEARCH, EXECUTE]
        result = await run(session, "async () => (await codemode.drive_get_content({ fileId: '2xYz' })).title")
        assert result.structured_content["result"] == "Budget"


async def test_a_cancelled_execution_stops(work_portal):
    from harness import wait_until

    async with mcp_session(code_url(work_portal)) as session:
        # The client gives up; the SDK sends notifications/cancelled for the call.
        with anyio.move_on_after(0.5) as scope:
            await session.call_tool(EXECUTE, {"code": "async () => { for (;;) {} }"})
        assert scope.cancelled_caught

        async def cancelled_row():
            rows = work_portal.audit(kind="execution", outcome="error")
            return [r for r in rows if r.get("error", "").startswith("CancelledError")]

        # CancelledError, not the CPU limit that would have stopped it later.
        await wait_until(cancelled_row, 10, "the execution to be audited as cancelled")
        # The session and the sandboxes keep serving.
        result = await run(session, "return 6 * 7")
        assert result.structured_content["result"] == 42


@pytest.mark.parametrize("code, expected", [
    ("const keep = []; while (true) keep.push(new Array(100000).fill(1))", "MemoryLimitError:"),
    ("function f() { return f() + 1 } return f()", "Error: RangeError: Maximum call stack size exceeded."),
    ("return await import('fs')", "Error:"),
    ("return fetch('http://127.0.0.1/')", "Error: ReferenceError: Can't find variable: fetch"),
    ("return require('child_process')", "Error: ReferenceError: Can't find variable: require"),
    ("return process.env", "Error: ReferenceError: Can't find variable: process"),
])
async def test_the_sandbox_contains_it(work_portal, code, expected):
    async with mcp_session(code_url(work_portal)) as session:
        result = await run(session, code)
        assert result.is_error and text_of(result).startswith(expected), text_of(result)
        # The portal and its sandboxes keep serving.
        after = await run(session, "return (await codemode.jira_get_issue({ issueKey: 'OPS-7' })).status")
        assert after.structured_content["result"] == "In Progress"
