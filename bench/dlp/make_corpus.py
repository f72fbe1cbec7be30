#!/usr/bin/env python3
"""Build the labeled DLP accuracy corpus: bench/dlp/corpus/labeled.jsonl.

Deterministic (fixed seeds; same library versions -> same bytes). Run with the
venv from bench/dlp/requirements.txt:

    .venv-dlp/bin/python bench/dlp/make_corpus.py [--out PATH] [--seed N]

One JSON object per line:
    {"id": int, "source": "template"|"secret"|"negative-code"|"negative-log"|"negative-prose",
     "text": str, "spans": [{"entity": ID, "start": int, "end": int}]}
Offsets are Python str indices (Unicode code points), end exclusive.

Sources
-------
template
    presidio-evaluator 0.3.2's own sentence templates (raw_data/templates.txt)
    filled by its PresidioSentenceFaker (FakeNameGenerator records + its extra
    Faker providers), lower_case_ratio 0.05 as in its own generator.
    1. A base sample of BASE_SENTENCES sentences drawn uniformly over all
       templates, exactly as PresidioSentenceFaker.generate_new_fake_sentences.
    2. Boost: the templates are thin for some types (IBAN 3 templates, SSN 2,
       IP 2, e-mail 6, UK NINO none), so for every type still under
       TARGET_PER_TYPE gold spans we draw more sentences from the templates
       that hold that placeholder. For IBAN, SSN, IP and NINO half of the boost
       comes from EXTRA_TEMPLATES below (written for this corpus in the style
       of presidio's templates, with the same Faker providers filling them);
       NINO comes only from them. Which records came from them is listed in
       corpus/stats.json.
    Entity mapping from presidio-evaluator's types to ours: EMAIL_ADDRESS ->
    EMAIL, PHONE_NUMBER -> PHONE, CREDIT_CARD, IBAN_CODE -> IBAN, US_SSN,
    IP_ADDRESS, UK_NINO (our provider). Other types (PERSON, LOCATION, ...)
    are not labeled.
    Provider changes, all Faker-based:
      * iban: Faker's en_US iban() is always a GB IBAN, so the value comes from
        iban() of one of 18 Faker locales; 30% are printed in the 4-character
        groups of the ISO 13616 paper format.
      * credit_card_number: Faker's; 25% of 16-digit numbers are printed in
        4-digit groups (spaces or dashes), as on cards and in forms.
      * uk_nino: Faker en_GB ssn() always gives prefix "ZZ" and suffix "T",
        which HMRC never issues (ZZ is reserved, suffixes are A-D), so we keep
        Faker's layout ("ZZ 12 34 56 T" or "ZZ123456T") but draw a valid prefix
        and an A-D suffix.
      * date_time/year/day_of_week: Faker's, with a fixed end date instead of
        "now" (not labeled; keeps the output reproducible).
      * Literal "\\n" in templates.txt becomes a newline and "\\," a comma.
    Quirk: presidio-evaluator 0.3.2's lower-casing sets InputSample.fake, not
    full_text, so the lower_case_ratio does not change the text we keep.

secret
    Synthetic secrets in realistic settings (env files, YAML, JSON, curl, code,
    logs, chat prose), generated here with the real formats: AWS access key
    ids and 40-char secret keys, GitHub (ghp_/gho_/ghu_/ghs_/ghr_ with CRC32
    checksum, github_pat_), GitLab (mostly glpat-, some other gl*- tokens),
    Slack (xoxb-, xoxp-, a few xapp- app tokens, webhook URLs), Stripe (sk_live_,
    rk_live_, sk_test_), Google API keys (AIza...), PEM private keys (EC and
    Ed25519 keys really derived, RSA/OpenSSH/encrypted bodies random
    base64), HS256-signed JWTs, and generic high-entropy values (hex, base64,
    url-safe, generated passwords) after api_key/secret/token/password-like
    keys. Every secret placed is labeled; nothing else in these texts is one.

negative-code / negative-log / negative-prose
    code:  windows of 6-20 lines from the Python standard library sources of
           the interpreter running this script (no test/ directories).
    log:   synthetic log chunks (timestamps, durations, versions like
           10.0.19041.1, UUIDs, git SHAs, order numbers, ports, HTTP status
           lines, k8s pod names, stack traces) with no PII or secrets.
    prose: paragraphs of stdlib docstrings and of the README/METADATA/LICENSE
           texts of installed packages (packages that ship example PII, like
           faker, phonenumbers, presidio*, are skipped).
    Exclusion rule for code and prose candidates (a plain text filter, not our
    detectors): drop a candidate if it contains any of
        "@", "http", "://", "www.", "BEGIN ", "PRIVATE KEY", "eyJ", "AKIA",
        "ghp_", "glpat", "xox", "sk_live", "AIza",
        a dotted quad  \\d{1,3}(\\.\\d{1,3}){3},
        a token that Python's ipaddress module accepts as an IPv6 address,
        a run of 9 or more digits where single spaces, dashes, dots or
        parentheses may separate them (phone, SSN, card, account-like),
        a word of 2 capitals + 2 digits + 10 or more capitals/digits
        (IBAN-like).
    Log chunks are generated without IPs, e-mail addresses or secrets, so
    they are not filtered.
"""
import argparse
import ast
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import random
import re
import string
import sys
import sysconfig
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "corpus" / "labeled.jsonl"

BASE_SENTENCES = 3000      # uniform draw over all presidio templates
TARGET_PER_TYPE = 350      # minimum gold spans per PII type after boosting
SECRETS_PER_TYPE = 60      # secret records whose main secret is of each type
NEG_CODE, NEG_LOG, NEG_PROSE = 1400, 1400, 1400

# presidio-evaluator type -> our detector id (others are not labeled)
PRESIDIO_TO_OURS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "UK_NINO": "UK_NINO",
    "IP_ADDRESS": "IP_ADDRESS",
}
PII_TYPES = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "UK_NINO", "IP_ADDRESS"]
# our type -> the template placeholder that produces it
PLACEHOLDER = {"EMAIL": "email", "PHONE": "phone_number", "CREDIT_CARD": "credit_card_number",
               "IBAN": "iban", "US_SSN": "ssn", "UK_NINO": "uk_nino", "IP_ADDRESS": "ip_address"}

# Extra templates (ours), same style as presidio's, filled by the same providers.
EXTRA_TEMPLATES = {
    "IBAN": [
        "Please send the refund to my account {{iban}}",
        "The supplier changed their bank details, new IBAN: {{iban}}",
        "Transfer 250 EUR to {{iban}} with reference invoice 2231",
        "{{person}} asked us to pay the deposit into {{iban}} before Friday",
        "Can you confirm that {{iban}} belongs to {{organization}}?",
        "Beneficiary: {{person}}\nIBAN: {{iban}}\nBank: {{organization}}",
        "My salary should go to {{iban}} from next month on",
        "The direct debit from {{iban}} failed twice, please check",
        "Account holder {{first_name}} {{last_name}}, IBAN {{iban}}, {{city}}",
        "I closed the account {{iban}} last year, please remove it",
    ],
    "US_SSN": [
        "My social security number is {{ssn}}",
        "SSN: {{ssn}}",
        "Employee {{person}} (SSN {{ssn}}) started on {{date_time}}",
        "Please verify the SSN {{ssn}} for {{first_name}} before payroll runs",
        "The tax form lists {{ssn}} but that is not my number",
        "Name: {{name}}\nSSN: {{ssn}}\nAddress: {{address}}",
        "Her social security no. is {{ssn}} and she lives in {{city}}",
        "I typed {{ssn}} in the application form, is that enough?",
        "Applicant {{name}}, social security {{ssn}}, DOB {{date_of_birth}}",
        "Can you update my records? SSN {{ssn}}, phone {{phone_number}}",
    ],
    "IP_ADDRESS": [
        "The login came from {{ip_address}} which is not one of ours",
        "Please whitelist {{ip_address}} for the VPN",
        "{{person}} reported that the server at {{ip_address}} stopped answering",
        "Blocked repeated requests from {{ip_address}} last night",
        "My home IP is {{ip_address}}, can you open the firewall for it?",
        "The printer has the address {{ip_address}} now",
        "Traffic from {{ip_address}} to the database spiked around noon",
        "Set the DNS server to {{ip_address}} and try again",
        "Your last sign-in was from {{ip_address}} in {{city}}",
        "I can ping {{ip_address}} but the web page does not load",
    ],
    "UK_NINO": [
        "My National Insurance number is {{uk_nino}}",
        "NI number: {{uk_nino}}",
        "Please add my NINO {{uk_nino}} to the payroll record",
        "{{person}} gave {{uk_nino}} as her national insurance number",
        "Name: {{name}}\nNational Insurance No: {{uk_nino}}\nAddress: {{address}}",
        "The P60 shows {{uk_nino}} but mine is different",
        "HMRC wrote to {{first_name}} about NI number {{uk_nino}}",
        "Employee {{name}}, NINO {{uk_nino}}, starts in {{city}} on Monday",
        "I lost the letter with my national insurance number, I think it was {{uk_nino}}",
        "Can you confirm the national insurance number {{uk_nino}} for {{first_name}} {{last_name}}?",
    ],
}

IBAN_LOCALES = ["en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_PT", "fi_FI",
                "de_AT", "de_CH", "nl_BE", "en_IE", "no_NO", "da_DK", "cs_CZ", "tr_TR", "ro_RO"]

# ---------------------------------------------------------------- helpers


def fill(template, values):
    """Replace {{NAME}} placeholders with values[NAME] = (entity or None, text).
    Returns (text, spans) with code-point offsets of labeled values."""
    out, spans, pos = [], [], 0
    for m in re.finditer(r"\{\{(\w+)\}\}", template):
        out.append(template[pos:m.start()])
        entity, value = values[m.group(1)]
        start = sum(len(s) for s in out)
        out.append(value)
        if entity:
            spans.append({"entity": entity, "start": start, "end": start + len(value)})
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), spans


def mod97_ok(iban):
    s = iban.replace(" ", "")
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


# ---------------------------------------------------------------- template source


def make_providers(faker_mod, rng):
    """Faker providers that replace or add to presidio-evaluator's (see docstring)."""
    from faker.providers import BaseProvider

    locale_fakers = [faker_mod.Faker(loc) for loc in IBAN_LOCALES]
    for i, f in enumerate(locale_fakers):
        f.seed_instance(1000 + i)
    nino_first = "ABCEGHJKLMNOPRSTWXYZ"          # not D F I Q U V
    nino_second = "ABCEGHJKLMNPRSTWXYZ"         # not D F I O Q U V
    nino_bad = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
    gb = faker_mod.Faker("en_GB")
    gb.seed_instance(77)

    class IbanProvider(BaseProvider):
        def iban(self):
            value = rng.choice(locale_fakers).iban()
            assert mod97_ok(value), value
            if rng.random() < 0.30:   # ISO 13616 paper format
                value = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
            return value

    cards = faker_mod.Faker("en_US")
    cards.seed_instance(78)

    class CardProvider(BaseProvider):
        def credit_card_number(self, card_type=None):
            value = cards.credit_card_number(card_type)
            if len(value) == 16 and rng.random() < 0.25:
                sep = rng.choice([" ", "-"])
                value = sep.join(value[i:i + 4] for i in range(0, 16, 4))
            return value

    class NinoProvider(BaseProvider):
        def uk_nino(self):
            raw = gb.ssn()                         # e.g. "ZZ 12 34 56 T" / "ZZ123456T"
            while True:
                prefix = rng.choice(nino_first) + rng.choice(nino_second)
                if prefix not in nino_bad:
                    break
            return prefix + raw[2:-1] + rng.choice("ABCD")

    class FixedClockDates(BaseProvider):
        """Faker's date_time() ends at "now", which would make the corpus
        change from run to run; the same draws with a fixed end instead."""
        _end = __import__("datetime").datetime(2025, 1, 1)

        def date_time(self, tzinfo=None, end_datetime=None):
            return self.generator.date_time_between(self._end.replace(year=1970), self._end)

        def year(self):
            return self.date_time().strftime("%Y")

        def day_of_week(self):
            return self.date_time().strftime("%A")

    return [IbanProvider, CardProvider, NinoProvider, FixedClockDates]


def template_source(seed):
    import faker as faker_mod
    import numpy as np
    from presidio_evaluator.data_generator import (PresidioSentenceFaker, presidio_templates_file_path,
                                                   presidio_additional_entity_providers)
    from presidio_evaluator.data_generator.faker_extensions.datasets import load_fake_person_df

    def seed_all(s):
        random.seed(s)
        np.random.seed(s)
        faker_mod.Faker.seed(s)

    seed_all(seed)
    rng = random.Random(seed + 1)
    records = load_fake_person_df()        # uses the global random: seeded above
    extra_providers = make_providers(faker_mod, rng)

    def clean(t):
        return t.strip().replace("\\n", "\n").replace("\\,", ",")

    templates = [clean(t) for t in presidio_templates_file_path.read_text().splitlines() if t.strip()]

    def sentence_faker(tpls, s):
        sf = PresidioSentenceFaker(locale="en_US", lower_case_ratio=0.05, sentence_templates=tpls,
                                   entity_providers=presidio_additional_entity_providers + extra_providers,
                                   base_records=records, random_seed=s)
        sf.add_entity_type_mapping("uk_nino", "UK_NINO")
        return sf

    def convert(samples, origin):
        out = []
        for smp in samples:
            text = smp.full_text
            spans = []
            for sp in smp.spans:
                ours = PRESIDIO_TO_OURS.get(sp.entity_type)
                if not ours:
                    continue
                # the value must be exactly at the offsets (case may differ: lower_case quirk)
                assert text[sp.start_position:sp.end_position].lower() == str(sp.entity_value).lower(), smp
                spans.append({"entity": ours, "start": sp.start_position, "end": sp.end_position})
            spans.sort(key=lambda s: s["start"])
            out.append({"source": "template", "text": text, "spans": spans, "_origin": origin})
        return out

    quiet = open(os.devnull, "w")
    so, se = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = quiet         # presidio-evaluator prints progress bars and notes
    try:
        recs = convert(sentence_faker(templates, seed).generate_new_fake_sentences(BASE_SENTENCES),
                       "presidio-template")
        count = Counter(s["entity"] for r in recs for s in r["spans"])
        for i, ours in enumerate(PII_TYPES):
            need = TARGET_PER_TYPE - count[ours]
            if need <= 0:
                continue
            ph = "{{" + PLACEHOLDER[ours] + "}}"
            own = [t for t in templates if ph in t]
            extra = EXTRA_TEMPLATES.get(ours, [])
            n_extra = need if not own else (need // 2 if extra else 0)
            # a template may hold the placeholder more than once: draw until enough
            for tpls, n, origin in ((own, need - n_extra, "presidio-template"), (extra, n_extra, "extra-template")):
                got, k = 0, 0
                while tpls and got < n:
                    batch = convert(sentence_faker(tpls, seed + 100 * (i + 1) + k)
                                    .generate_new_fake_sentences(max(1, n - got)), origin)
                    k += 1
                    recs += batch
                    got += sum(1 for r in batch for s in r["spans"] if s["entity"] == ours)
            count = Counter(s["entity"] for r in recs for s in r["spans"])
    finally:
        sys.stdout, sys.stderr = so, se
    return recs


# ---------------------------------------------------------------- secret source

B62 = string.ascii_letters + string.digits
ALNUM_UP = string.ascii_uppercase + string.digits


def b62(n):
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[r] + out
    return out


class SecretGen:
    def __init__(self, rng):
        self.r = rng

    def chars(self, alphabet, n):
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def aws_access_key(self):
        return self.r.choice(["AKIA"] * 8 + ["ASIA"] * 2) + self.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)

    def aws_secret_key(self):
        return self.chars(string.ascii_letters + string.digits + "/+", 40)

    def github_token(self):
        if self.r.random() < 0.2:
            return "github_pat_" + self.chars(B62, 22) + "_" + self.chars(B62, 59)
        body = self.chars(B62, 30)
        check = b62(binascii.crc32(body.encode())).rjust(6, "0")
        return self.r.choice(["ghp_"] * 6 + ["gho_", "ghu_", "ghs_", "ghr_"]) + body + check

    def gitlab_token(self):
        if self.r.random() < 0.15:    # other GitLab token kinds: deploy, runner, trigger
            return self.r.choice(["gldt-", "glrt-", "glptt-"]) + self.chars(B62 + "_-", 20)
        return "glpat-" + self.chars(B62 + "_-", 20)

    def slack_token(self):
        x = self.r.random()
        if x < 0.45:
            return "xoxb-%d-%d-%s" % (self.r.randrange(10**10, 10**13), self.r.randrange(10**10, 10**13),
                                      self.chars(B62, 24))
        if x < 0.75:
            return "xoxp-%d-%d-%d-%s" % (self.r.randrange(10**10, 10**13), self.r.randrange(10**10, 10**13),
                                         self.r.randrange(10**10, 10**13), self.chars("0123456789abcdef", 32))
        if x < 0.85:
            return "xapp-1-A%s-%d-%s" % (self.chars(ALNUM_UP, 10), self.r.randrange(10**12, 10**13),
                                         self.chars("0123456789abcdef", 64))
        return "https://hooks.slack.com/services/T%s/B%s/%s" % (self.chars(ALNUM_UP, 8), self.chars(ALNUM_UP, 10),
                                                               self.chars(B62, 24))

    def stripe_key(self):
        prefix = self.r.choice(["sk_live_"] * 6 + ["rk_live_"] * 2 + ["sk_test_"] * 2)
        return prefix + self.chars(B62, self.r.choice([24, 24, 99]))

    def google_api_key(self):
        return "AIza" + self.chars(B62 + "_-", 35)

    def private_key(self):
        from cryptography.hazmat.primitives import serialization as ser
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519
        x = self.r.random()
        if x < 0.25:
            k = ec.derive_private_key(self.r.getrandbits(250) + 1, ec.SECP256R1())
            return k.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL,
                                   ser.NoEncryption()).decode().strip()
        if x < 0.45:
            k = ed25519.Ed25519PrivateKey.from_private_bytes(self.r.randbytes(32))
            return k.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()).decode().strip()
        kind, prefix, size = self.r.choice([("RSA PRIVATE KEY", b"\x30\x82\x04\xa4\x02\x01\x00", 1190),
                                            ("PRIVATE KEY", b"\x30\x82\x04\xbe\x02\x01\x00", 1210),
                                            ("OPENSSH PRIVATE KEY", b"openssh-key-v1\x00", 400),
                                            ("ENCRYPTED PRIVATE KEY", b"\x30\x82\x05\x2d\x30\x57", 1330)])
        body = base64.b64encode(prefix + self.r.randbytes(size - len(prefix))).decode()
        lines = [body[i:i + (70 if "OPENSSH" in kind else 64)] for i in range(0, len(body), 70 if "OPENSSH" in kind else 64)]
        return "-----BEGIN %s-----\n%s\n-----END %s-----" % (kind, "\n".join(lines), kind)

    def jwt(self):
        def enc(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        header = {"alg": "HS256", "typ": "JWT"}
        if self.r.random() < 0.3:
            header["kid"] = self.chars(string.hexdigits.lower()[:16], 8)
        iat = 1_700_000_000 + self.r.randrange(50_000_000)
        payload = {"sub": str(uuid.UUID(int=self.r.getrandbits(128), version=4)),
                   "iat": iat, "exp": iat + self.r.choice([900, 3600, 86400])}
        if self.r.random() < 0.5:
            payload["scope"] = self.r.choice(["read:tickets", "openid profile", "admin", "repo write:packages"])
        if self.r.random() < 0.3:
            payload["iss"] = self.r.choice(["auth-service", "portal", "idp-prod"])
        signing = enc(json.dumps(header, separators=(",", ":")).encode()) + "." + \
            enc(json.dumps(payload, separators=(",", ":")).encode())
        sig = hmac.new(self.r.randbytes(32), signing.encode(), hashlib.sha256).digest()
        return signing + "." + enc(sig)

    def generic_secret(self):
        x = self.r.random()
        if x < 0.25:
            return self.chars("0123456789abcdef", self.r.choice([32, 40, 64]))
        if x < 0.5:
            return base64.b64encode(self.r.randbytes(self.r.choice([24, 32, 33]))).decode()
        if x < 0.8:
            return base64.urlsafe_b64encode(self.r.randbytes(self.r.choice([24, 32]))).rstrip(b"=").decode()
        # a generated password, with symbols
        return self.chars(string.ascii_letters + string.digits + "!#$%^&*()-_=+", self.r.choice([16, 20, 24]))


# Contexts per secret type; {{S}} is the main secret, other placeholders are
# filled as named. Keep them free of anything else secret- or PII-like.
SECRET_CONTEXTS = {
    "AWS_ACCESS_KEY": [
        "[default]\naws_access_key_id = {{S}}\naws_secret_access_key = {{AWS_SECRET_KEY}}\nregion = eu-west-1",
        "export AWS_ACCESS_KEY_ID={{S}}\nexport AWS_SECRET_ACCESS_KEY={{AWS_SECRET_KEY}}",
        'provider "aws" {\n  region     = "us-east-1"\n  access_key = "{{S}}"\n  secret_key = "{{AWS_SECRET_KEY}}"\n}',
        "2024-05-02T10:11:12Z WARN s3sync: using static credentials {{S}} for bucket backups-prod",
        "the deploy job failed because the key {{S}} was deactivated, can someone rotate it?",
        's3 = boto3.client("s3", aws_access_key_id="{{S}}", aws_secret_access_key="{{AWS_SECRET_KEY}}")',
        '{"Credentials": {"AccessKeyId": "{{S}}", "SecretAccessKey": "{{AWS_SECRET_KEY}}", "Expiration": "2024-06-01T12:00:00Z"}}',
        "docker run -e AWS_ACCESS_KEY_ID={{S}} -e AWS_SECRET_ACCESS_KEY={{AWS_SECRET_KEY}} backup:2.3",
    ],
    "AWS_SECRET_KEY": [
        "aws_secret_access_key={{S}}",
        "AWS_SECRET_ACCESS_KEY: {{S}}",
        "secretAccessKey: {{S}}\nsessionDuration: 3600",
        "I pasted the aws secret key {{S}} into the wrong channel, please revoke it",
    ],
    "GITHUB_TOKEN": [
        "GITHUB_TOKEN={{S}}",
        'curl -H "Authorization: token {{S}}" https://api.github.com/user/repos',
        "git clone https://x-access-token:{{S}}@github.com/acme/infra.git",
        "    env:\n      GH_TOKEN: {{S}}\n    run: gh release create v1.4.2",
        "here is my personal access token for the CI: {{S}} (expires in 30 days)",
        '{"github": {"token": "{{S}}", "org": "acme"}}',
        "2024-04-11 08:03:55 INFO fetch: authenticating to GitHub with {{S}}",
    ],
    "GITLAB_TOKEN": [
        "GITLAB_TOKEN={{S}}",
        'curl --header "PRIVATE-TOKEN: {{S}}" "https://gitlab.example.com/api/v4/projects"',
        "git remote set-url origin https://oauth2:{{S}}@gitlab.com/acme/web.git",
        "gitlab:\n  url: https://gitlab.acme.io\n  token: {{S}}",
        "can you try with this token {{S}} and tell me if the pipeline starts?",
        "[runners.custom]\n  token = \"{{S}}\"",
    ],
    "SLACK_TOKEN": [
        "SLACK_BOT_TOKEN={{S}}",
        'curl -X POST -H "Authorization: Bearer {{S}}" -H "Content-type: application/json" --data \'{"channel":"C024BE91L","text":"deploy done"}\' https://slack.com/api/chat.postMessage',
        "slack:\n  token: {{S}}\n  channel: '#alerts'",
        "notify the channel with {{S}} when the nightly build breaks",
        'const app = new App({ token: "{{S}}", signingSecret: process.env.SLACK_SIGNING_SECRET });',
        '{"slack": {"bot_token": "{{S}}", "username": "deploy-bot"}}',
    ],
    "STRIPE_KEY": [
        "STRIPE_SECRET_KEY={{S}}",
        "stripe.api_key = \"{{S}}\"",
        "curl https://api.stripe.com/v1/charges -u {{S}}: -d amount=2000 -d currency=usd",
        "payments:\n  provider: stripe\n  secret_key: {{S}}",
        "use {{S}} for the staging shop, the old one was rolled",
        'const stripe = require("stripe")("{{S}}");',
    ],
    "GOOGLE_API_KEY": [
        "GOOGLE_API_KEY={{S}}",
        '<script src="https://maps.googleapis.com/maps/api/js?key={{S}}&callback=initMap"></script>',
        '{"apiKey": "{{S}}", "authDomain": "acme-prod.firebaseapp.com", "projectId": "acme-prod"}',
        "maps:\n  key: {{S}}",
        "the geocoding calls use {{S}}, quota is 10k per day",
        "curl 'https://www.googleapis.com/youtube/v3/search?part=snippet&q=mcp&key={{S}}'",
    ],
    "PRIVATE_KEY": [
        "{{S}}",
        "$ cat ~/.ssh/deploy_key\n{{S}}\n$ chmod 600 ~/.ssh/deploy_key",
        "tls:\n  key: |\n    {{S_INDENTED}}",
        '{"type": "service_account", "project_id": "acme-prod", "private_key": "{{S_JSON}}"}',
        "here's the key for the staging box, don't share it:\n\n{{S}}\n\nthanks",
    ],
    "JWT": [
        "Authorization: Bearer {{S}}",
        'curl -H "Authorization: Bearer {{S}}" https://api.acme.io/v2/orders?limit=20',
        '{"access_token": "{{S}}", "token_type": "Bearer", "expires_in": 3600}',
        "Set-Cookie: session={{S}}; Path=/; HttpOnly; Secure",
        "2024-03-09 14:02:17 DEBUG auth: verifying token {{S}}",
        "the token {{S}} is rejected with 401, did the signing secret change?",
        "wss://stream.acme.io/v1/live?jwt={{S}}",
    ],
    "GENERIC_SECRET": [
        "API_KEY={{S}}",
        "api_key: {{S}}",
        '{"client_id": "web-portal", "client_secret": "{{S}}"}',
        "SECRET_KEY = '{{S}}'",
        "DB_PASSWORD={{S}}",
        "password: {{S}}",
        'curl -H "X-API-Key: {{S}}" https://api.acme.io/v1/status',
        "https://hooks.acme.io/ingest?access_token={{S}}",
        "  auth_token: \"{{S}}\"\n  timeout: 30",
        "the new api key: {{S}} — please update the cron job",
        "mysql --user=app --password={{S}} orders",
        "token={{S}}",
        '"secret": "{{S}}",',
        "REDIS_PASSWORD: \"{{S}}\"",
    ],
}


def secret_source(seed):
    rng = random.Random(seed + 2)
    gen = SecretGen(rng)
    make = {
        "AWS_ACCESS_KEY": gen.aws_access_key, "AWS_SECRET_KEY": gen.aws_secret_key,
        "GITHUB_TOKEN": gen.github_token, "GITLAB_TOKEN": gen.gitlab_token, "SLACK_TOKEN": gen.slack_token,
        "STRIPE_KEY": gen.stripe_key, "GOOGLE_API_KEY": gen.google_api_key, "PRIVATE_KEY": gen.private_key,
        "JWT": gen.jwt, "GENERIC_SECRET": gen.generic_secret,
    }
    recs = []
    for entity, contexts in SECRET_CONTEXTS.items():
        for i in range(SECRETS_PER_TYPE):
            ctx = contexts[i % len(contexts)]
            value = make[entity]()
            values = {"S": (entity, value), "AWS_SECRET_KEY": ("AWS_SECRET_KEY", gen.aws_secret_key())}
            if "{{S_INDENTED}}" in ctx:
                # a YAML block scalar: PEM lines indented; the span runs from BEGIN to the END line
                text, spans = fill(ctx.replace("S_INDENTED", "S"), {"S": (entity, value.replace("\n", "\n    "))})
            elif "{{S_JSON}}" in ctx:
                text, spans = fill(ctx.replace("S_JSON", "S"), {"S": (entity, value.replace("\n", "\\n"))})
            else:
                text, spans = fill(ctx, values)
            recs.append({"source": "secret", "text": text, "spans": spans})
    rng.shuffle(recs)
    return recs


# ---------------------------------------------------------------- negatives

EXCLUDE_SUBSTRINGS = ["@", "http", "://", "www.", "BEGIN ", "PRIVATE KEY", "eyJ", "AKIA", "ghp_", "glpat",
                      "xox", "sk_live", "AIza"]
DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
LONG_DIGITS = re.compile(r"\d(?:[ \-.()]?\d){8,}")
IBAN_LIKE = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,}\b")
V6_CANDIDATE = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def excluded(text):
    """The documented exclusion rule for harvested code and prose."""
    if any(s in text for s in EXCLUDE_SUBSTRINGS):
        return True
    if DOTTED_QUAD.search(text) or LONG_DIGITS.search(text) or IBAN_LIKE.search(text):
        return True
    for m in V6_CANDIDATE.finditer(text):
        tok = m.group().strip(":.")
        for cand in (m.group(), tok):
            try:
                ipaddress.IPv6Address(cand)
                return True
            except ValueError:
                pass
    return False


def stdlib_files():
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).parts
        if any(part in ("test", "tests", "site-packages", "idle_test", "__pycache__") for part in rel):
            continue
        files.append(p)
    return files


def code_negatives(rng, n):
    files = stdlib_files()
    out, tries = [], 0
    while len(out) < n and tries < n * 50:
        tries += 1
        lines = rng.choice(files).read_text(encoding="utf-8", errors="replace").splitlines()
        if len(lines) < 10:
            continue
        k = rng.randint(6, 20)
        i = rng.randrange(0, max(1, len(lines) - k))
        text = "\n".join(lines[i:i + k]).strip("\n")
        if len(text) < 80 or excluded(text):
            continue
        out.append({"source": "negative-code", "text": text, "spans": []})
    return out


SKIP_PACKAGES = ("faker", "presidio", "phonenumbers", "en_core_web", "tldextract", "email")


def prose_paragraphs():
    paras = []
    # stdlib module, class and function docstrings
    for p in stdlib_files():
        try:
            tree = ast.parse(p.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    paras += [x.strip() for x in re.split(r"\n\s*\n", doc)]
    # README / METADATA / LICENSE texts of installed packages
    site = Path(sysconfig.get_paths()["purelib"])
    docs = []
    for pattern in ("*.dist-info/METADATA", "*.dist-info/LICENSE*", "*.dist-info/licenses/*", "*/README*",
                    "*/*/README*", "*/LICENSE*"):
        docs += site.glob(pattern)
    for p in sorted(set(docs)):
        if p.is_dir() or any(s in str(p.relative_to(site)).lower() for s in SKIP_PACKAGES):
            continue
        text = p.read_text(encoding="utf-8", errors="replace")
        if p.name == "METADATA":
            text = text.split("\n\n", 1)[-1]        # drop the header block
        paras += [x.strip() for x in re.split(r"\n\s*\n", text)]
    return [x for x in paras if len(x) >= 60]


def prose_negatives(rng, n):
    paras = prose_paragraphs()
    out, seen, tries = [], set(), 0
    while len(out) < n and tries < n * 50:
        tries += 1
        i = rng.randrange(len(paras))
        j = i + rng.randint(1, 3)            # 1-3 consecutive paragraphs
        text = "\n\n".join(paras[i:j])[:1000]
        if text in seen or excluded(text):
            continue
        seen.add(text)
        out.append({"source": "negative-prose", "text": text, "spans": []})
    return out


SERVICES = ["api-gateway", "orders", "billing-worker", "search-indexer", "auth", "notifier", "inventory",
            "checkout", "mcp-portal", "ingest", "reports", "scheduler"]
PATHS = ["/api/v1/orders", "/api/v1/orders/{n}", "/healthz", "/metrics", "/api/v2/search?q=widgets&page={p}",
         "/mcp", "/api/v1/tickets/{n}/comments", "/static/app.{h}.js", "/api/v1/users/{n}/preferences",
         "/internal/reindex", "/api/v1/invoices?status=open"]
STATUS = [(200, "OK"), (201, "Created"), (204, "No Content"), (301, "Moved Permanently"), (304, "Not Modified"),
          (400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden"), (404, "Not Found"),
          (409, "Conflict"), (429, "Too Many Requests"), (500, "Internal Server Error"),
          (502, "Bad Gateway"), (503, "Service Unavailable"), (504, "Gateway Timeout")]
LEVELS = ["INFO"] * 6 + ["DEBUG"] * 3 + ["WARN"] * 2 + ["ERROR"]
MESSAGES = [
    "request completed in {ms}ms status={st}", "cache miss for key orders:{n}", "retrying upstream call attempt={a}/5",
    "connection pool size={a} idle={b} waiting=0", "order {ord} moved to state SHIPPED", "processed batch {n} of {m}",
    "job {uuid} finished in {s}s", "listening on port {port}", "loaded configuration revision {h}",
    "GC pause {ms}ms heap={mb}MB", "upstream responded HTTP/1.1 {st} {reason}", "scheduled reindex of {m} documents",
    "deadline exceeded after {ms}ms calling inventory.Reserve", "build {n} passed on commit {sha}",
    "worker {pod} started, pid {pid}", "session {uuid} closed by client", "rate limit reached for tenant {t}",
    "migrated schema to version {n}", "deploying image registry.internal/{svc}:{ver}", "password reset requested for user id {n}",
    "token refresh succeeded for client web-portal", "secret rotation scheduled for vault path kv/{svc}",
    "ticket #{n} assigned to queue billing", "invoice INV-{year}-{n5} generated, total {amt} EUR",
    "disk usage {pct}% on /var/lib/{svc}", "TLS handshake took {ms}ms", "checksum mismatch in chunk {n}, refetching",
    "tools/call {svc}_search took {ms}ms", "OS build 10.0.19041.{n4} detected on agent {pod}",
]


def log_negatives(rng, n):
    def hexs(k):
        return "".join(rng.choice("0123456789abcdef") for _ in range(k))

    def pod(svc):
        # Kubernetes' name suffix alphabet (no vowels, no 0/1/3)
        safe = "bcdfghjklmnpqrstvwxz2456789"
        return "%s-%s-%s" % (svc, "".join(rng.choice(safe) for _ in range(rng.choice([9, 10]))),
                             "".join(rng.choice(safe) for _ in range(5)))

    def fields(svc):
        st, reason = rng.choice(STATUS)
        return dict(ms=rng.randint(1, 4000), st=st, reason=reason, n=rng.randint(1, 99999), m=rng.randint(100, 900000),
                    a=rng.randint(1, 64), b=rng.randint(0, 16), ord="ORD-%d" % rng.randint(10**9, 10**10 - 1),
                    uuid=str(uuid.UUID(int=rng.getrandbits(128), version=4)), s=round(rng.uniform(0.1, 900), 2),
                    port=rng.choice([80, 443, 5432, 6379, 8080, 8443, 9090, 3000, 27017]), h=hexs(12),
                    mb=rng.randint(64, 4096), sha=hexs(40), pod=pod(svc), pid=rng.randint(2, 65000),
                    t="tenant-%03d" % rng.randint(1, 400), svc=svc, year=rng.randint(2019, 2025), n5="%05d" % rng.randint(0, 99999),
                    ver="%d.%d.%d" % (rng.randint(0, 4), rng.randint(0, 30), rng.randint(0, 20)), amt="%d.%02d" % (rng.randint(5, 9000), rng.randint(0, 99)),
                    pct=rng.randint(40, 99), n4=rng.randint(1000, 4999), p=rng.randint(1, 40))

    def ts():
        return "2024-%02d-%02dT%02d:%02d:%02d.%03dZ" % (rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                                                         rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999))

    def plain_line(svc):
        f = fields(svc)
        return "%s %-5s [%s] %s" % (ts(), rng.choice(LEVELS), svc, rng.choice(MESSAGES).format(**f))

    def json_line(svc):
        f = fields(svc)
        return json.dumps({"ts": ts(), "level": rng.choice(LEVELS).lower(), "service": svc, "pod": f["pod"],
                           "trace_id": hexs(32), "msg": rng.choice(MESSAGES).format(**f), "duration_ms": f["ms"]})

    def access_line(svc):
        f = fields(svc)
        path = rng.choice(PATHS).format(n=f["n"], p=f["p"], h=f["h"][:8])
        return '%s %s "%s %s HTTP/1.1" %d %d %.3f upstream=%s:%d req_id=%s' % (
            ts(), svc, rng.choice(["GET", "GET", "POST", "PUT", "DELETE"]), path, f["st"], rng.randint(0, 90000),
            rng.uniform(0.001, 3), rng.choice(SERVICES), f["port"], f["uuid"])

    def kubectl(_svc):
        rows = ["NAME                                  READY   STATUS    RESTARTS   AGE"]
        for _ in range(rng.randint(2, 8)):
            rows.append("%-37s %d/1     %-9s %-10d %dd" % (pod(rng.choice(SERVICES)), rng.randint(0, 1),
                                                         rng.choice(["Running", "Running", "Pending", "CrashLoopBackOff"]),
                                                         rng.randint(0, 12), rng.randint(1, 90)))
        return "\n".join(rows)

    def traceback(svc):
        return ("%s ERROR [%s] unhandled exception\nTraceback (most recent call last):\n"
                '  File "/app/%s/handlers.py", line %d, in handle\n    result = await self.dispatch(request)\n'
                '  File "/app/%s/dispatch.py", line %d, in dispatch\n    raise TimeoutError(f"upstream {name} timed out after {timeout}s")\n'
                "TimeoutError: upstream inventory timed out after %ds") % (
            ts(), svc, svc, rng.randint(10, 900), svc, rng.randint(10, 400), rng.randint(1, 60))

    def build(_svc):
        v = "%d.%d.%d" % (rng.randint(1, 3), rng.randint(0, 40), rng.randint(0, 9))
        return "\n".join([
            "Step %d/%d : RUN pip install -r requirements.txt" % (rng.randint(3, 9), rng.randint(10, 14)),
            " ---> Running in %s" % hexs(12),
            "Collecting requests==2.%d.%d" % (rng.randint(20, 32), rng.randint(0, 3)),
            "Successfully installed certifi-2024.%d.%d idna-3.%d urllib3-2.%d.%d" % (
                rng.randint(1, 12), rng.randint(1, 28), rng.randint(1, 9), rng.randint(0, 3), rng.randint(0, 9)),
            " ---> %s" % hexs(12),
            "Successfully built %s" % hexs(12),
            "Successfully tagged registry.internal/app:%s" % v,
            "Microsoft Windows [Version 10.0.%d.%d]" % (rng.choice([17763, 19041, 19045, 22621]), rng.randint(1, 4000)),
        ][:rng.randint(3, 8)])

    def git(_svc):
        rows = []
        for _ in range(rng.randint(2, 6)):
            rows.append("%s Merge pull request #%d from acme/%s" % (hexs(7), rng.randint(100, 9999),
                                                                     rng.choice(["fix-retry", "feat/search", "deps", "release-2.4"])))
        return "\n".join(rows)

    kinds = [plain_line, plain_line, json_line, access_line, access_line, kubectl, traceback, build, git]
    out = []
    for _ in range(n):
        svc = rng.choice(SERVICES)
        kind = rng.choice(kinds)
        if kind in (plain_line, json_line, access_line):
            text = "\n".join(kind(svc) for _ in range(rng.randint(1, 5)))
        else:
            text = kind(svc)
        out.append({"source": "negative-log", "text": text, "spans": []})
    return out


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()

    records = template_source(args.seed)
    records += secret_source(args.seed)
    rng = random.Random(args.seed + 3)
    records += code_negatives(rng, NEG_CODE)
    records += log_negatives(rng, NEG_LOG)
    records += prose_negatives(rng, NEG_PROSE)

    # sanity: spans inside text, no overlaps within a record
    for r in records:
        last = -1
        for s in sorted(r["spans"], key=lambda s: s["start"]):
            assert 0 <= s["start"] < s["end"] <= len(r["text"]) and s["start"] >= last, r
            last = s["end"]

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    origins = {}
    with open(out, "w", encoding="utf-8") as f:
        for i, r in enumerate(records):
            origin = r.pop("_origin", r["source"])
            origins.setdefault(origin, []).append(i)
            f.write(json.dumps({"id": i, "source": r["source"], "text": r["text"], "spans": r["spans"]},
                               ensure_ascii=False) + "\n")

    per_source = Counter(r["source"] for r in records)
    per_entity = Counter(s["entity"] for r in records for s in r["spans"])
    per_entity_extra = Counter(s["entity"] for i in origins.get("extra-template", []) for s in records[i]["spans"])
    stats = {
        "records": len(records), "bytes": out.stat().st_size, "seed": args.seed,
        "per_source": dict(sorted(per_source.items())), "per_entity": dict(sorted(per_entity.items())),
        "per_entity_from_extra_templates": dict(sorted(per_entity_extra.items())),
        "extra_template_ids": [[a, b] for a, b in _ranges(origins.get("extra-template", []))],
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }
    (out.parent / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print("wrote %s: %d records, %.2f MB" % (out, len(records), stats["bytes"] / 1e6))
    print("per source:")
    for k, v in sorted(per_source.items()):
        print("  %-16s %6d" % (k, v))
    print("per entity (gold spans; from extra templates):")
    for k, v in sorted(per_entity.items()):
        print("  %-16s %6d  %6d" % (k, v, per_entity_extra.get(k, 0)))


def _ranges(ids):
    """[1,2,3,7,8] -> [(1,3),(7,8)]"""
    out = []
    for i in ids:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


if __name__ == "__main__":
    main()
