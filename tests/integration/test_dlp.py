"""DLP end to end: the official `mcp` client calls the built-in `directory`
server through a portal whose rules redact emails in results and block card
numbers in arguments, directly and from Code Mode."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from harness import PortalProcess, mcp_session, text_of

CARD = "4111 1111 1111 1111"
DLP = {
    "profiles": [{"id": "emails", "detectors": ["EMAIL"]}, {"id": "phones", "detectors": ["PHONE"]}],
    "rules": [
        {"id": "redact-directory-emails", "profile": "emails", "servers": ["directory"], "direction": "from_server", "action": "redact"},
        {"id": "no-cards-to-directory", "profile": "financial", "servers": ["directory"], "direction": "to_server", "action": "block"},
        {"id": "log-phones", "profile": "phones", "direction": "from_server", "action": "log"},
    ],
}


@pytest.fixture(scope="module")
def dlp_portal(tmp_path_factory):
    servers = [{"id": "directory", "builtin": "directory"}, {"id": "notes", "builtin": "notes"}]
    portals = [{"id": "default", "servers": ["directory", "notes"]}]
    portal = PortalProcess(tmp_path_factory.mktemp("dlp"), servers, portals, extra={"dlp": DLP}).start()
    try:
        yield portal
    finally:
        portal.stop()


CODE_QUERY = "?codemode=search_and_execute"


def assert_no_emails(value) -> None:
    text = json.dumps(value)
    assert "@example.com" not in text, text
    assert "[REDACTED:EMAIL]" in text, text


async def test_emails_are_redacted_in_results(dlp_portal):
    async with mcp_session(dlp_portal.url()) as session:
        result = await session.call_tool("directory_find_people", {"query": "engineering"})
        assert not result.is_error, text_of(result)
        people = result.structured_content["people"]
        assert [p["email"] for p in people] == ["[REDACTED:EMAIL]", "[REDACTED:EMAIL]"]
        assert people[0]["name"] == "Ada Lindqvist"  # the rest is untouched
        assert_no_emails([block.model_dump() for block in result.content])
        # Another server is not covered by the rule.
        note = await session.call_tool("notes_search_notes", {"query": "x"})
        assert not note.is_error

    rows = dlp_portal.audit(kind="dlp")
    redacted = [r for r in rows if json.loads(r["detail"])["rule"] == "redact-directory-emails"]
    assert redacted, rows
    detail = json.loads(redacted[0]["detail"])
    assert detail["action"] == "redact" and detail["direction"] == "from_server" and detail["profile"] == "emails"
    finding = detail["findings"][0]
    assert finding["detector"] == "EMAIL" and finding["count"] >= 2
    assert "$.result.structuredContent.people[0].email" in finding["paths"]
    # Phones are only logged: they pass, and the log rule is audited too.
    assert any(json.loads(r["detail"])["rule"] == "log-phones" for r in rows)
    # The audit never holds a matched value.
    assert "@example.com" not in json.dumps(rows) and "555 0132" not in json.dumps(rows)


async def test_cards_in_arguments_are_blocked(dlp_portal):
    async with mcp_session(dlp_portal.url()) as session:
        with pytest.raises(MCPError) as blocked:
            await session.call_tool("directory_find_people", {"query": f"who paid with {CARD}"})
        error = blocked.value
        assert error.code == -32010
        assert 'DLP rule "no-cards-to-directory" (profile financial)' in error.message
        assert "CREDIT_CARD" in error.message and "nothing was sent" in error.message
        assert "4111" not in error.message
        # The session keeps working.
        ok = await session.call_tool("directory_list_departments", {})
        assert not ok.is_error
    calls = [r for r in dlp_portal.audit(kind="call", tool="find_people") if r["outcome"] == "denied"]
    assert calls and "no-cards-to-directory" in calls[0]["error"]


async def test_the_same_rules_hold_in_code_mode(dlp_portal):
    async with mcp_session(dlp_portal.url() + CODE_QUERY) as session:
        with anyio.fail_after(30):
            result = await session.call_tool("portal_codemode_execute", {"code": """async () => {
                const found = await codemode.directory_find_people({ query: "engineering" });
                let blocked = "";
                try { await codemode.directory_find_people({ query: "card 4111 1111 1111 1111" }) } catch (e) { blocked = e.message }
                return { emails: found.people.map(p => p.email), blocked };
            }"""})
        assert not result.is_error, text_of(result)
        value = result.structured_content["result"]
        assert value["emails"] == ["[REDACTED:EMAIL]", "[REDACTED:EMAIL]"]
        assert 'Blocked by DLP rule "no-cards-to-directory"' in value["blocked"] and "4111" not in value["blocked"]
        execution = result.structured_content["execution"]
    rows = dlp_portal.audit(execution=execution)
    rules = sorted(json.loads(r["detail"])["rule"] for r in rows if r["kind"] == "dlp")
    assert rules == ["log-phones", "no-cards-to-directory", "redact-directory-emails"], rules


async def test_dlp_test_command(dlp_portal, tmp_path):
    sample = tmp_path / "message.json"
    sample.write_text(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "wiki_edit", "arguments": {"body": f"pay {CARD}, mail ada@example.com", "token": "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"}}}))
    out = dlp_portal.cli("dlp", "test", "--config", str(dlp_portal.config_path), str(sample)).stdout
    assert "CREDIT_CARD" in out and "$.params.arguments.body" in out and "GITHUB_TOKEN" in out
    assert "ada@example.com" not in out and "aBcDeFgHiJk" not in out  # masked
    assert "profile financial: 1 of at least 1 -> would trip" in out
    assert "profile emails: 1 of at least 1 -> would trip" in out
    lines = dlp_portal.cli("dlp", "test", "--lines", "--json", "--profile", "secrets", str(sample)).stdout.splitlines()
    assert [json.loads(line)["detector"] for line in lines] == ["GITHUB_TOKEN"]


def test_dlp_config_errors_name_the_key(tmp_path):
    from harness import PORTAL_BIN
    import subprocess

    bad = tmp_path / "bad.yaml"
    bad.write_text("dlp:\n  rules:\n    - id: r1\n      profile: nope\n      action: block\n")
    result = subprocess.run([str(PORTAL_BIN), "config", "check", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{bad}:4" in result.stderr and "dlp.rules[0].profile" in result.stderr and 'unknown profile "nope"' in result.stderr
    bad.write_text("dlp:\n  detectors:\n    - id: EMPLOYEE\n      pattern: '(unclosed'\n")
    result = subprocess.run([str(PORTAL_BIN), "config", "check", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "dlp.detectors[0].pattern" in result.stderr and "does not compile" in result.stderr, result.stderr
