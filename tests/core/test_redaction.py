"""Redaction rules (`fleetbench.secrets`), in process: which keys and URL parts are secrets, what replaces them, and
that no secret value survives in anything `redact` / `redact_text` return (property-tested over generated secrets)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbench.secrets import (
    REDACTED,
    SecretVault,
    is_reference,
    redact,
    redact_text,
    remove_secrets,
    replace_secrets,
    secret_forms,
    secret_spans,
)


@pytest.mark.parametrize(
    "key", ["api_key", "api-key", "apikey", "API_KEYS", "password", "db_password", "passwd", "secret", "token"]
)
def test_values_of_secret_keys_are_replaced_whole(key: str) -> None:
    assert redact({key: "hunter2 and more"}) == {key: REDACTED}
    assert redact({key: ["a", "b"]}) == {key: [REDACTED, REDACTED]}


@pytest.mark.parametrize("key", ["max_tokens", "tokenizer", "key", "secret_name", "passwords_file", "endpoint"])
def test_other_keys_keep_their_values(key: str) -> None:
    assert redact({key: "hunter2"}) == {key: "hunter2"}


def test_references_empty_values_and_non_strings_are_kept() -> None:
    config = {"api_key": "${oc.env:KEY}", "token": "", "password": None, "secret": 42, "nested": {"token": True}}
    assert redact(config) == config


def test_hidden_command_line_secrets_are_redacted_wherever_they_appear() -> None:
    assert redact({"endpoint": "x ${oc.env:FLEETBENCH_SECRET_12} y"}) == {"endpoint": f"x {REDACTED} y"}
    assert redact({"endpoint": "${oc.env:OTHER_12}"}) == {"endpoint": "${oc.env:OTHER_12}"}


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("postgresql://user:pw@host/db", ["pw"]),
        ("see postgresql://user:pw@host/db and https://h/p?sig=s1&keep=k&code=c2", ["pw", "s1", "c2"]),
        (
            "https://h/p?api-key=A&API_KEY=B;token=C&x-api-key=D&access_token=E&keep=F#key=G",
            ["A", "B", "C", "D", "E", "key=G"],
        ),
        ("https://h/v1#SECRETFRAG-888 and https://h/v1#", ["SECRETFRAG-888"]),  # the fragment, never sent: whole
        ("https://h/p?key=K&signature=S&monkey=M&keys=N", ["K", "S"]),
        ("https://h/p?key=&sig=${oc.env:SIG}", []),
        ("postgresql://user:${oc.env:PW}@host/db", []),
        ("postgresql://user@host/db?password=", []),
        ("no url here, key=value", []),
    ],
)
def test_secret_spans_are_url_passwords_secret_query_values_and_fragments(text: str, spans: list[str]) -> None:
    assert [text[start:end] for start, end in secret_spans(text)] == spans


def test_replace_secrets_passes_each_secret_to_the_replacement_in_order() -> None:
    seen: list[str] = []

    def mark(secret: str) -> str:
        seen.append(secret)
        return f"<{len(seen)}>"

    text = "a postgresql://u:pw@h/db b https://h/p?sig=s1 c"
    assert replace_secrets(text, "endpoint", mark) == "a postgresql://u:<1>@h/db b https://h/p?sig=<2> c"
    assert seen == ["pw", "s1"]
    assert replace_secrets("whole", "api_key", mark) == "<3>"
    assert seen == ["pw", "s1", "whole"]


def test_redact_text_of_an_error_message() -> None:
    message = "GET https://u:pw@gw/v1?api-version=2&api-key=KEY failed (401)"
    assert redact_text(message) == f"GET https://u:{REDACTED}@gw/v1?api-version=2&api-key={REDACTED} failed (401)"
    assert redact_text("plain", key="token") == REDACTED


def test_is_reference() -> None:
    assert is_reference("${oc.env:X}") and is_reference("${anything")
    assert not is_reference("$X") and not is_reference(" ${oc.env:X}") and not is_reference("")


def test_the_vault_gives_one_variable_per_distinct_secret_and_never_clobbers_the_users() -> None:
    environ = {"FLEETBENCH_SECRET_0": "users own", "FLEETBENCH_SECRET_2": "s2"}
    vault = SecretVault(environ)
    first = vault.reference("s1")
    assert first == "${oc.env:FLEETBENCH_SECRET_1}"
    assert vault.reference("s1") == first
    assert vault.reference("s2") == "${oc.env:FLEETBENCH_SECRET_2}"  # already holds exactly this secret: reused
    assert vault.reference("s3") == "${oc.env:FLEETBENCH_SECRET_3}"
    assert environ == {
        "FLEETBENCH_SECRET_0": "users own",
        "FLEETBENCH_SECRET_1": "s1",
        "FLEETBENCH_SECRET_2": "s2",
        "FLEETBENCH_SECRET_3": "s3",
    }


# --- no secret value survives -------------------------------------------------------------------------------------

SECRET = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%+", min_size=1, max_size=24).map(
    lambda tail: "S3CR" + tail
)
"""A secret that occurs nowhere else in the generated configuration (nothing else holds "S3CR")."""
SECRET_PARAMS = ["api-key", "api_key", "apikey", "token", "access_token", "key", "sig", "signature", "code", "password"]
SECRET_KEYS = ["api_key", "api_keys", "password", "secret", "token", "client_secret"]


@st.composite
def configs_with_secrets(draw: st.DrawFn) -> tuple[Any, list[str]]:
    """A config tree with secrets under secret keys, as URL passwords, as secret query values and inside prose."""
    secrets = draw(st.lists(SECRET, min_size=5, max_size=5))
    param = draw(st.sampled_from(SECRET_PARAMS))
    key = draw(st.sampled_from(SECRET_KEYS))
    config = {
        "models": {
            "m": {"deployments": [{key: secrets[0], "endpoint": f"https://gw/v1?api-version=2&{param}={secrets[1]}"}]}
        },
        "storage": {"url": f"postgresql+psycopg://user:{secrets[2]}@db:5432/fleetbench"},
        "notes": [f"call to https://gw/x?keep=1&{param}={secrets[3]} failed", {key: [secrets[4], "${oc.env:K}"]}],
        "plain": draw(st.one_of(st.integers(), st.booleans(), st.none(), st.text("xyz ", max_size=5))),
    }
    return config, secrets


@settings(deadline=None)
@given(case=configs_with_secrets())
def test_no_secret_survives_redaction(case: tuple[Any, list[str]]) -> None:
    config, secrets = case
    redacted = json.dumps(redact(config))
    for secret in secrets:
        assert secret not in redacted
    assert "${oc.env:K}" in redacted and "api-version=2" in redacted and "keep=1" in redacted


@settings(deadline=None)
@given(secret=SECRET, param=st.sampled_from(SECRET_PARAMS), prose=st.text("abc :/", max_size=10))
def test_no_secret_survives_in_a_line_of_text(secret: str, param: str, prose: str) -> None:
    for text in (
        f"{prose} https://host/path?{param}={secret} {prose}",
        f"{prose} postgresql://user:{secret}@host/db",
        f"https://host/p?a=1&{param}={secret}&b=2",
    ):
        assert secret not in redact_text(text)


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=4, max_size=24).filter(lambda s: s.strip() == s and "***" not in s))
def test_a_known_secret_is_removed_however_another_program_escaped_it(secret: str) -> None:
    """A lane's key quoted by a server or by litellm: raw, JSON-escaped once or twice, in a repr (of a JSON body too),
    percent-encoded (a key holding `"` or `\\` reached a call row escaped while only its raw spelling was looked
    for)."""
    once = json.dumps(secret)
    quoted = [secret, once, json.dumps(once), repr(secret), repr(once), quote(secret, safe=""), quote_plus(secret)]
    text = " | ".join(f"invalid subscription key {form}." for form in quoted)
    cleaned = remove_secrets(text, [secret])
    for form in secret_forms(secret):
        assert form not in cleaned
    assert cleaned.count(REDACTED) >= len(quoted)


def test_a_long_secret_is_removed_base64_encoded_and_in_any_letter_case() -> None:
    """A hostile gateway echoed the key base64-encoded and upper-cased into an error body, which reached a call row
    and a transcript (an attacker's finding). A short key (a test's `k`) keeps to its spellings: its base64 form
    (`aw`) and its other case would match ordinary words."""
    secret = "SEKRITxy9Q7w2+/"
    raw = secret.encode()
    echoes = [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), secret.upper(), secret.lower()]
    echoes += [echo.rstrip("=") for echo in echoes[:2]]
    cleaned = remove_secrets(" | ".join(f"401 for {echo}." for echo in echoes), [secret])
    assert cleaned == " | ".join("401 for ***." for _ in echoes)
    assert remove_secrets("await the Kettle", ["k"]) == "await the Kettle"
    # A short key inside a long one is replaced after it: the other way round, `s***-…` left the rest of the long key.
    holding_k = "sk-Secr3tKeyValue42"
    assert remove_secrets(f"{holding_k.upper()} and {holding_k} and k", ["k", holding_k]) == "*** and *** and ***"


@pytest.mark.parametrize("before", ["", "B", "Be", "Bearer "])
@pytest.mark.parametrize("after", ["", "x", "xy", "\r\n"])
def test_a_long_secret_is_removed_from_inside_a_longer_base64_text(before: str, after: str) -> None:
    """`Bearer <key>` (or a blob of headers) echoed base64-encoded: the key's own encoding is not in that text, since
    its characters depend on where the key starts in a 3-byte group (a second attacker's finding). What is left around
    `***` carries at most a few bits of the key, at its edges."""
    secret = "sk-Secr3tKeyValue42abcdef"
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        echoed = encode(f"{before}{secret}{after}".encode()).decode()
        cleaned = remove_secrets(f"header={echoed}.", [secret])
        assert cleaned.count(REDACTED) == 1, cleaned
        kept = len(cleaned) - len("header=***.")  # the characters left of the echo
        assert len(echoed) - kept >= len(secret) * 4 // 3 - 4, "at most 4 characters of the key's encoding are left"
