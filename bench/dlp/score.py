#!/usr/bin/env python3
"""Score our DLP detectors and Presidio against the labeled corpus.

    python3 bench/dlp/score.py labeled.jsonl ours.jsonl presidio.jsonl [--json out.json]
        [--presidio-meta presidio.jsonl.meta.json]

Either prediction file may be "-" to score the other alone. Prediction files
hold one {"id": n, "spans": [{"entity", "start", "end"}]} per record
(code-point offsets). Records missing from a prediction file are skipped for
both engines (scoring runs on the ids that every given engine covered), so a
subsampled Presidio run is compared like for like.

Matching rule: per record and entity type, a predicted span is a true positive
when it has the same entity as a gold span that it overlaps (shares at least
one character) and that gold span is not yet matched; each gold span matches
at most one prediction and each prediction at most one gold span (predictions
taken in start order, each matched to the unmatched overlapping gold span with
the largest overlap). Unmatched predictions are false positives, unmatched
gold spans false negatives. Precision = TP/(TP+FP) ("-" when nothing was
predicted), recall = TP/(TP+FN).

Checks printed:
  * "both support": types that Presidio's configuration supports (from the
    meta file presidio_run.py writes, else EMAIL, PHONE, CREDIT_CARD, IBAN,
    US_SSN, IP_ADDRESS). On those, ours >= Presidio is judged on precision
    and recall separately (both must hold), with F1 shown too.
  * checksum-backed detectors, CREDIT_CARD (Luhn) and IBAN (mod 97): our
    recall >= 0.99.
Needs only the Python standard library.
"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

PII = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "UK_NINO", "IP_ADDRESS"]
SECRETS = ["AWS_ACCESS_KEY", "AWS_SECRET_KEY", "GITHUB_TOKEN", "GITLAB_TOKEN", "SLACK_TOKEN", "STRIPE_KEY",
           "GOOGLE_API_KEY", "PRIVATE_KEY", "JWT", "GENERIC_SECRET"]
TYPES = PII + SECRETS            # MCP_METHOD / MCP_PROTOCOL_VERSION are ignored
CHECKSUM = ["CREDIT_CARD", "IBAN"]
PRESIDIO_DEFAULT_SUPPORT = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS"]
RECALL_TARGET = 0.99


def load(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out[r["id"]] = r
    return out


def match(gold, pred):
    """One-to-one overlap matching of same-entity spans. Returns (tp, fp_spans, fn_spans)."""
    tp, fps = [], []
    used = set()
    for p in sorted(pred, key=lambda s: (s["start"], s["end"])):
        best, best_ov = None, 0
        for i, g in enumerate(gold):
            if i in used or g["entity"] != p["entity"]:
                continue
            ov = min(p["end"], g["end"]) - max(p["start"], g["start"])
            if ov > best_ov:
                best, best_ov = i, ov
        if best is None:
            fps.append(p)
        else:
            used.add(best)
            tp.append(p)
    fns = [g for i, g in enumerate(gold) if i not in used]
    return tp, fps, fns


def ratio(a, b):
    return None if b == 0 else a / b


def f1(p, r):
    if p is None or r is None or p + r == 0:
        return None if p is None or r is None else 0.0
    return 2 * p * r / (p + r)


def score(gold, preds, ids):
    """Per entity TP/FP/FN, FPs by source, and a few example errors."""
    c = {t: {"tp": 0, "fp": 0, "fn": 0, "fp_by_source": defaultdict(int), "fn_examples": [], "fp_examples": []}
         for t in TYPES}
    for i in ids:
        g = gold[i]
        gspans = [s for s in g["spans"] if s["entity"] in c]
        pspans = [s for s in preds[i]["spans"] if s["entity"] in c]
        tp, fps, fns = match(gspans, pspans)
        for s in tp:
            c[s["entity"]]["tp"] += 1
        for s in fps:
            e = c[s["entity"]]
            e["fp"] += 1
            e["fp_by_source"][g["source"]] += 1
            if len(e["fp_examples"]) < 8:
                e["fp_examples"].append({"id": i, "text": g["text"][max(0, s["start"] - 30):s["end"] + 30],
                                         "found": g["text"][s["start"]:s["end"]]})
        for s in fns:
            e = c[s["entity"]]
            e["fn"] += 1
            if len(e["fn_examples"]) < 8:
                e["fn_examples"].append({"id": i, "missed": g["text"][s["start"]:s["end"]]})
    for t, e in c.items():
        e["precision"] = ratio(e["tp"], e["tp"] + e["fp"])
        e["recall"] = ratio(e["tp"], e["tp"] + e["fn"])
        e["f1"] = f1(e["precision"], e["recall"])
        e["fp_by_source"] = dict(e["fp_by_source"])
    return c


def fmt(x):
    return "-" if x is None else "%.3f" % x


def ge(a, b):
    """a >= b for scores where None means 'nothing predicted' (treated as 0 for recall/F1, 1 for precision)."""
    return (a if a is not None else 0.0) >= (b if b is not None else 0.0) - 1e-12


def main():
    ap = argparse.ArgumentParser(description="Per-detector precision/recall, ours vs Presidio.")
    ap.add_argument("labeled")
    ap.add_argument("ours", help='our predictions, or "-"')
    ap.add_argument("presidio", help='Presidio predictions, or "-"')
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--presidio-meta", help="meta file of the Presidio run (default: PRESIDIO.meta.json)")
    args = ap.parse_args()

    gold = load(args.labeled)
    engines = {}
    if args.ours != "-":
        engines["ours"] = load(args.ours)
    if args.presidio != "-":
        engines["presidio"] = load(args.presidio)
    if not engines:
        sys.exit("nothing to score")
    ids = sorted(set(gold).intersection(*[set(p) for p in engines.values()]))

    support = PRESIDIO_DEFAULT_SUPPORT
    meta = None
    meta_path = args.presidio_meta or (args.presidio + ".meta.json" if args.presidio != "-" else None)
    if meta_path and Path(meta_path).exists():
        meta = json.loads(Path(meta_path).read_text())
        support = meta.get("supported_ours", support)

    results = {name: score(gold, preds, ids) for name, preds in engines.items()}
    gold_count = {t: sum(1 for i in ids for s in gold[i]["spans"] if s["entity"] == t) for t in TYPES}

    # ---- markdown table
    names = list(engines)
    head = ["entity", "gold", "both support"]
    for n in names:
        head += ["%s TP" % n, "%s FP" % n, "%s FN" % n, "%s P" % n, "%s R" % n, "%s F1" % n]
    if len(names) == 2:
        head += ["ours ≥ presidio (P, R, F1)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    checks = {"ours_ge_presidio": {}, "checksum_recall": {}}
    for t in TYPES:
        both = t in support
        row = [t + (" (checksum)" if t in CHECKSUM else ""), str(gold_count[t]), "yes" if both else "no"]
        for n in names:
            e = results[n][t]
            if n == "presidio" and not both:
                row += ["", "", "", "n/a", "n/a", "n/a"]
            else:
                row += [str(e["tp"]), str(e["fp"]), str(e["fn"]), fmt(e["precision"]), fmt(e["recall"]), fmt(e["f1"])]
        if len(names) == 2:
            if both:
                o, p = results["ours"][t], results["presidio"][t]
                flags = (ge(o["precision"] if o["precision"] is not None else 1.0,
                            p["precision"] if p["precision"] is not None else 1.0),
                         ge(o["recall"], p["recall"]), ge(o["f1"], p["f1"]))
                checks["ours_ge_presidio"][t] = {"precision": flags[0], "recall": flags[1], "f1": flags[2],
                                                 "pass": flags[0] and flags[1]}
                row.append(" ".join("✓" if f else "✗" for f in flags))
            else:
                row.append("")
        lines.append("| " + " | ".join(row) + " |")
    # micro totals
    for label, group in (("all PII", PII), ("all secrets", SECRETS)):
        row = ["**%s**" % label, str(sum(gold_count[t] for t in group)), ""]
        for n in names:
            grp = [t for t in group if n != "presidio" or t in support]
            tp = sum(results[n][t]["tp"] for t in grp)
            fp = sum(results[n][t]["fp"] for t in grp)
            fn = sum(results[n][t]["fn"] for t in grp)
            p, r = ratio(tp, tp + fp), ratio(tp, tp + fn)
            row += [str(tp), str(fp), str(fn), fmt(p), fmt(r), fmt(f1(p, r))]
        if len(names) == 2:
            row.append("")
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)

    # FPs by source
    src_lines = ["| engine | entity | " + " | ".join(["template", "secret", "negative-code", "negative-log",
                                                      "negative-prose"]) + " |", "|---|---|---|---|---|---|---|"]
    for n in names:
        for t in TYPES:
            fps = results[n][t]["fp_by_source"]
            if fps:
                src_lines.append("| %s | %s | %s |" % (n, t, " | ".join(str(fps.get(s, 0)) for s in
                                 ["template", "secret", "negative-code", "negative-log", "negative-prose"])))
    fp_table = "\n".join(src_lines)

    for name in names:
        for t in CHECKSUM:
            r = results[name][t]["recall"]
            checks["checksum_recall"].setdefault(name, {})[t] = {"recall": r, "pass": r is not None and r >= RECALL_TARGET}

    print("Scored %d records (%s)." % (len(ids), ", ".join("%s: %d predicted records" % (n, len(p)) for n, p in engines.items())))
    print()
    print(table)
    print()
    print("False positives by source:\n")
    print(fp_table)
    print()
    for name in names:
        for t in CHECKSUM:
            c = checks["checksum_recall"][name][t]
            print("checksum-backed %s recall (%s): %s  target >= %.2f: %s" % (
                t, name, fmt(c["recall"]), RECALL_TARGET, "PASS" if c["pass"] else "FAIL"))
    if checks["ours_ge_presidio"]:
        ok = all(v["pass"] for v in checks["ours_ge_presidio"].values())
        print("ours >= presidio on precision and recall for every type both support: %s" % ("PASS" if ok else "FAIL"))

    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "records_scored": len(ids), "matching_rule": "same entity, overlapping, one-to-one (largest overlap)",
            "presidio_support": support, "presidio_meta": meta, "gold": gold_count, "results": results,
            "checks": checks, "markdown": table, "fp_by_source_markdown": fp_table,
        }, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
