#!/usr/bin/env python3
"""Code Mode latency and throughput benchmark.

Against the same fast upstream (bench/upstream) and the release portal, in
one run:
  direct call   wrk -> portal: tools/call fast_echo (a normal session)
  execute       wrk -> portal: tools/call portal_codemode_execute, whose code
                makes that same call (a Code Mode session)
with one client (p50 added by Code Mode; target <= 2 ms) and with 8
concurrent clients (executions per second on this machine's cores). Also
what the portal's CPU costs per execution. Run with `bench/run codemode`.
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import DURATION, ROOT, TICKS, cpu_ticks, open_session, start_portal, start_upstream, stop_all, wrk  # noqa: E402

CODE = "async () => codemode.fast_echo({ text: 'hello from the benchmark' })"
EXECUTE = {"code": CODE}


def main():
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: run bench/run, which installs it")
    procs = []
    tmp = tempfile.mkdtemp(prefix="mcp-portal-codemode-bench-")
    try:
        up_port = start_upstream(procs)
        # As many sandboxes as clients, so executions never queue for one.
        port, portal = start_portal(procs, tmp, up_port, extra="codemode: {workers: 8}\n")
        direct = open_session(port, "/mcp")
        code = open_session(port, "/mcp?codemode=search_and_execute")
        # Warm up both paths (JIT, sandbox threads, connections).
        wrk(port, "/mcp", direct, "fast_echo", 2, 1)
        wrk(port, "/mcp", code, "portal_codemode_execute", 8, 2, EXECUTE)

        half = max(3, DURATION // 2)
        single_direct = wrk(port, "/mcp", direct, "fast_echo", 1, half)
        single_code = wrk(port, "/mcp", code, "portal_codemode_execute", 1, half, EXECUTE)
        many_direct = wrk(port, "/mcp", direct, "fast_echo", 8, DURATION)
        before = cpu_ticks(portal.pid)
        many_code = wrk(port, "/mcp", code, "portal_codemode_execute", 8, DURATION, EXECUTE)
        cpu_us = (cpu_ticks(portal.pid) - before) / TICKS / many_code["total"] * 1e6

        added = single_code["p50"] - single_direct["p50"]
        lines = [
            f"Code Mode benchmark: wrk -t1, one fast upstream, all on this machine's {os.cpu_count()} cores.",
            f"The execution runs `{CODE}`.",
            "",
            "| path | clients | calls/s | p50 ms | p99 ms |",
            "|---|---:|---:|---:|---:|",
            f"| direct tools/call | 1 | {single_direct['rps']:.0f} | {single_direct['p50']:.2f} | {single_direct['p99']:.2f} |",
            f"| Code Mode execute (one call) | 1 | {single_code['rps']:.0f} | {single_code['p50']:.2f} | {single_code['p99']:.2f} |",
            f"| direct tools/call | 8 | {many_direct['rps']:.0f} | {many_direct['p50']:.2f} | {many_direct['p99']:.2f} |",
            f"| Code Mode execute (one call) | 8 | {many_code['rps']:.0f} | {many_code['p50']:.2f} | {many_code['p99']:.2f} |",
            "",
            "| measure | value | target |",
            "|---|---:|---:|",
            f"| p50 added by Code Mode, one client | {added:.2f} ms | <= 2 ms |",
            f"| executions/s, 8 clients | {many_code['rps']:.0f} | |",
            f"| executions/s as share of direct calls/s, 8 clients | {many_code['rps'] / many_direct['rps'] * 100:.0f}% | |",
            f"| portal CPU per execution | {cpu_us:.0f} us | |",
        ]
        report = "\n".join(lines)
        print(report)
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        with open(os.path.join(ROOT, "bench", "results", "codemode.md"), "w") as out:
            out.write(report + "\n")
        errors = [r for r in (single_direct, single_code, many_direct, many_code) if r["errors"]]
        if errors:
            sys.exit("non-2xx answers during the benchmark")
        if added > 2.0:
            sys.exit(f"Code Mode added {added:.2f} ms at p50 (target <= 2 ms)")
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
