"""`mcp-portal config check` points at the line, column and key of a problem."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from harness import PORTAL_BIN


def check(path) -> subprocess.CompletedProcess:
    return subprocess.run([str(PORTAL_BIN), "config", "check", str(path)], capture_output=True, text=True, timeout=30)


# (YAML text, line, column, key path, words in the message)
BAD = {
    "port_out_of_range": ("""\
        listen:
          host: 127.0.0.1
          port: 99999
        """, 3, 9, "listen.port", "between 0 and 65535"),
    "invalid_server_id": ("""\
        servers:
          - id: time
            command: python
          - id: Bad_Id
            command: python
        """, 4, 9, "servers[1].id", "not a valid server id"),
    "unknown_limits_key": ("""\
        limits:
          call_timeout_seconds: 3
          call_timeout: 3
        """, 3, 3, "limits.call_timeout", "unknown key"),
    "bad_url": ("""\
        servers:
          - id: peer
            url: ftp://example.com/mcp
        """, 3, 10, "servers[0].url", "http or https"),
    "bad_transport": ("""\
        servers:
          - id: peer
            url: http://127.0.0.1:9/mcp
            transport: websocket
        """, 4, 16, "servers[0].transport", "auto, streamable-http or sse"),
    "bad_new_tools_rule": ("""\
        pinning:
          new_tools: sometimes
        """, 2, 14, "pinning.new_tools", "allow or hold"),
    "bad_allow_writes": ("""\
        servers:
          - id: notes
            builtin: notes
        portals:
          - id: default
            servers: [notes]
            allow_writes: perhaps
        """, 7, 19, "portals[0].allow_writes", "true or false"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_names_line_and_key(tmp_path, case):
    text, line, column, key, words = BAD[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(textwrap.dedent(text))
    result = check(path)
    assert result.returncode == 1, result
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith(f"{path}:{line}:{column}: {key}: "), first
    assert words in first, first


def test_unknown_portal_server_is_named(tmp_path):
    path = tmp_path / "portal.yaml"
    path.write_text(textwrap.dedent("""\
        servers:
          - id: notes
            builtin: notes
        portals:
          - id: default
            servers: [notes, nope]
        """))
    result = check(path)
    assert result.returncode == 1
    assert "portals[0].servers[1]" in result.stderr and "nope" in result.stderr, result.stderr


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("servers:\n  - id: a\n    args: [unclosed\n")
    result = check(path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}:"), result.stderr
    assert "not valid YAML" in result.stderr


def test_good_config_is_ok(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(textwrap.dedent("""\
        listen: {host: 127.0.0.1, port: 8080}
        storage: {path: /tmp/somewhere/.mcp-portal}
        limits: {call_timeout_seconds: 3, connect_timeout_seconds: 10, max_body_bytes: 65536}
        pinning: {new_tools: hold}
        servers:
          - id: time
            command: python
            args: [-m, mcp_server_time]
            env: {FOO: bar}
          - id: peer
            url: http://127.0.0.1:9001/mcp
            transport: auto
          - id: notes
            builtin: notes
        portals:
          - id: default
            servers: [time, peer, notes]
            allow_writes: true
            tools:
              time_convert_time: {enabled: false}
              peer_echo: {alias: echo2}
              notes_create_note: {allow_write: true}
        """))
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert "ok (3 servers, 1 portals)" in result.stdout
