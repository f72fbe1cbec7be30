#!/usr/bin/env python3
"""DLP accuracy and throughput benchmark: our detectors vs Microsoft Presidio, in one run.

    MCP_BENCH_DLP_BIN=/path/to/dlp-bench python3 bench/dlp/run.py [options]

Steps (outputs in bench/results/dlp/, which is gitignored):
  1. messages.jsonl: the MCP message mix, made by make_messages.py if missing.
  2. accuracy: `$BIN accuracy corpus/labeled.jsonl` -> ours.jsonl, and
     presidio_run.py accuracy -> presidio.jsonl (+ .meta.json).
  3. score.py -> score.json and the per-detector table.
  4. throughput, one after the other on an otherwise idle machine:
     `$BIN throughput messages.jsonl --seconds S` (one thread) and
     presidio_run.py throughput (one process, one thread).
  5. report.md and report.json: spaCy model/variant, corpus counts, accuracy
     table, throughput table and the target checks:
       * ours >= 500 MB/s per core
       * ours >= 100 x Presidio's MB/s
       * ours >= Presidio in precision and recall on every type both support
       * recall >= 0.99 for the checksum-backed CREDIT_CARD and IBAN
MB = 10^6 bytes. The MB/s figures are recomputed from each engine's "bytes"
and "seconds" so both use the same unit.

Options:
  --blank               run Presidio on a blank spaCy pipeline (pattern
                        recognizers only) instead of en_core_web_sm
  --seconds S           our throughput time budget (default 10)
  --presidio-seconds S  Presidio's throughput time budget (default 30)
  --presidio-every N    score Presidio on every N-th record only (default 1)
  --mb MB               size of messages.jsonl when it is made (default 32)
  --remake-messages     rebuild messages.jsonl even if it exists
The Presidio side runs with .venv-dlp/bin/python (override: DLP_PYTHON).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "bench" / "results" / "dlp"
CORPUS = HERE / "corpus" / "labeled.jsonl"
MESSAGES = OUT / "messages.jsonl"
TARGET_MBPS, TARGET_RATIO = 500.0, 100.0


def sh(cmd, **kw):
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def single_thread_env():
    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[v] = "1"
    return env


def last_json(text):
    """The last line of `text` that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        try:
            obj = json.loads(line)
            if isinstance(obj, dict):
                return obj
        except ValueError:
            continue
    raise SystemExit("no JSON object in output:\n" + text[-2000:])


def check_predictions(path, corpus):
    """Our binary must write one record per input, with valid offsets."""
    texts = {}
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            texts[r["id"]] = r["text"]
    seen = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            r = json.loads(line)
            if r["id"] not in texts:
                raise SystemExit("%s line %d: unknown id %r" % (path, n, r["id"]))
            seen.add(r["id"])
            for s in r["spans"]:
                if not (0 <= s["start"] < s["end"] <= len(texts[r["id"]])):
                    raise SystemExit("%s line %d: span out of range %r" % (path, n, s))
    if len(seen) != len(texts):
        raise SystemExit("%s covers %d of %d records" % (path, len(seen), len(texts)))


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description="DLP accuracy + throughput: ours vs Presidio")
    ap.add_argument("--blank", action="store_true")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--presidio-seconds", type=float, default=30.0)
    ap.add_argument("--presidio-every", type=int, default=1)
    ap.add_argument("--mb", type=float, default=32.0)
    ap.add_argument("--remake-messages", action="store_true")
    args = ap.parse_args()

    binary = os.environ.get("MCP_BENCH_DLP_BIN")
    if not binary or not os.access(binary, os.X_OK):
        sys.exit("set MCP_BENCH_DLP_BIN to the executable DLP bench binary (got %r)" % binary)
    py = os.environ.get("DLP_PYTHON", str(ROOT / ".venv-dlp" / "bin" / "python"))
    if not os.access(py, os.X_OK):
        sys.exit("no Python for Presidio at %s: python3.11 -m venv .venv-dlp && "
                 ".venv-dlp/bin/pip install -r bench/dlp/requirements.txt (or set DLP_PYTHON)" % py)
    OUT.mkdir(parents=True, exist_ok=True)
    blank = ["--blank"] if args.blank else []
    started = time.time()

    # 1. messages
    if args.remake_messages or not MESSAGES.exists():
        sh([sys.executable, HERE / "make_messages.py", "--corpus", CORPUS, "--out", MESSAGES, "--mb", args.mb])
    msg_count = sum(1 for _ in open(MESSAGES, encoding="utf-8"))
    msg_bytes = MESSAGES.stat().st_size - msg_count      # without the newlines

    # 2. accuracy
    ours_pred, pres_pred = OUT / "ours.jsonl", OUT / "presidio.jsonl"
    t = time.perf_counter()
    with open(ours_pred, "w") as f:
        sh([binary, "accuracy", CORPUS], stdout=f)
    ours_acc_s = time.perf_counter() - t
    check_predictions(ours_pred, CORPUS)
    t = time.perf_counter()
    sh([py, HERE / "presidio_run.py", *blank, "accuracy", CORPUS, pres_pred, "--every", args.presidio_every],
       env=single_thread_env())
    pres_acc_s = time.perf_counter() - t
    pres_meta = json.loads(Path(str(pres_pred) + ".meta.json").read_text())

    # 3. score
    score_json = OUT / "score.json"
    scored = sh([sys.executable, HERE / "score.py", CORPUS, ours_pred, pres_pred, "--json", score_json],
                stdout=subprocess.PIPE, text=True).stdout
    print(scored)
    score = json.loads(score_json.read_text())

    # 4. throughput, one engine at a time
    ours_tp = last_json(sh([binary, "throughput", MESSAGES, "--seconds", args.seconds],
                           stdout=subprocess.PIPE, text=True).stdout)
    pres_tp = last_json(sh([py, HERE / "presidio_run.py", *blank, "throughput", MESSAGES, "--seconds",
                            args.presidio_seconds], stdout=subprocess.PIPE, text=True, env=single_thread_env()).stdout)
    ours_mbps = ours_tp["bytes"] / ours_tp["seconds"] / 1e6
    pres_mbps = pres_tp["bytes"] / pres_tp["seconds"] / 1e6
    parse_mbps = ours_tp.get("parse_mb_per_s")
    ratio = ours_mbps / pres_mbps if pres_mbps else float("inf")
    parse_ratio = parse_mbps / pres_mbps if parse_mbps and pres_mbps else None

    # 5. checks and report
    ge = score["checks"]["ours_ge_presidio"]
    cs = score["checks"]["checksum_recall"].get("ours", {})
    checks = [
        ("ours >= %.0f MB/s per core (scan of parsed messages)" % TARGET_MBPS, ours_mbps >= TARGET_MBPS,
         "%.1f MB/s" % ours_mbps),
        ("ours >= %.0f x Presidio (scan of parsed messages)" % TARGET_RATIO, ratio >= TARGET_RATIO, "%.0f x" % ratio),
    ]
    if parse_mbps is not None:
        checks += [
            ("ours >= %.0f MB/s per core including JSON parsing" % TARGET_MBPS, parse_mbps >= TARGET_MBPS,
             "%.1f MB/s" % parse_mbps),
            ("ours >= %.0f x Presidio including JSON parsing" % TARGET_RATIO, parse_ratio >= TARGET_RATIO,
             "%.0f x" % parse_ratio),
        ]
    for t_, v in ge.items():
        checks.append(("accuracy >= Presidio on %s (precision and recall)" % t_, v["pass"],
                       "P %s R %s" % ("ok" if v["precision"] else "lower", "ok" if v["recall"] else "lower")))
    for t_, v in cs.items():
        checks.append(("checksum-backed %s recall >= 0.99" % t_, v["pass"],
                       "%.3f" % v["recall"] if v["recall"] is not None else "-"))

    stats_path = CORPUS.parent / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    variant = pres_meta.get("description", "?")
    lines = [
        "# DLP benchmark: mcp-portal detectors vs Microsoft Presidio",
        "",
        "Run %s on %s (%d cores), %.0f s in all." % (
            datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), cpu_model(), os.cpu_count() or 0, time.time() - started),
        "",
        "## Setup",
        "",
        "* Ours: `%s` (all built-in detectors)." % binary,
        "* Presidio: presidio-analyzer %s, default recognizers and score threshold, NLP: **%s** (%s)." % (
            pres_meta.get("presidio_analyzer", "?"), variant,
            "model checked: RECORD hashes and pinned sha256 verified, pipeline %s" % pres_meta.get("pipeline")
            if pres_meta.get("variant") == "model" else "blank pipeline, pattern recognizers only"),
        "* Presidio supports, of our types: %s." % ", ".join(pres_meta.get("supported_ours", [])),
        "* Accuracy corpus: `bench/dlp/corpus/labeled.jsonl`, %d records (%s); gold spans per type: %s." % (
            stats.get("records", 0), ", ".join("%s %d" % kv for kv in stats.get("per_source", {}).items()),
            ", ".join("%s %d" % kv for kv in stats.get("per_entity", {}).items())),
        "* Presidio accuracy run: %d records in %.0f s%s; ours: %.1f s." % (
            pres_meta.get("records", 0), pres_acc_s,
            " (every %d-th record)" % args.presidio_every if args.presidio_every > 1 else "", ours_acc_s),
        "* Throughput corpus: `bench/results/dlp/messages.jsonl`, %d MCP messages, %.1f MB." % (msg_count, msg_bytes / 1e6),
        "",
        "## Accuracy",
        "",
        "Matching: same entity and overlapping a not-yet-matched gold span, one to one. "
        "Flags: ours ≥ Presidio in precision, recall, F1.",
        "",
        score["markdown"],
        "",
        "False positives by source:",
        "",
        score["fp_by_source_markdown"],
        "",
        "## Throughput (one core each)",
        "",
        "| engine | MB/s | bytes | seconds | messages | note |",
        "|---|---|---|---|---|---|",
        "| ours, scan of parsed messages | %.1f | %d | %.2f | %s | passes %s, findings/pass %s |" % (
            ours_mbps, ours_tp["bytes"], ours_tp["seconds"], ours_tp.get("messages"), ours_tp.get("passes"),
            ours_tp.get("findings_per_pass")),
    ]
    if parse_mbps is not None:
        lines.append("| ours, including JSON parsing | %.1f | | | | as reported by the binary |" % parse_mbps)
    lines += [
        "| Presidio (%s) | %.4f | %d | %.2f | %d | raw JSON line per message |" % (
            pres_tp.get("variant"), pres_mbps, pres_tp["bytes"], pres_tp["seconds"], pres_tp["messages"]),
        "",
        "Ratio ours / Presidio: **%.0f x** (scan)%s." % (
            ratio, "; %.0f x including JSON parsing" % parse_ratio if parse_ratio else ""),
        "",
        "## Targets",
        "",
        "| target | result | value |",
        "|---|---|---|",
    ]
    lines += ["| %s | %s | %s |" % (name, "PASS" if ok else "FAIL", val) for name, ok, val in checks]
    report = "\n".join(lines) + "\n"
    (OUT / "report.md").write_text(report)
    (OUT / "report.json").write_text(json.dumps({
        "ours_throughput": ours_tp, "presidio_throughput": pres_tp, "ours_mb_per_s": ours_mbps,
        "presidio_mb_per_s": pres_mbps, "ratio": ratio, "parse_ratio": parse_ratio, "presidio_meta": pres_meta,
        "accuracy_seconds": {"ours": ours_acc_s, "presidio": pres_acc_s},
        "checks": [{"target": n, "pass": ok, "value": v} for n, ok, v in checks], "corpus": stats,
    }, indent=2) + "\n")
    print(report)
    print("wrote %s" % (OUT / "report.md"))
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
