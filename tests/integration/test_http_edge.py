"""Transport rules over raw HTTP: malformed and refused requests get the
right HTTP status and JSON-RPC error, and the session keeps working after."""

from __future__ import annotations

import datetime
import email.utils
import json
import re

import anyio
import pytest

from harness import PortalProcess, http_client, mcp_session, raw_session, unique, wait_until


def body_of(**fields) -> dict:
    return {"jsonrpc": "2.0", **fields}


def big_call() -> dict:
    return body_of(id=9, method="tools/call", params={"name": "echo2", "arguments": {"text": "x" * 70_000}})


# name: (body, header changes, expected HTTP status, expected JSON-RPC error code or None)
CASES = {
    "invalid_json": (b'{"jsonrpc": "2.0", "id": 1, "method": ', {}, 400, -32700),
    "not_a_message": (body_of(), {}, 400, -32600),
    "unknown_method": (body_of(id=7, method="no/such/method"), {}, 200, -32601),
    "call_without_name": (body_of(id=8, method="tools/call", params={"arguments": {}}), {}, 200, -32602),
    "missing_session_id": (body_of(id=10, method="tools/list"), {"Mcp-Session-Id": None}, 400, None),
    "unknown_session_id": (body_of(id=11, method="tools/list"), {"Mcp-Session-Id": "0" * 64}, 404, None),
    "body_too_large": (big_call(), {}, 413, None),
    "unsupported_protocol_version": (body_of(id=12, method="tools/list"), {"MCP-Protocol-Version": "1999-01-01"}, 400, None),
    "batch_on_2025_11_25": ([body_of(id=13, method="ping"), body_of(id=14, method="tools/list")], {}, 400, -32600),
    "disallowed_origin": (body_of(id=15, method="tools/list"), {"Origin": "http://evil.example"}, 403, None),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_request_is_refused_and_session_survives(main_portal, case):
    body, changes, status, code = CASES[case]
    async with raw_session(main_portal.url()) as raw:
        headers = raw.headers()
        for name, value in changes.items():
            if value is None:
                headers.pop(name)
            else:
                headers[name] = value
        with anyio.fail_after(20):
            response = await raw.post(body, headers=headers)
        assert response.status_code == status, f"{case}: HTTP {response.status_code} {response.text[:300]}"
        if status >= 400:
            assert response.headers.get("content-type", "").startswith("application/json"), response.headers
        if code is not None:
            message = response.json()
            assert message["jsonrpc"] == "2.0"
            assert message["error"]["code"] == code, message
            if isinstance(body, dict) and "id" in body:
                assert message["id"] == body["id"], message
        # A normal call on the same session still works.
        word = unique(case)
        with anyio.fail_after(20):
            answer = await raw.call("echo2", {"text": word})
        assert answer["result"]["content"][0]["text"] == word, answer


async def test_allowed_origin_is_accepted(main_portal):
    async with raw_session(main_portal.url()) as raw:
        with anyio.fail_after(20):
            response = await raw.post(body_of(id=3, method="tools/list"), headers=raw.headers(Origin="http://localhost:5173"))
    assert response.status_code == 200, response.text


async def test_initialize_from_disallowed_origin_is_refused(main_portal):
    async with http_client() as http:
        with anyio.fail_after(20):
            response = await http.post(main_portal.url(), headers={
                "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                "Origin": "http://evil.example"}, content=json.dumps(body_of(
                    id=1, method="initialize",
                    params={"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}})))
    assert response.status_code == 403
    assert "mcp-session-id" not in response.headers


async def test_batch_is_allowed_on_2025_03_26(main_portal):
    async with raw_session(main_portal.url(), version="2025-03-26") as raw:
        assert raw.version == "2025-03-26"
        with anyio.fail_after(20):
            response = await raw.post([body_of(id=21, method="ping"),
                                       body_of(id=22, method="tools/call", params={"name": "echo2", "arguments": {"text": "b"}})])
    assert response.status_code == 200, response.text
    answers = {m["id"]: m for m in response.json()}
    assert answers[21]["result"] == {}
    assert answers[22]["result"]["content"][0]["text"] == "b"


async def test_deleted_session_is_gone(main_portal):
    async with raw_session(main_portal.url()) as raw:
        with anyio.fail_after(20):
            deleted = await raw.http.delete(raw.url, headers=raw.headers())
            assert deleted.status_code in (200, 204), deleted.text
            after = await raw.post(body_of(id=5, method="tools/list"))
    assert after.status_code == 404, after.text


async def test_health_readiness_and_metrics(main_portal):
    async with mcp_session(main_portal.url()) as session:
        with anyio.fail_after(20):
            await session.call_tool("echo2", {"text": "metrics"})
    async with http_client() as http:
        with anyio.fail_after(20):
            health = await http.get(f"{main_portal.base_url}/healthz")
            ready = await http.get(f"{main_portal.base_url}/readyz")
            metrics = await http.get(f"{main_portal.base_url}/metrics")
    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert set(ready.json()["servers"].values()) == {"ready"}, ready.json()
    assert metrics.status_code == 200
    lines = [line for line in metrics.text.splitlines() if line.startswith("mcp_portal_tool_calls_total")]
    assert any('server="peer"' in line and 'tool="echo"' in line for line in lines), lines


def _http_request(host: str, path: str, method: str = "GET", body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_until_closed(stream) -> bytes:
    """Everything the portal writes until it closes the connection."""
    received = b""
    try:
        while True:
            received += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return received


async def _read_responses(stream, count: int, heads: list[dict[str, str]] | None = None) -> list[tuple[int, bytes]]:
    """Reads `count` HTTP/1.1 responses (Content-Length bodies) in order;
    their header fields (lowercased names) go into `heads` when given."""
    buffer = b""
    out: list[tuple[int, bytes]] = []
    while len(out) < count:
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive()
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(l.split(":", 1)[1]) for l in lines[1:] if l.lower().startswith("content-length:"))
        if heads is not None:
            heads.append({l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]})
        while len(buffer) < length:
            buffer += await stream.receive()
        out.append((status, buffer[:length]))
        buffer = buffer[length:]
    return out


async def test_pipelined_requests_are_answered_in_order(main_portal):
    """Calls answered on the event loop and requests that go to the router,
    sent back to back on one connection, come back in the order sent."""
    async with raw_session(main_portal.url()) as raw:
        host, port = main_portal.base_url.removeprefix("http://").split(":")
        headers = {k: v for k, v in raw.headers().items()}
        words = [unique(f"pipe{i}") for i in range(3)]
        call = lambda i, word: _http_request(host, "/mcp", "POST", json.dumps(body_of(
            id=100 + i, method="tools/call", params={"name": "echo2", "arguments": {"text": word}})).encode(), headers)
        payload = (call(0, words[0]) + _http_request(host, "/healthz") + call(1, words[1])
                   + _http_request(host, "/mcp", "POST", json.dumps(body_of(id=7, method="tools/list")).encode(), headers)
                   + call(2, words[2]))
        with anyio.fail_after(20):
            async with await anyio.connect_tcp(host, int(port)) as stream:
                await stream.send(payload)
                heads: list[dict[str, str]] = []
                responses = await _read_responses(stream, 5, heads)
    assert [status for status, _ in responses] == [200] * 5, responses
    # Answered on the event loop or by the route, every response says when and who (RFC 9110 6.6.1, 10.2.4).
    for head in heads:
        assert head.get("server") == "mcp-portal", head
        parsed = email.utils.parsedate_to_datetime(head["date"])
        assert abs((parsed - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 60, head
        assert head["date"].endswith(" GMT"), head
    assert responses[1][1] == b"ok\n"
    for index, word in zip((0, 2, 4), words):
        message = json.loads(responses[index][1])
        assert message["id"] == 100 + index // 2, message
        assert message["result"]["content"][0]["text"] == word, message
    assert "tools" in json.loads(responses[3][1])["result"]


async def test_a_call_whose_body_comes_in_pieces_is_answered_whole(main_portal):
    """A call's body sent in several pieces (chunked: NIO's decoder hands
    each chunk on as a part of its own; each also its own write) is read
    whole and answered, like one that comes at once."""
    async with raw_session(main_portal.url()) as raw:
        host, port = main_portal.base_url.removeprefix("http://").split(":")
        word = unique("pieces")
        body = json.dumps(body_of(id=41, method="tools/call", params={"name": "echo2", "arguments": {"text": word}})).encode()
        lines = ["POST /mcp HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked"]
        lines += [f"{name}: {value}" for name, value in raw.headers().items()]
        pieces = [body[:10], body[10:25], body[25:]]
        with anyio.fail_after(20):
            async with await anyio.connect_tcp(host, int(port)) as stream:
                await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode())
                for piece in pieces:
                    await stream.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await stream.send(b"0\r\n\r\n")
                [(status, answer)] = await _read_responses(stream, 1)
    assert status == 200, answer
    message = json.loads(answer)
    assert message["id"] == 41 and message["result"]["content"][0]["text"] == word, message


async def test_calls_over_64_kib_are_answered_by_the_route(tmp_path, http_peer):
    """The fast lane parses bodies up to 64 KiB on the event loop; a bigger
    call (under the configured limit) is answered all the same, by the route."""
    portal = PortalProcess(tmp_path, [{"id": "peer", "url": http_peer.url, "transport": "auto"}],
                           [{"id": "default", "servers": ["peer"]}], limits={"max_body_bytes": 1_000_000}).start()
    try:
        async with raw_session(portal.url()) as raw:
            text = unique("big") + "y" * 200_000
            with anyio.fail_after(20):
                answer = await raw.call("peer_echo", {"text": text})
            assert answer["result"]["content"][0]["text"] == text
            with anyio.fail_after(20):
                small = await raw.call("peer_echo", {"text": "small"})
            assert small["result"]["content"][0]["text"] == "small"
    finally:
        portal.stop()


async def test_nothing_is_answered_after_a_request_that_closes(main_portal):
    """A request that asks to close the connection is the last one answered
    on it: a call pipelined behind it is not run."""
    async with raw_session(main_portal.url()) as raw:
        host, port = main_portal.base_url.removeprefix("http://").split(":")
        word = unique("after-close")
        call = _http_request(host, "/mcp", "POST", json.dumps(body_of(
            id=31, method="tools/call", params={"name": "echo2", "arguments": {"text": word}})).encode(), raw.headers())
        payload = _http_request(host, "/healthz", headers={"Connection": "keep-alive, close"}) + call
        with anyio.fail_after(20):
            async with await anyio.connect_tcp(host, int(port)) as stream:
                await stream.send(payload)
                received = await _read_until_closed(stream)
    assert received.count(b"HTTP/1.1 ") == 1, received
    assert received.endswith(b"ok\n"), received
    assert not [r for r in main_portal.audit(kind="call") if r.get("argument_bytes") and word in json.dumps(r)]


async def test_a_request_that_does_not_parse_is_refused_after_those_before_it(main_portal):
    """Garbage pipelined behind a call answered on the event loop and a
    request for the router: both are answered, in order, then the 400 that
    closes the connection. A call that ran is never left without its answer."""
    async with raw_session(main_portal.url()) as raw:
        host, port = main_portal.base_url.removeprefix("http://").split(":")
        word = unique("before-garbage")
        call = _http_request(host, "/mcp", "POST", json.dumps(body_of(
            id=51, method="tools/call", params={"name": "echo2", "arguments": {"text": word}})).encode(), raw.headers())
        listing = _http_request(host, "/mcp", "POST", json.dumps(body_of(id=52, method="tools/list")).encode(), raw.headers())
        payload = call + listing + b"GARBAGE \x01\x02 NOT HTTP\r\n\r\n"
        with anyio.fail_after(20):
            async with await anyio.connect_tcp(host, int(port)) as stream:
                await stream.send(payload)
                received = await _read_until_closed(stream)
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]
    assert statuses == [200, 200, 400], received
    first = received.index(word.encode())
    assert first < received.index(b'"tools"') < received.index(b"HTTP/1.1 400"), received


async def test_sigterm_while_the_route_answers_starts_nothing_pipelined_behind_it(make_peer, make_portal):
    """SIGTERM while Hummingbird answers a call (a body over 64 KiB takes the
    route): that call is answered, and a call pipelined behind it on the same
    connection is never started, since its answer could not go out before
    the connection closes. (A call that ran always has its answer.)"""
    peer = make_peer()
    portal = make_portal([{"id": "peer", "url": peer.url}], limits={"max_body_bytes": 1_000_000})
    host, port = portal.base_url.removeprefix("http://").split(":")
    async with raw_session(portal.url()) as raw, raw_session(portal.url()) as probe:
        routed = _http_request(host, "/mcp", "POST", json.dumps(body_of(id=61, method="tools/call", params={
            "name": "peer_slow", "arguments": {"seconds": 1.5}, "_meta": {"pad": "x" * 70_000}})).encode(), raw.headers())
        behind = _http_request(host, "/mcp", "POST", json.dumps(body_of(id=62, method="tools/call", params={
            "name": "peer_slow", "arguments": {"seconds": 0}})).encode(), raw.headers())

        async def routed_call_started():
            counts = (await probe.call("peer_cancelled_count"))["result"]["structuredContent"]
            return counts["slow_started"] >= 1

        with anyio.fail_after(30):
            async with await anyio.connect_tcp(host, int(port)) as stream:
                await stream.send(routed + behind)
                await wait_until(routed_call_started, 10, "the peer to start the routed call")
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(anyio.to_thread.run_sync, portal.stop)
                    received = await _read_until_closed(stream)
    async with mcp_session(peer.url) as direct:
        with anyio.fail_after(20):
            counts = (await direct.call_tool("cancelled_count", {})).structured_content
    assert b"slept 1.5" in received, received[-500:]
    assert counts["slow_started"] == received.count(b"HTTP/1.1 200"), (counts, received[-500:])
