"""What counts as a secret in configuration, and the two ways fleetbench keeps one out of everything it writes.

A secret is the value of a key named like `api_key(s)`, `password`, `secret` or `token`; the password of a URL
(`postgresql://user:PASSWORD@host/db`); or a URL query parameter named like those or `key`, `sig`, `signature`,
`code` (`https://host/path?api-key=KEY`), and a URL's fragment (`https://host/v1#TOKEN`). A `${...}` reference is
never a secret: it names where the value lives.

- `redact` replaces secrets in plain config data by `***` (the `runs` table stores that copy).
- `hide_in_overrides` takes literal secrets out of command-line overrides before Hydra sees them: each becomes an
  `${oc.env:FLEETBENCH_SECRET_<n>}` reference and its value goes into this process's environment, so Hydra's sweep
  snapshot (`multirun.yaml`), its job log lines and its error echoes only ever hold the reference, while the job
  resolves the real value.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote, quote_plus

_SECRET_WORD = r"(?:api[-_]?keys?|password|passwd|secret|token)"
SECRET_KEY = re.compile(_SECRET_WORD + "$", re.IGNORECASE)
SECRET_PARAM = re.compile(rf"^(?:.*{_SECRET_WORD}|key|sig|signature|code)$", re.IGNORECASE)
HIDDEN_PREFIX = "FLEETBENCH_SECRET_"
HIDDEN_REFERENCE = re.compile(r"\$\{oc\.env:" + HIDDEN_PREFIX + r"\d+\}")
REDACTED = "***"

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"^[^:/?#]+://[^:/?#@]*:([^/?#@]+)@")
_QUERY_PARAM = re.compile(r"[?&;]([^=&;#]+)=([^&;#]*)")


def is_reference(text: str) -> bool:
    """A `${...}` interpolation: where a value lives, not the value."""
    return text.startswith("${")


def secret_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every URL password and secret query-parameter value in `text`, references excluded."""
    spans: list[tuple[int, int]] = []
    for url in _URL.finditer(text):
        found = _USERINFO.match(url.group())
        if found:
            spans.append((url.start() + found.start(1), url.start() + found.end(1)))
        for param in _QUERY_PARAM.finditer(url.group()):
            if SECRET_PARAM.match(param.group(1)) and param.group(2):
                spans.append((url.start() + param.start(2), url.start() + param.end(2)))
        fragment = url.group().find("#")
        if 0 <= fragment < len(url.group()) - 1:  # never sent to a server, and where tokens travel (`#access_token=`)
            spans.append((url.start() + fragment + 1, url.end()))
    return [(start, end) for start, end in spans if not is_reference(text[start:end])]


def replace_secrets(text: str, key: str, replacement: Callable[[str], str]) -> str:
    """`text` with each secret in it replaced by `replacement(secret)`; the whole text when `key` names a secret."""
    if SECRET_KEY.search(key):
        return text if is_reference(text) or not text else replacement(text)
    parts: list[str] = []
    position = 0
    for start, end in secret_spans(text):
        parts += [text[position:start], replacement(text[start:end])]
        position = end
    return "".join(parts) + text[position:]


def secret_forms(secret: str) -> list[str]:
    """The spellings under which a known secret can appear in another program's text, longest first: as it is,
    escaped as a JSON string or a Python repr shows it, once or twice in any order (an error message that quotes
    a JSON body, shown in a repr), and percent-encoded for a URL. A key holding `"` or `\\` reached a call row
    escaped while only its raw spelling was looked for. A secret of `LONG_SECRET` characters or more is also
    looked for base64-encoded (standard and URL-safe alphabets, with and without padding): a gateway echoed a key
    that way into an error body, which reached a call row and a transcript (an attacker's finding)."""
    return list(_forms(secret))


@functools.lru_cache(maxsize=256)
def _forms(secret: str) -> tuple[str, ...]:
    """`secret_forms`, computed once per secret: every error text and litellm log record asks for them."""
    if not secret:
        return ()
    once = _escaped(secret)
    twice = {form for escaped in once for form in _escaped(escaped)}
    forms = {secret, *once, *twice, quote(secret, safe=""), quote_plus(secret)}
    if len(secret) >= LONG_SECRET:
        encoded = {base64.b64encode(secret.encode()).decode(), base64.urlsafe_b64encode(secret.encode()).decode()}
        forms |= encoded | {form.rstrip("=") for form in encoded} | _inside_base64(secret.encode())
    return tuple(sorted(forms, key=len, reverse=True))


def _inside_base64(secret: bytes) -> set[str]:
    """The characters every base64 text holding `secret` somewhere inside has, whatever comes before and after it
    (`Bearer <key>` encoded, a blob of headers): the key starts 0, 1 or 2 bytes into a 3-byte group, and the
    characters that also carry bits of the bytes around it (the first 2 or 3, the last one) are left out. The key's
    own encoding alone missed it there (a second attacker's finding)."""
    found = set()
    for offset, mixed_at_start in ((0, 0), (1, 2), (2, 3)):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(bytes(offset) + secret).decode().rstrip("=")
            mixed_at_end = 1 if (offset + len(secret)) % 3 else 0
            found.add(text[mixed_at_start : len(text) - mixed_at_end])
    return found


LONG_SECRET = 8
"""Secrets at least this long are also looked for base64-encoded and in any letter case. Shorter ones (test keys
such as `k`) only as spelt: their other forms would match ordinary words."""


def _escaped(text: str) -> set[str]:
    """`text` as a JSON string or a Python repr shows it, without the quotes; a repr escapes `'` only within `'`
    quotes, which it chooses from the whole string, so both choices are made here (`+ '"'` forces `'` quotes)."""
    return {json.dumps(text)[1:-1], repr(text)[1:-1], repr(text + '"')[1:-2]}


def remove_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every spelling (`secret_forms`) of each of `secrets` replaced by `***`; the spellings of a long
    secret in any letter case too (a gateway echoed a key upper-cased)."""
    known = set(secrets)
    # Long secrets first: a short one replaced inside a long one (a test key `k` in `sk-…`) would leave the rest of it.
    long_forms = sorted({form for secret in known if len(secret) >= LONG_SECRET for form in _forms(secret)},
                        key=len, reverse=True)  # fmt: skip
    if long_forms:
        text = re.sub("|".join(map(re.escape, long_forms)), REDACTED, text, flags=re.IGNORECASE)
    short_forms = {form for secret in known if len(secret) < LONG_SECRET for form in _forms(secret)}
    for form in sorted(short_forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def redact_text(text: str, key: str = "") -> str:
    """`text` with every secret (and every reference to a hidden command-line secret) replaced by `***`."""
    return replace_secrets(HIDDEN_REFERENCE.sub(REDACTED, text), key, lambda _: REDACTED)


def redact(value: Any, key: str = "") -> Any:
    """A copy of plain config data with secret values replaced by '***' (env references are kept as written)."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        return redact_text(value, key)
    return value


class SecretVault:
    """Literal secrets moved into environment variables of this process (children inherit them)."""

    def __init__(self, environ: MutableMapping[str, str]) -> None:
        self._environ = environ
        self._names: dict[str, str] = {}

    def reference(self, secret: str) -> str:
        """An `${oc.env:...}` reference to a variable holding `secret` (one variable per distinct secret)."""
        name = self._names.get(secret)
        if name is None:
            index = len(self._names)
            while self._environ.get(f"{HIDDEN_PREFIX}{index}", secret) != secret:  # never clobber a user's variable
                index += 1
            name = self._names[secret] = f"{HIDDEN_PREFIX}{index}"
            self._environ[name] = secret
        return "${oc.env:" + name + "}"
