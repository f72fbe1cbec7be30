#!/usr/bin/env python3
"""Portal throughput, latency, CPU and memory benchmark.

Measures, in one run and against the same fast upstream (bench/upstream):
  direct     wrk -> upstream
  portal     wrk -> mcp-portal (routing + audit on) -> upstream
  fastmcp    wrk -> FastMCP's proxy (one reused backend client) -> upstream
and reports calls/s, p50/p99, the portal's own CPU per call from
/proc/<pid>/stat, the ratios, the p50 added with a single client, and the
portal's idle RSS and memory per open session. Release builds; run with
`bench/run` (which builds and installs what is missing).
"""
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, ".build", "release")
DURATION = int(os.environ.get("BENCH_SECONDS", "20"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
TICKS = os.sysconf("SC_CLK_TCK")


def median_run(runs):
    """The run with the median calls/s."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(proc, needle, deadline=60):
    end = time.monotonic() + deadline
    for line in proc.stdout:
        if needle in line:
            return
        if time.monotonic() > end:
            break
    raise RuntimeError(f"never saw {needle!r}")


def wait_for_port(port, deadline=60):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def mcp_post(conn, path, body, session=None):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    if session:
        headers["Mcp-Session-Id"] = session
    conn.request("POST", path, json.dumps(body), headers)
    response = conn.getresponse()
    data = response.read()
    return response, data


def open_session(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    response, _ = mcp_post(conn, path, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    session = response.getheader("Mcp-Session-Id")
    mcp_post(conn, path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    conn.close()
    return session


def wrk(port, path, session, tool, connections, duration, arguments=None):
    """wrk posting one tools/call over and over; every answer must carry the
    benchmark's text (by default the echo tool's argument)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments or {"text": "hello from the benchmark"}}})
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    if session:
        headers["Mcp-Session-Id"] = session
    lua.write('wrk.method = "POST"\n')
    lua.write(f"wrk.body = {json.dumps(body)}\n")
    for k, v in headers.items():
        lua.write(f'wrk.headers["{k}"] = "{v}"\n')
    lua.write("""
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "hello from the benchmark", 1, true) then
    bad = (bad or 0) + 1
    if bad == 1 then io.stderr:write("unexpected answer: " .. status .. " " .. body .. "\\n") end
  end
end
""")
    lua.close()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", lua.name,
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True)
    os.unlink(lua.name)
    if "unexpected answer" in out.stderr:
        raise RuntimeError(out.stderr.strip().splitlines()[0])
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", text, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return {"rps": rps, "total": total, "p50": pct(50), "p99": pct(99), "errors": int(errors.group(1)) if errors else 0}


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_upstream(procs):
    port = free_port()
    upstream = subprocess.Popen([os.path.join(RELEASE, "mcp-bench-upstream"), str(port)], stdout=subprocess.PIPE, text=True)
    procs.append(upstream)
    wait_for_line(upstream, "listening")
    return port


def start_portal(procs, tmp, up_port, extra=""):
    """The release portal with the bench upstream as server `fast`; returns its port and process."""
    portal_port = free_port()
    config = os.path.join(tmp, "portal.yaml")
    with open(config, "w") as f:
        f.write(f"""listen: {{host: 127.0.0.1, port: {portal_port}}}
storage: {{path: {tmp}/state}}
servers:
  - id: fast
    url: http://127.0.0.1:{up_port}/mcp
    transport: streamable-http
portals:
  - id: default
    servers: [fast]
{extra}""")
    portal = subprocess.Popen([os.path.join(RELEASE, "mcp-portal"), "serve", "--config", config],
                              stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              env={**os.environ, "LOG_LEVEL": "warning"})
    procs.append(portal)
    # LOG_LEVEL=warning hides the ready line; wait on the port and readiness instead.
    wait_for_port(portal_port)
    end = time.monotonic() + 30
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", portal_port)
        conn.request("GET", "/readyz")
        if conn.getresponse().status == 200:
            break
        if time.monotonic() > end:
            raise RuntimeError("portal never became ready")
        time.sleep(0.05)
    return portal_port, portal


def stop_all(procs):
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    for tool in ("wrk",):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run bench/run, which installs it")
    procs = []
    tmp = tempfile.mkdtemp(prefix="mcp-portal-bench-")
    try:
        proxy_port = free_port()
        up_port = start_upstream(procs)
        portal_port, portal = start_portal(procs, tmp, up_port)
        idle_rss = rss_kib(portal.pid)
        # Sessions first, on a quiet heap, so their memory is not hidden by what the load frees.
        for _ in range(SESSIONS):
            open_session(portal_port, "/mcp")
        sessions_rss = rss_kib(portal.pid)

        proxy = subprocess.Popen([os.path.join(ROOT, ".venv", "bin", "python"), os.path.join(ROOT, "bench", "fastmcp_proxy.py"),
                                  f"http://127.0.0.1:{up_port}/mcp", str(proxy_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proxy)
        wait_for_port(proxy_port)

        results = {}
        direct_session = open_session(up_port, "/mcp")
        portal_session = open_session(portal_port, "/mcp")
        proxy_session = open_session(proxy_port, "/mcp")
        # Warm up each path.
        wrk(up_port, "/mcp", direct_session, "echo", 4, 1)
        wrk(portal_port, "/mcp", portal_session, "fast_echo", 4, 1)
        wrk(proxy_port, "/mcp", proxy_session, "echo", 4, 1)
        # The machine is shared and its speed drifts: the three paths take
        # turns in short rounds, and each ratio is the median of the rounds'.
        rounds = {"direct": [], "portal": [], "fastmcp": []}
        portal_cpu = 0.0
        slice_seconds = max(2, DURATION // ROUNDS)
        for _ in range(ROUNDS):
            rounds["direct"].append(wrk(up_port, "/mcp", direct_session, "echo", CONNECTIONS, slice_seconds))
            before = cpu_ticks(portal.pid)
            rounds["portal"].append(wrk(portal_port, "/mcp", portal_session, "fast_echo", CONNECTIONS, slice_seconds))
            portal_cpu += (cpu_ticks(portal.pid) - before) / TICKS
            rounds["fastmcp"].append(wrk(proxy_port, "/mcp", proxy_session, "echo", CONNECTIONS, slice_seconds))
        results = {name: median_run(runs) for name, runs in rounds.items()}
        share = statistics.median(p["rps"] / d["rps"] for p, d in zip(rounds["portal"], rounds["direct"]))
        versus = statistics.median(p["rps"] / f["rps"] for p, f in zip(rounds["portal"], rounds["fastmcp"]))
        singles = []
        for _ in range(ROUNDS):
            single_direct = wrk(up_port, "/mcp", direct_session, "echo", 1, max(2, slice_seconds // 2))
            single_portal = wrk(portal_port, "/mcp", portal_session, "fast_echo", 1, max(2, slice_seconds // 2))
            singles.append(single_portal["p50"] - single_direct["p50"])
        added = statistics.median(singles)

        d, p, f = results["direct"], results["portal"], results["fastmcp"]
        cpu_us = portal_cpu / sum(r["total"] for r in rounds["portal"]) * 1e6
        rows = [
            ("direct (wrk -> upstream)", d), ("mcp-portal (routing + audit)", p), ("FastMCP proxy", f),
        ]
        lines = [
            f"Benchmark: wrk -t1 -c{CONNECTIONS}, tools/call on one fast upstream, all on this machine's {os.cpu_count()} cores;",
            f"{ROUNDS} rounds of {slice_seconds} s per path, taking turns; each row is the median round, each ratio the median of the rounds' ratios.",
            "",
            "| path | calls/s | p50 ms | p99 ms | vs direct |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, r in rows:
            lines.append(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps'] / d['rps'] * 100:.0f}% |")
        lines += [
            "",
            "| measure | value | target |",
            "|---|---:|---:|",
            f"| portal calls/s as share of direct | {share * 100:.0f}% | >= 40% |",
            f"| portal CPU per call | {cpu_us:.0f} us | <= 40 us |",
            f"| portal vs FastMCP proxy | {versus:.1f}x | >= 50x |",
            f"| p50 added, single client | {added:.3f} ms | <= 0.2 ms |",
            f"| idle RSS | {idle_rss / 1024:.1f} MiB | |",
            f"| memory per open session ({SESSIONS} sessions) | {(sessions_rss - idle_rss) / SESSIONS:.1f} KiB | |",
        ]
        report = "\n".join(lines)
        print(report)
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        with open(os.path.join(ROOT, "bench", "results", "latest.md"), "w") as out:
            out.write(report + "\n")
        bad = [name for name, runs in rounds.items() if any(r["errors"] for r in runs)]
        if bad:
            sys.exit(f"non-2xx answers on: {', '.join(bad)}")
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
