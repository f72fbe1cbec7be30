#!/usr/bin/env python3
"""Build the DLP throughput corpus: a realistic mix of MCP JSON-RPC messages.

    python3 bench/dlp/make_messages.py [--corpus bench/dlp/corpus/labeled.jsonl]
        [--out bench/results/dlp/messages.jsonl] [--mb 32] [--seed N]

Deterministic for a given corpus, --mb and --seed. One compact JSON message
per line (UTF-8, no ASCII escaping, as the MCP SDKs send them). The texts
come from labeled.jsonl (PII templates, secrets, code, logs, prose), so the
mix holds personal data and secrets at the corpus' rate. Message kinds, by
share of messages:

    tools/call requests    wiki edits, ticket comments, CRM notes, searches
    tool results           content[{type: text}] with corpus text
    structured results     structuredContent with people / ticket records
    resources/read         text contents, ~15% as base64 blobs of text
    prompts/get            messages with user / assistant text
    tools/list results     tools with realistic input schemas
    negative results       tool results with code or log text only
    protocol               initialize, ping, list requests, notifications

Sizes: drawn log-normally (median about 3 KB), from a few hundred bytes up to
64 KiB. Prints the count, total size and size percentiles per kind.
Needs only the Python standard library.
"""
import argparse
import base64
import json
import math
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 64 * 1024
KINDS = [  # (kind, weight)
    ("tools_call", 24), ("tool_result", 24), ("structured", 12), ("resource_read", 12),
    ("prompt_get", 6), ("tools_list", 5), ("negative_result", 13), ("protocol", 4),
]
PROTOCOL_VERSION = "2025-06-18"


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class Builder:
    def __init__(self, records, rng):
        self.rng = rng
        self.by_source = defaultdict(list)
        for r in records:
            self.by_source[r["source"]].append(r)
        self.pii = self.by_source["template"] + self.by_source["secret"]
        self.neg = self.by_source["negative-code"] + self.by_source["negative-log"] + self.by_source["negative-prose"]
        self.next_id = 1

    # -- helpers
    def rid(self):
        self.next_id += 1
        return self.next_id

    def size(self):
        """Target message size: log-normal, median ~3 KB, within [300, 64 KiB)."""
        return int(min(MAX_BYTES - 2048, max(300, self.rng.lognormvariate(math.log(3000), 1.0))))

    def pick(self, pool=None):
        pool = pool or (self.pii if self.rng.random() < 0.55 else self.neg)
        return self.rng.choice(pool)

    def text(self, target, pool=None, sep="\n\n"):
        """Corpus texts joined until about `target` characters."""
        parts, n = [], 0
        while n < target:
            t = self.pick(pool)["text"]
            parts.append(t)
            n += len(t) + len(sep)
        return sep.join(parts)

    def values(self, entity):
        """Gold values of one entity type, for structured fields."""
        r = self.rng.choice(self.pii)
        for s in r["spans"]:
            if s["entity"] == entity:
                return r["text"][s["start"]:s["end"]]
        return None

    def short(self):
        t = self.rng.choice(self.by_source["template"])["text"]
        return t[:200]

    # -- message kinds
    def tools_call(self):
        target = self.size()
        kind = self.rng.choice(["wiki", "ticket", "crm", "search", "email_draft"])
        if kind == "wiki":
            args = {"space": "ENG", "page": "Runbooks/%s" % self.rng.choice(["Deploy", "Oncall", "Billing", "Access"]),
                    "content": self.text(target), "summary": self.short()[:80], "minor_edit": self.rng.random() < 0.3}
            name = "wiki_update_page"
        elif kind == "ticket":
            args = {"ticket_id": self.rng.randint(1000, 99999), "body": self.text(target), "internal": self.rng.random() < 0.5,
                    "attachments": []}
            name = "helpdesk_add_comment"
        elif kind == "crm":
            args = {"contact_id": "c_%06d" % self.rng.randint(0, 999999), "note": self.text(target, self.pii),
                    "tags": self.rng.sample(["vip", "billing", "churn-risk", "renewal", "support"], 2)}
            name = "crm_add_note"
        elif kind == "email_draft":
            args = {"subject": self.short()[:60], "body": self.text(target, self.pii), "send": False}
            name = "mail_create_draft"
        else:
            args = {"query": self.short(), "limit": self.rng.choice([10, 20, 50]), "filters": {"updated_after": "2024-01-01"}}
            name = self.rng.choice(["search_query", "docs_search", "tickets_search"])
        return {"jsonrpc": "2.0", "id": self.rid(), "method": "tools/call",
                "params": {"name": name, "arguments": args, "_meta": {"progressToken": self.rid()}}}

    def tool_result(self, pool=None):
        target = self.size()
        blocks = []
        remaining = target
        while remaining > 0:
            t = self.text(min(remaining, self.rng.randint(200, 8000)), pool)
            blocks.append({"type": "text", "text": t})
            remaining -= len(t)
        return {"jsonrpc": "2.0", "id": self.rid(), "result": {"content": blocks, "isError": False}}

    def person(self):
        p = {"id": "p_%06d" % self.rng.randint(0, 999999), "note": self.pick(self.by_source["template"])["text"],
             "status": self.rng.choice(["active", "inactive", "pending"]), "updated_at": "2024-%02d-%02dT10:00:00Z" % (
                 self.rng.randint(1, 12), self.rng.randint(1, 28))}
        for field, entity in (("email", "EMAIL"), ("phone", "PHONE"), ("iban", "IBAN"), ("ssn", "US_SSN"),
                              ("ni_number", "UK_NINO"), ("last_ip", "IP_ADDRESS"), ("card", "CREDIT_CARD")):
            if self.rng.random() < 0.35:
                v = self.values(entity)
                if v:
                    p[field] = v
        return p

    def ticket(self):
        return {"id": self.rng.randint(1000, 99999), "title": self.short()[:70],
                "description": self.text(self.rng.randint(100, 1500)),
                "priority": self.rng.choice(["low", "normal", "high"]),
                "comments": [{"author_id": self.rng.randint(1, 500), "body": self.pick()["text"]}
                             for _ in range(self.rng.randint(0, 4))]}

    def structured(self):
        target = self.size()
        kind = self.rng.choice(["people", "tickets"])
        items, n = [], 0
        while n < target / 2:      # text block + structuredContent hold the same data
            item = self.person() if kind == "people" else self.ticket()
            items.append(item)
            n += len(dumps(item))
        data = {kind: items, "total": len(items), "next_cursor": None}
        return {"jsonrpc": "2.0", "id": self.rid(),
                "result": {"content": [{"type": "text", "text": dumps(data)}], "structuredContent": data, "isError": False}}

    def resource_read(self):
        target = self.size()
        r = self.pick()
        src = r["source"]
        pool = self.by_source[src] if src.startswith("negative") else self.pii
        text = self.text(target, pool)
        ext, mime = {"negative-code": ("py", "text/x-python"), "negative-log": ("log", "text/plain"),
                     "negative-prose": ("md", "text/markdown")}.get(src, ("txt", "text/plain"))
        uri = "file:///srv/share/%s/%d.%s" % (self.rng.choice(["docs", "exports", "notes", "src"]), self.rng.randint(1, 9999), ext)
        content = {"uri": uri, "mimeType": mime}
        if self.rng.random() < 0.15:
            content["blob"] = base64.b64encode(text.encode()).decode()
            content["mimeType"] = "application/octet-stream"
        else:
            content["text"] = text
        return {"jsonrpc": "2.0", "id": self.rid(), "result": {"contents": [content]}}

    def prompt_get(self):
        target = self.size()
        msgs, n = [], 0
        while n < target:
            t = self.text(self.rng.randint(100, 3000))
            msgs.append({"role": self.rng.choice(["user", "assistant"]), "content": {"type": "text", "text": t}})
            n += len(t)
        return {"jsonrpc": "2.0", "id": self.rid(),
                "result": {"description": "Summarize the ticket thread for the on-call engineer", "messages": msgs}}

    def tool(self):
        name = "%s_%s" % (self.rng.choice(["wiki", "helpdesk", "crm", "git", "files", "search", "db", "mail", "calendar"]),
                          self.rng.choice(["get", "list", "update", "create", "search", "delete", "comment", "export"]))
        desc = self.rng.choice(self.by_source["negative-prose"])["text"][:self.rng.randint(80, 600)]
        props = {}
        for _ in range(self.rng.randint(1, 8)):
            pname = self.rng.choice(["id", "query", "limit", "cursor", "path", "content", "title", "labels", "since",
                                     "include_archived", "format", "page", "owner", "branch", "timeout_ms"])
            ptype = self.rng.choice(["string", "integer", "boolean", "array"])
            spec = {"type": ptype, "description": self.rng.choice(self.by_source["negative-prose"])["text"][:120]}
            if ptype == "array":
                spec["items"] = {"type": "string"}
            if ptype == "integer":
                spec.update({"minimum": 0, "maximum": self.rng.choice([100, 1000, 65535])})
            if ptype == "string" and self.rng.random() < 0.2:
                spec["enum"] = ["json", "markdown", "csv"]
            props[pname] = spec
        return {"name": name, "title": name.replace("_", " ").title(), "description": desc,
                "inputSchema": {"type": "object", "properties": props, "required": list(props)[:1],
                                "additionalProperties": False},
                "annotations": {"readOnlyHint": self.rng.random() < 0.5}}

    def tools_list(self):
        target = self.size()
        tools, n = [], 0
        while n < target:
            t = self.tool()
            tools.append(t)
            n += len(dumps(t))
        return {"jsonrpc": "2.0", "id": self.rid(), "result": {"tools": tools}}

    def negative_result(self):
        src = self.rng.choice(["negative-code", "negative-log"])
        return self.tool_result(self.by_source[src])

    def protocol(self):
        k = self.rng.randrange(5)
        if k == 0:
            return {"jsonrpc": "2.0", "id": self.rid(), "method": "initialize",
                    "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {"roots": {"listChanged": True}, "sampling": {}},
                               "clientInfo": {"name": "claude-desktop", "version": "0.9.%d" % self.rng.randint(0, 9)}}}
        if k == 1:
            return {"jsonrpc": "2.0", "id": self.rid(), "result": {
                "protocolVersion": PROTOCOL_VERSION, "capabilities": {"tools": {"listChanged": True}, "resources": {}, "prompts": {}},
                "serverInfo": {"name": "mcp-portal", "version": "1.%d.0" % self.rng.randint(0, 9)},
                "instructions": self.rng.choice(self.by_source["negative-prose"])["text"][:400]}}
        if k == 2:
            return {"jsonrpc": "2.0", "id": self.rid(), "method": self.rng.choice(["tools/list", "resources/list", "prompts/list"]),
                    "params": {"cursor": None} if self.rng.random() < 0.5 else {}}
        if k == 3:
            return {"jsonrpc": "2.0", "method": "notifications/initialized"}
        return {"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": self.rid(), "progress": self.rng.randint(1, 99), "total": 100}}


def main():
    ap = argparse.ArgumentParser(description="Build the MCP message mix for the DLP throughput benchmark.")
    ap.add_argument("--corpus", default=str(ROOT / "bench/dlp/corpus/labeled.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "bench/results/dlp/messages.jsonl"))
    ap.add_argument("--mb", type=float, default=32.0, help="total size in MB (10^6 bytes)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    records = [json.loads(line) for line in open(args.corpus, encoding="utf-8")]
    rng = random.Random(args.seed)
    b = Builder(records, rng)
    kinds, weights = zip(*KINDS)
    limit = int(args.mb * 1e6)
    sizes = defaultdict(list)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    with open(out, "w", encoding="utf-8") as f:
        while total < limit:
            kind = rng.choices(kinds, weights)[0]
            line = dumps(getattr(b, kind)())
            n = len(line.encode())
            if n > MAX_BYTES:       # keep every message under 64 KiB
                continue
            f.write(line + "\n")
            total += n
            sizes[kind].append(n)

    def pct(v, q):
        v = sorted(v)
        return v[min(len(v) - 1, int(q * len(v)))]

    everything = [n for v in sizes.values() for n in v]
    print("wrote %s: %d messages, %.1f MB" % (out, len(everything), total / 1e6))
    print("%-16s %7s %9s %8s %8s %8s" % ("kind", "count", "MB", "p10", "median", "max"))
    for kind, _ in KINDS:
        v = sizes[kind]
        if v:
            print("%-16s %7d %9.2f %8d %8d %8d" % (kind, len(v), sum(v) / 1e6, pct(v, 0.1), pct(v, 0.5), max(v)))
    print("%-16s %7d %9.2f %8d %8d %8d" % ("all", len(everything), total / 1e6, pct(everything, 0.1),
                                             pct(everything, 0.5), max(everything)))


if __name__ == "__main__":
    main()
