"""Process and client helpers for the mcp-portal integration tests.

Everything here waits on events (a log line, a notification, a status) with a
deadline; nothing sleeps for a fixed time to let something happen.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import yaml
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEERS = HERE / "peers"
PORTAL_BIN = Path(os.environ.get("MCP_PORTAL_BIN", REPO / ".build" / "debug" / "mcp-portal"))
PYTHON = sys.executable

PROTOCOL_VERSION = "2025-11-25"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix: str = "x") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class LineLog:
    """Collects the lines a child process writes to one pipe, on a thread,
    and lets tests wait for a line with a deadline."""

    def __init__(self, stream, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True, name=f"log-{name}")
        self._thread.start()

    def _pump(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, start: int = 0) -> str:
        """Returns the first line from index `start` on that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self.lines):
                    if predicate(self.lines[index]):
                        return self.lines[index]
                    index += 1
                if self.closed:
                    raise AssertionError(f"{self.name}: stream closed before the expected line\n{self.tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.name}: no expected line within {timeout}s\n{self.tail()}")
                self._cond.wait(remaining)

    def contains(self, text: str) -> bool:
        with self._cond:
            return any(text in line for line in self.lines)

    def json_records(self) -> list[dict]:
        out = []
        with self._cond:
            lines = list(self.lines)
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    def __len__(self) -> int:
        with self._cond:
            return len(self.lines)


def _stop_process(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM, then wait; returns the exit code, or None if it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None


class _Process:
    """A child process the tests own: `kill()` for teardown after a failure."""

    proc: subprocess.Popen | None = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


class PeerProcess(_Process):
    """A Python MCP server on its own port (fastmcp, Streamable HTTP or SSE)."""

    def __init__(self, script: str, transport: str = "http", port: int | None = None, env: dict[str, str] | None = None):
        self.script = PEERS / script
        self.transport = transport
        self.port = port or free_port()
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log: LineLog | None = None

    @property
    def url(self) -> str:
        path = "sse" if self.transport == "sse" else "mcp"
        return f"http://127.0.0.1:{self.port}/{path}"

    def start(self, timeout: float = 30) -> PeerProcess:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        self.proc = subprocess.Popen(
            [PYTHON, str(self.script), str(self.port), self.transport],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        self.log = LineLog(self.proc.stdout, f"peer {self.script.name}:{self.port}")
        try:
            self.log.wait_for(lambda line: "Uvicorn running on" in line, timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None:
            return
        code = _stop_process(self.proc, timeout)
        self.proc = None
        assert code is not None, f"peer on port {self.port} ignored SIGTERM for {timeout}s"


class PortalProcess(_Process):
    """`mcp-portal serve` with a generated configuration in a private folder."""

    def __init__(self, folder: Path, servers: list[dict], portals: list[dict], *, limits: dict | None = None,
                 pinning: dict | None = None, extra: dict | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.storage = self.folder / ".mcp-portal"
        config: dict[str, Any] = {
            "listen": {"host": "127.0.0.1", "port": self.port},
            "storage": {"path": str(self.storage)},
            "limits": {"call_timeout_seconds": 3, "connect_timeout_seconds": 10, "max_body_bytes": 65536, **(limits or {})},
            "pinning": pinning or {"new_tools": "allow"},
            "servers": servers,
            "portals": portals,
            **(extra or {}),
        }
        self.config = config
        self.config_path = self.folder / "portal.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc: subprocess.Popen | None = None
        self.log: LineLog | None = None
        self.out: LineLog | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, portal: str = "default") -> str:
        return f"{self.base_url}/{portal}/mcp"

    def sse_url(self, portal: str = "default") -> str:
        return f"{self.base_url}/{portal}/sse"

    def start(self, timeout: float = 45) -> PortalProcess:
        assert PORTAL_BIN.exists(), f"{PORTAL_BIN} is missing; build the portal first"
        env = {**os.environ, "LOG_LEVEL": os.environ.get("PORTAL_LOG_LEVEL", "info")}
        self.proc = subprocess.Popen(
            [str(PORTAL_BIN), "serve", "--config", str(self.config_path), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=self.folder,
        )
        self.log = LineLog(self.proc.stderr, f"portal:{self.port} stderr")
        self.out = LineLog(self.proc.stdout, f"portal:{self.port} stdout")
        deadline = time.monotonic() + timeout
        try:
            self.log.wait_for(lambda line: '"msg":"mcp-portal listening"' in line, timeout)
            self.log.wait_for(lambda line: '"msg":"mcp-portal ready"' in line, max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM and require a clean exit (status 0) within `timeout`."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        code = _stop_process(proc, timeout)
        assert code is not None, (
            f"mcp-portal did not exit within {timeout}s of SIGTERM (killed)\n{self.log.tail() if self.log else ''}")
        assert code == 0, f"mcp-portal exited with status {code} after SIGTERM\n{self.log.tail() if self.log else ''}"

    # CLI commands against this portal's configuration

    def cli(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        result = subprocess.run([str(PORTAL_BIN), *args], capture_output=True, text=True, timeout=timeout, cwd=self.folder)
        if check:
            assert result.returncode == 0, f"mcp-portal {' '.join(args)} failed ({result.returncode}): {result.stderr}"
        return result

    def audit(self, **filters: str) -> list[dict]:
        args = ["audit", "query", "--config", str(self.config_path), "--json", "--limit", "10000"]
        for key, value in filters.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        result = self.cli(*args)
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def http_client() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120))


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for error in group.exceptions:
        out += _leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    return out


@contextlib.asynccontextmanager
async def unwrapped() -> AsyncIterator[None]:
    """Re-raises the single error inside anyio's exception groups, so a failing
    assertion reads as itself in the test report."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        # The test's own failure first; transport noise from tearing down a
        # session (broken streams, a closed connection) comes second.
        preferred = [e for e in leaves if isinstance(e, (AssertionError, TimeoutError, MCPError))]
        if preferred or len(leaves) == 1:
            raise (preferred or leaves)[0] from group
        raise


@contextlib.asynccontextmanager
async def mcp_session(url: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    """An initialized official-SDK client session over Streamable HTTP."""
    async with unwrapped(), http_client() as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, **callbacks) as session:
                with anyio.fail_after(20):
                    await session.initialize()
                yield session


@contextlib.asynccontextmanager
async def legacy_session(url: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    """An initialized official-SDK client session over the legacy HTTP+SSE transport."""
    async with unwrapped(), sse_client(url, timeout=30, sse_read_timeout=120) as (read, write):
        async with ClientSession(read, write, **callbacks) as session:
            with anyio.fail_after(20):
                await session.initialize()
            yield session


async def list_servers(session: ClientSession) -> dict[str, dict]:
    """`portal_list_servers`, by server id."""
    result = await session.call_tool("portal_list_servers", {})
    assert not result.is_error, result
    return {entry["id"]: entry for entry in result.structured_content["servers"]}


async def tool_names(session: ClientSession) -> set[str]:
    return {tool.name for tool in (await session.list_tools()).tools}


async def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Retries an async `check` until it returns a truthy value or the deadline
    passes; exceptions count as "not yet" and the last one is reported."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            with anyio.fail_after(max(0.5, deadline - time.monotonic())):
                value = await check()
            if value:
                return value
            last = value
        except Exception as error:  # noqa: BLE001 - reported below
            last = error
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await anyio.sleep(interval)


def text_of(result) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


# Upstream server entries for a configuration


def stdio_server(server_id: str, *args: str, **extra) -> dict:
    return {"id": server_id, "command": PYTHON, "args": list(args), **extra}


def time_server(server_id: str = "time") -> dict:
    return stdio_server(server_id, "-m", "mcp_server_time", "--local-timezone", "UTC", env={"FOO": "bar"})


def fault_server(server_id: str, mode: str, **extra) -> dict:
    return stdio_server(server_id, str(PEERS / "fault_stdio.py"), mode, **extra)


# Raw HTTP access for transport-level checks


def parse_sse(body: str) -> list[dict]:
    """The JSON messages of an SSE body, in order."""
    messages = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip() if line.startswith("data:") else None for line in block.split("\n")]
        data = [d for d in data if d is not None]
        if data:
            messages.append(json.loads("\n".join(data)))
    return messages


def messages_of(response: httpx2.Response) -> list[dict]:
    """The JSON-RPC messages of a POST response: one JSON body, or an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return parse_sse(response.text)
    return [response.json()]


class RawSession:
    """A Streamable HTTP session driven by hand over httpx2."""

    def __init__(self, http: httpx2.AsyncClient, url: str):
        self.http = http
        self.url = url
        self.session_id: str | None = None
        self.version = PROTOCOL_VERSION
        self.next_id = 1

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
            headers["MCP-Protocol-Version"] = self.version
        headers.update(extra)
        return headers

    async def initialize(self, version: str = PROTOCOL_VERSION) -> dict:
        body = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "1"}}}
        response = await self.http.post(self.url, json=body, headers=self.headers())
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        result = messages_of(response)[-1]["result"]
        self.version = result["protocolVersion"]
        note = await self.http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self.headers())
        assert note.status_code == 202, note.text
        return result

    async def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx2.Response:
        content = body if isinstance(body, (bytes, str)) else json.dumps(body, separators=(",", ":"))
        return await self.http.post(self.url, content=content, headers=headers if headers is not None else self.headers())

    async def request(self, method: str, params: dict | None = None) -> tuple[dict, list[dict]]:
        """Sends a request; returns its response and every message that came
        before it on the same stream."""
        self.next_id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            body["params"] = params
        response = await self.post(body)
        assert response.status_code == 200, f"{response.status_code}: {response.text}"
        messages = messages_of(response)
        final = [m for m in messages if m.get("id") == self.next_id and ("result" in m or "error" in m)]
        assert final, f"no response to request {self.next_id} in {messages}"
        return final[-1], messages[: messages.index(final[-1])]

    async def call(self, name: str, arguments: dict | None = None) -> dict:
        response, _ = await self.request("tools/call", {"name": name, "arguments": arguments or {}})
        return response


@contextlib.asynccontextmanager
async def raw_session(url: str, version: str = PROTOCOL_VERSION) -> AsyncIterator[RawSession]:
    async with http_client() as http:
        session = RawSession(http, url)
        with anyio.fail_after(20):
            await session.initialize(version)
        yield session
