#!/usr/bin/env python3
"""What a client's tools/list costs in tokens, normal mode vs Code Mode.

For each size N (4, 52, 500, 5000 upstream tools; or the sizes given as
arguments) starts bench/peers/many_tools.py peers with N realistic tools in
all, one portal over them, and lists the tools twice with the official MCP
client: on /mcp (every upstream tool, prefixed) and on
/mcp?codemode=search_and_execute (Code Mode's two tools). Counts the answer's
tokens with tiktoken, o200k_base and cl100k_base, loaded offline from the
files the bpe-openai package ships. Writes bench/results/codemode_tokens.md
and exits non-zero when Code Mode's answer is over 600 o200k tokens or not
the same for every N.

Usage: .venv/bin/python bench/codemode_tokens.py [N ...]
Env: MCP_PORTAL_BIN (default .build/release/mcp-portal, else .build/debug/mcp-portal).
"""
import asyncio
import gzip
import hashlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import httpx2
import yaml
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PaginatedRequestParams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "bench", "peers", "many_tools.py")
SIZES = [4, 52, 500, 5000]
LIMIT = 600  # o200k tokens Code Mode's tools/list may cost, whatever N is
DOMAINS = ["tracker", "wiki", "code", "drive", "chat", "crm", "calendar", "mail", "ci", "monitoring"]
# tiktoken's encodings: where tiktoken would download them, and their SHA-256.
ENCODINGS = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def portal_bin():
    if os.environ.get("MCP_PORTAL_BIN"):
        return os.environ["MCP_PORTAL_BIN"]
    release = os.path.join(ROOT, ".build", "release", "mcp-portal")
    return release if os.path.exists(release) else os.path.join(ROOT, ".build", "debug", "mcp-portal")


def layout(n):
    """(server id, seed, tool count) per peer: 52 as four servers of 13, like
    a tracker, a wiki, a code host and a drive; 500 and 5000 over ten."""
    peers = 1 if n < 52 else 4 if n == 52 else 10
    return [(DOMAINS[i], DOMAINS[i], n // peers + (i < n % peers)) for i in range(peers)]


def encoders(cache_dir):
    """tiktoken encoders from bpe-openai's copies of the official files, put
    where tiktoken's cache looks for them; tiktoken checks their SHA-256, and
    any attempt to download instead fails."""
    import bpe_openai
    import tiktoken
    import tiktoken.load

    def no_download(path):
        raise RuntimeError(f"tiktoken tried to download {path}; the offline copy is missing or wrong")

    tiktoken.load.read_file = no_download
    data = os.path.join(os.path.dirname(bpe_openai.__file__), "data")
    os.makedirs(cache_dir, exist_ok=True)
    os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    out = {}
    for name, sha256 in ENCODINGS.items():
        with gzip.open(os.path.join(data, f"{name}.tiktoken.gz"), "rb") as f:
            blob = f.read()
        if hashlib.sha256(blob).hexdigest() != sha256:
            raise RuntimeError(f"bpe-openai's {name} is not the official file (SHA-256 differs)")
        with open(os.path.join(cache_dir, hashlib.sha1(ENCODING_URL.format(name).encode()).hexdigest()), "wb") as f:
            f.write(blob)
        out[name] = tiktoken.get_encoding(name)
    # Known counts, so a wrong table cannot pass for a right one.
    assert len(out["o200k_base"].encode("hello world")) == 2 and len(out["cl100k_base"].encode("tiktoken is great!")) == 6
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    """A child process whose output lines a thread reads (so pipes never fill)
    and whose lines can be waited for with a deadline."""

    def __init__(self, name, args, env=None, stderr_only=False):
        self.name = name
        self.lines = queue.Queue()
        self.tail = []
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, text=True, env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL if stderr_only else subprocess.PIPE,
                                     stderr=subprocess.PIPE if stderr_only else subprocess.STDOUT)
        stream = self.proc.stderr if stderr_only else self.proc.stdout
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, needle, timeout):
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"{self.name}: no line with {needle!r} within {timeout}s\n" + "\n".join(self.tail[-20:]))
            if line is None:
                raise RuntimeError(f"{self.name} exited ({self.proc.wait()}) before {needle!r}\n" + "\n".join(self.tail[-20:]))
            self.tail = (self.tail + [line])[-50:]
            if needle in line:
                return line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def list_tools(url, session_check=None):
    """Every page of tools/list, as the pages' result objects."""
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300)) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await asyncio.wait_for(session.initialize(), 30)
                pages, cursor = [], None
                while True:
                    params = PaginatedRequestParams(cursor=cursor) if cursor else None
                    result = await asyncio.wait_for(session.list_tools(params=params), 300)
                    page = {"tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in result.tools]}
                    if result.next_cursor:
                        page["nextCursor"] = result.next_cursor
                    pages.append(page)
                    cursor = result.next_cursor
                    if not cursor:
                        break
                extra = await session_check(session) if session_check else None
                return pages, extra


async def codemode_catalog_size(session):
    """How many tools Code Mode's sandbox sees, so a small answer cannot
    come from a catalog that is missing tools."""
    result = await asyncio.wait_for(session.call_tool(
        "portal_codemode_search", {"code": "async () => (await codemode.tools()).length"}), 120)
    if result.is_error:
        raise RuntimeError(f"portal_codemode_search failed: {result.content}")
    return result.structured_content["result"]


def count(encs, pages):
    """Tokens of the tools array (all pages) and of the result objects (summed over pages)."""
    tools = [t for page in pages for t in page["tools"]]
    as_json = lambda value: json.dumps(value, separators=(",", ":"))
    return {name: {"tools": len(enc.encode(as_json(tools))),
                   "result": sum(len(enc.encode(as_json(page))) for page in pages)} for name, enc in encs.items()}, tools


def measure(n, tmp, encs):
    children = []
    try:
        # Peers, all started before any is waited for.
        peers = []
        for server_id, seed, count_ in layout(n):
            port = free_port()
            child = Child(f"peer {server_id}", [sys.executable, PEER, str(port)],
                          env={"TOOL_COUNT": str(count_), "TOOL_SEED": seed, "PYTHONUNBUFFERED": "1"})
            children.append(child)
            peers.append((server_id, port, child))
        for _, _, child in peers:
            child.wait_for("Uvicorn running on", 120)

        folder = os.path.join(tmp, f"n{n}")
        os.makedirs(folder)
        port = free_port()
        config = {
            "listen": {"host": "127.0.0.1", "port": port},
            "storage": {"path": os.path.join(folder, "state")},
            "servers": [{"id": sid, "url": f"http://127.0.0.1:{p}/mcp", "transport": "streamable-http"} for sid, p, _ in peers],
            "portals": [{"id": "default", "servers": [sid for sid, _, _ in peers], "allow_writes": True}],
        }
        path = os.path.join(folder, "portal.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        portal = Child("mcp-portal", [portal_bin(), "serve", "--config", path], env={"LOG_LEVEL": "info"}, stderr_only=True)
        children.append(portal)
        ready = json.loads(portal.wait_for('"msg":"mcp-portal ready"', 180))
        if "unavailable" in json.dumps(ready):
            raise RuntimeError(f"an upstream is unavailable: {ready}")

        base = f"http://127.0.0.1:{port}/mcp"
        normal_pages, _ = asyncio.run(list_tools(base))
        code_pages, seen = asyncio.run(list_tools(base + "?codemode=search_and_execute", codemode_catalog_size))
        normal, normal_tools = count(encs, normal_pages)
        code, code_tools = count(encs, code_pages)
        upstream = [t for t in normal_tools if t["name"].split("_", 1)[0] in {sid for sid, _, _ in peers}]
        if len(upstream) != n:
            raise RuntimeError(f"normal mode lists {len(upstream)} upstream tools, not {n}")
        if seen < n:
            raise RuntimeError(f"Code Mode's catalog has {seen} tools, fewer than the {n} upstream tools")
        per_tool = len(encs["o200k_base"].encode(json.dumps(upstream, separators=(",", ":")))) / n
        return {"n": n, "servers": len(peers), "listed": len(normal_tools), "pages": len(normal_pages), "per_tool": per_tool,
                "code_listed": [t["name"] for t in code_tools], "catalog": seen, "normal": normal, "code": code}
    finally:
        for child in reversed(children):
            child.stop()


def main():
    sizes = [int(a) for a in sys.argv[1:]] or SIZES
    binary = portal_bin()
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: build it (swift build) or set MCP_PORTAL_BIN")
    tmp = tempfile.mkdtemp(prefix="mcp-portal-tokens-")
    try:
        encs = encoders(os.path.join(tmp, "tiktoken"))
        rows = []
        for n in sizes:
            started = time.monotonic()
            rows.append(measure(n, tmp, encs))
            print(f"N={n}: done in {time.monotonic() - started:.1f}s", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    o, c = "o200k_base", "cl100k_base"
    lines = [
        f"Token cost of tools/list, normal mode vs Code Mode (`?codemode=search_and_execute`), portal {os.path.relpath(binary, ROOT)}.",
        "Tools from bench/peers/many_tools.py; tokens of the `tools` array as JSON (all pages), tiktoken offline.",
        "",
        "| upstream tools | servers | normal mode tokens (o200k) | Code Mode tokens (o200k) | ratio (o200k) "
        "| normal mode tokens (cl100k) | Code Mode tokens (cl100k) | ratio (cl100k) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        no, co, nc, cc = r["normal"][o]["tools"], r["code"][o]["tools"], r["normal"][c]["tools"], r["code"][c]["tools"]
        lines.append(f"| {r['n']} | {r['servers']} | {no:,} | {co:,} | {no / co:,.1f}x | {nc:,} | {cc:,} | {nc / cc:,.1f}x |")
    lines += [
        "",
        "Whole tools/list result objects (`{\"tools\": [...]}`, with `nextCursor`, summed over pages), and what was listed:",
        "",
        "| upstream tools | tools listed (normal) | pages (normal) | o200k per upstream tool (normal) "
        "| normal result (o200k) | Code Mode result (o200k) | Code Mode tools | Code Mode catalog size |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['n']} | {r['listed']} | {r['pages']} | {r['per_tool']:.0f} "
                     f"| {r['normal'][o]['result']:,} | {r['code'][o]['result']:,} | {', '.join(r['code_listed'])} | {r['catalog']} |")
    report = "\n".join(lines)
    print(report)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "codemode_tokens.md"), "w") as out:
        out.write(report + "\n")

    costs = {(r["code"][o]["tools"], r["code"][o]["result"]) for r in rows}
    over = [r["n"] for r in rows if max(r["code"][o].values()) > LIMIT]
    if over:
        sys.exit(f"Code Mode's tools/list is over {LIMIT} o200k tokens for N = {over}")
    if len(costs) > 1:
        sys.exit(f"Code Mode's tools/list differs between sizes: {sorted(costs)}")


if __name__ == "__main__":
    main()
