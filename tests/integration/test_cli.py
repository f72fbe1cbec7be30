"""The command line end to end: importing a Claude/Cursor config, the demo
servers over stdio, the audit commands, serving on embedded defaults, and the
README's Python example."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import yaml

from harness import PORTAL_BIN, PYTHON, LineLog, free_port, mcp_session, text_of, tool_names


def run(*args: str, cwd=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(PORTAL_BIN), *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    if check:
        assert result.returncode == 0, f"mcp-portal {' '.join(args)}: {result.stderr}"
    return result


def test_import_claude_config_then_serve_it(tmp_path, make_portal):
    claude = {
        "mcpServers": {
            "Time Server": {"command": PYTHON, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
                            "env": {"TZ": "UTC"}},
            "directory": {"command": str(PORTAL_BIN), "args": ["demo-server", "directory"]},
            "remote-wiki": {"url": "https://wiki.example.com/mcp", "headers": {"Authorization": "Bearer x"}},
        }
    }
    source = tmp_path / "claude_desktop_config.json"
    source.write_text(json.dumps(claude))
    imported = run("config", "import-claude", str(source)).stdout
    target = tmp_path / "portal.yaml"
    target.write_text(imported)
    assert "ok (3 servers, 1 portals)" in run("config", "check", str(target)).stdout
    config = yaml.safe_load(imported)
    assert [s["id"] for s in config["servers"]] == ["time-server", "directory", "remote-wiki"]
    assert config["servers"][0]["env"] == {"TZ": "UTC"}
    assert config["servers"][2]["headers"] == {"Authorization": "Bearer x"}
    assert config["portals"] == [{"id": "default", "servers": ["time-server", "directory", "remote-wiki"]}]

    # The imported stdio servers really run behind a portal (the remote one is left out: no network here).
    bad = tmp_path / "bad.json"
    bad.write_text('{"mcpServers": {"x": {}}}')
    failed = run("config", "import-claude", str(bad), check=False)
    assert failed.returncode == 1 and "mcpServers.x: needs a command or a url" in failed.stderr


async def test_demo_server_over_stdio_behind_the_portal(make_portal, tmp_path):
    portal = make_portal([{"id": "people", "command": str(PORTAL_BIN), "args": ["demo-server", "directory"]},
                          {"id": "notes", "command": str(PORTAL_BIN), "args": ["demo-server", "notes", "--data", str(tmp_path / "n")]}])
    async with mcp_session(portal.url()) as session:
        names = await tool_names(session)
        assert {"people_find_people", "people_get_person", "notes_search_notes", "notes_create_note"} <= names
        found = await session.call_tool("people_find_people", {"query": "security"})
        assert found.structured_content["people"][0]["name"] == "Bruno Okafor"
        created = await session.call_tool("notes_create_note", {"title": "From stdio", "body": "hello"})
        assert created.structured_content["title"] == "From stdio"
        searched = await session.call_tool("notes_search_notes", {"query": "From stdio"})
        assert [n["title"] for n in searched.structured_content["notes"]] == ["From stdio"]


async def test_audit_query_filters_and_tail_follows(make_portal):
    portal = make_portal([{"id": "directory", "builtin": "directory"}])
    async with mcp_session(portal.url()) as session:
        await session.call_tool("directory_list_departments", {})
        failed = await session.call_tool("directory_get_person", {"id": "nobody"})
        assert failed.is_error
    errors = portal.audit(outcome="error", kind="call")
    assert [(r["tool"], r["error"]) for r in errors] == [("get_person", "tool returned isError")]
    assert {r["tool"] for r in portal.audit(server="directory", since="1h")} == {"list_departments", "get_person"}
    assert portal.audit(until="2000-01-01T00:00:00Z") == []
    bad = portal.cli("audit", "query", "--config", str(portal.config_path), "--outcome", "maybe", check=False)
    assert bad.returncode != 0 and "--outcome: expected one of ok, error, denied, held" in bad.stderr

    text = portal.cli("audit", "tail", "--config", str(portal.config_path), "--kind", "call").stdout
    assert "call ok portal=default" in text and "tool=list_departments" in text

    follower = subprocess.Popen([str(PORTAL_BIN), "audit", "tail", "-f", "--config", str(portal.config_path), "--json", "--tool", "find_people"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = LineLog(follower.stdout, "tail")
        async with mcp_session(portal.url()) as session:
            await session.call_tool("directory_find_people", {"query": "ada"})
        record = json.loads(lines.wait_for(lambda line: "find_people" in line, 15))
        assert record["kind"] == "call" and record["outcome"] == "ok" and len(record["argument_sha256"]) == 64
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_serve_on_embedded_defaults_and_readme_example(tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(PORTAL_BIN), "serve", "--port", str(port)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        log = LineLog(proc.stderr, "defaults")
        ready = log.wait_for(lambda line: '"msg":"mcp-portal ready"' in line, 30)
        assert "notes=ready directory=ready" in ready
        # The Python example from the README, run as written against this portal.
        readme = (PORTAL_BIN.parents[2] / "README.md").read_text()
        example = re.search(r"\*\*Python SDK\*\*.*?```python\n(.*?)```", readme, re.S).group(1)
        example = example.replace("http://127.0.0.1:8080/mcp", f"http://127.0.0.1:{port}/mcp")
        out = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "directory_find_people" in out.stdout and "Ada Lindqvist" in out.stdout
        # State lives in .mcp-portal/ under the working directory.
        assert (tmp_path / ".mcp-portal" / "portal.sqlite").exists()
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
