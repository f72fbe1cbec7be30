"""Every call and listing is in `mcp-portal audit query --json`."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess

import anyio

from harness import PORTAL_BIN, PortalProcess, mcp_session, raw_session, unique


def sha256(arguments: dict) -> str:
    return hashlib.sha256(json.dumps(arguments, separators=(",", ":")).encode()).hexdigest()


FIELDS = {"id", "time", "kind", "portal", "principal", "outcome", "duration_us", "argument_bytes", "result_bytes"}


async def test_calls_and_listings_are_audited(main_portal):
    word = unique("audit")
    ok_args = {"text": word}
    time_args = {"timezone": "UTC"}
    async with raw_session(main_portal.url()) as raw:
        with anyio.fail_after(30):
            ok = await raw.call("echo2", ok_args)
            assert "result" in ok and not ok["result"].get("isError"), ok
            failed = await raw.call("echo2", {"wrong": word})  # missing "text": the tool reports an error
            assert failed.get("error") or failed["result"].get("isError"), failed
            current = await raw.call("time_get_current_time", time_args)
            assert "result" in current
            for method in ["tools/list", "resources/list", "prompts/list"]:
                answer, _ = await raw.request(method, {})
                assert "result" in answer, answer
    session = raw.session_id

    calls = [r for r in main_portal.audit(kind="call") if r.get("session") == session]
    assert len(calls) == 3, calls
    for record in calls:
        assert FIELDS <= set(record), record
        assert record["portal"] == "default" and record["method"] == "tools/call"
        assert record["argument_sha256"], record

    echo_ok = main_portal.audit(server="peer", tool="echo", outcome="ok")
    mine = [r for r in echo_ok if r["argument_sha256"] == sha256(ok_args)]
    assert len(mine) == 1, echo_ok
    assert mine[0]["session"] == session
    assert mine[0]["argument_bytes"] == len(json.dumps(ok_args, separators=(",", ":")))
    assert mine[0]["result_bytes"] > 0
    assert "error" not in mine[0]

    echo_error = [r for r in main_portal.audit(server="peer", tool="echo", outcome="error") if r.get("session") == session]
    assert len(echo_error) == 1, echo_error
    assert echo_error[0]["argument_sha256"] == sha256({"wrong": word})
    assert echo_error[0].get("error"), echo_error

    time_calls = [r for r in main_portal.audit(server="time", tool="get_current_time") if r.get("session") == session]
    assert len(time_calls) == 1 and time_calls[0]["outcome"] == "ok", time_calls
    assert time_calls[0]["argument_sha256"] == sha256(time_args)

    listings = [r for r in main_portal.audit(kind="list") if r.get("session") == session]
    assert sorted(r["method"] for r in listings) == ["prompts/list", "resources/list", "tools/list"], listings
    assert all(r["outcome"] == "ok" for r in listings)

    opened = [r for r in main_portal.audit(kind="session.open") if r.get("session") == session]
    assert len(opened) == 1, opened


async def test_sdk_client_calls_are_audited(main_portal):
    word = unique("sdk-audit")
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            await session.list_tools()
            await session.call_tool("notes_search_notes", {"query": word})
            await session.read_resource("peer+resource://greeting")
            await session.get_prompt("peer_greet", {"name": word})
    records = main_portal.audit(server="notes", tool="search_notes")
    assert any(r["argument_sha256"] == sha256({"query": word}) and r["outcome"] == "ok" for r in records), records
    reads = main_portal.audit(kind="read", server="peer")
    assert reads and reads[0]["outcome"] == "ok", reads
    prompts = main_portal.audit(kind="prompt", server="peer")
    assert prompts and prompts[0]["tool"] == "greet" and prompts[0]["outcome"] == "ok", prompts


async def test_the_write_ahead_log_stays_bounded(tmp_path):
    """SQLite's automatic checkpoints are off (they would run inside a
    caller's commit); the portal's own must keep the log from growing while
    calls keep coming, one commit each."""
    portal = PortalProcess(tmp_path, [{"id": "notes", "builtin": "notes"}], [{"id": "default", "servers": ["notes"]}]).start()
    try:
        async with raw_session(portal.url()) as raw:
            with anyio.fail_after(120):
                for index in range(1500):
                    answer = await raw.call("notes_search_notes", {"query": f"q{index}"})
                    assert "result" in answer, answer
        wal = portal.storage / "portal.sqlite-wal"
        assert wal.stat().st_size < 8 << 20, f"write-ahead log grew to {wal.stat().st_size} bytes"
        assert len(portal.audit(kind="call")) == 1500
    finally:
        portal.stop()


async def _calls_in_one_session(portal: PortalProcess, count: int) -> str:
    async with raw_session(portal.url()) as raw:
        with anyio.fail_after(60):
            for index in range(count):
                answer = await raw.call("notes_search_notes", {"query": f"q{index}"})
                assert "result" in answer, answer
    return raw.session_id


def _calls_of(portal: PortalProcess, session: str) -> list[dict]:
    return [r for r in portal.audit(kind="call") if r.get("session") == session]


async def test_a_killed_portal_loses_no_answered_call(tmp_path):
    """A call's record is committed (appended to the audit journal) before
    its answer; SQLite is filled behind. Another process holds SQLite's
    write lock while the calls run, so nothing reaches the database before
    the portal is killed with SIGKILL: `audit query` imports what the
    journal holds, and so does the next portal at start, each record
    exactly once."""
    servers, portals = [{"id": "notes", "builtin": "notes"}], [{"id": "default", "servers": ["notes"]}]
    portal = PortalProcess(tmp_path, servers, portals).start()

    async def calls_then_kill() -> str:
        lock = sqlite3.connect(portal.storage / "portal.sqlite", isolation_level=None, timeout=30)
        try:
            lock.execute("BEGIN IMMEDIATE")
            try:
                return await _calls_in_one_session(portal, 40)
            finally:
                portal.kill()
        finally:
            lock.close()

    first = await calls_then_kill()
    assert len(_calls_of(portal, first)) == 40

    portal.start()
    second = await calls_then_kill()
    portal.start()
    try:
        recovered = [r for r in portal.log.json_records() if r.get("msg") == "audit journal recovered"]
        assert recovered and int(recovered[0]["records"]) >= 40, portal.log.tail()
        assert len(_calls_of(portal, first)) == 40
        assert len(_calls_of(portal, second)) == 40
        ids = [r["id"] for r in portal.audit()]
        assert sorted(ids) == list(range(1, len(ids) + 1))
    finally:
        portal.stop()


def test_one_portal_per_storage_folder(tmp_path):
    """Two portals on one storage folder would both append to its audit
    journal: the second refuses to start and says why."""
    servers, portals = [{"id": "notes", "builtin": "notes"}], [{"id": "default", "servers": ["notes"]}]
    portal = PortalProcess(tmp_path, servers, portals).start()
    try:
        other = subprocess.run([str(PORTAL_BIN), "serve", "--config", str(portal.config_path), "--port", "0"],
                               capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert other.returncode != 0, other.stderr
        assert "in use by another mcp-portal" in other.stderr, other.stderr
    finally:
        portal.stop()
