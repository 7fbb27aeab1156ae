"""Command-line overrides with their literal secrets moved into the environment, before Hydra ever sees them.

Hydra writes overrides to its sweep snapshot (`multirun.yaml`), logs them when it launches sweep jobs and echoes them
when a job fails. `hide_secrets` rewrites every override holding a secret (see `fleetbench.secrets`) so that the secret
becomes an `${oc.env:FLEETBENCH_SECRET_<n>}` reference: everything Hydra keeps or prints holds only the reference,
and the job, which runs in this process or a child of it, resolves the real value.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Quote, QuotedString

from fleetbench.errors import ConfigError
from fleetbench.secrets import SECRET_KEY, SecretVault, replace_secrets, secret_spans


def hide_secrets(args: Sequence[str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """`args` with the secrets of every override replaced by environment references set in `environ`.

    Options (`-m`, `--multirun`) and overrides without a secret are returned unchanged. An override that holds a
    secret but does not parse fails with a message that does not repeat it.
    """
    vault = SecretVault(os.environ if environ is None else environ)
    parser = OverridesParser.create()
    taking_values = _flags_taking_a_value()
    multirun = any(arg in ("-m", "--multirun") for arg in args)
    out: list[str] = []
    for index, arg in enumerate(args):
        previous = args[index - 1] if index else ""
        flag_value = previous in taking_values  # `-cd DIR`, `-p hydra.launcher`: a flag's value, not an override
        out.append(arg if arg.startswith("-") or flag_value else _hidden(arg, parser, vault, multirun))
    return out


def _flags_taking_a_value() -> set[str]:
    """The spellings of Hydra's own flags that always take a value (`-cd`, `--config-dir`, `-p`, `-cn`...); not
    `--info`, whose value is optional: what follows it is still checked for secrets."""
    from hydra._internal.utils import get_args_parser

    return {
        spelling
        for action in get_args_parser()._actions  # no public accessor; argparse has kept this name for decades
        if action.option_strings and action.nargs is None and action.const is None
        for spelling in action.option_strings
    }


def _hidden(arg: str, parser: OverridesParser, vault: SecretVault, multirun: bool) -> str:
    try:
        override = parser.parse_override(arg)
    except Exception:  # Hydra's parser errors quote the whole override: keep a secret out of that message
        written_key, _, written_value = arg.partition("=")
        if SECRET_KEY.search(written_key.lstrip("+~")) or secret_spans(written_value):
            raise ConfigError(
                f"{written_key.lstrip('+~')}: the override does not parse (its value is not shown: it holds a secret)"
            ) from None
        return arg
    name = override.key_or_group.rsplit(".", 1)[-1]
    value = override.value()
    if isinstance(value, ChoiceSweep):
        hidden = ChoiceSweep(
            list=[_hide(_plain(v), name, vault) for v in value.list],
            simple_form=False,
            shuffle=value.shuffle,
            tags=value.tags,
        )
        changed = hidden.list != [_plain(v) for v in value.list]
        if changed and value.simple_form and not multirun:
            # Hydra would explain the comma by quoting the value: with the secret hidden that quote shows only
            # `${oc.env:FLEETBENCH_SECRET_n}` references, which tell the user nothing.
            key = override.get_key_element().lstrip("+~")
            raise ConfigError(
                f"{key}: the value has a comma (not shown: it holds a secret): write a list ({key}=[...]) for several "
                f"values, quote it to keep it one string ({key}='...'), or sweep over it with -m"
            )
    else:
        hidden = _hide(value, name, vault)
        changed = hidden != value
    if not changed:
        return arg
    return f"{override.get_key_element()}={_text(hidden)}"


def _plain(value: Any) -> Any:
    """A parsed element with quoted strings turned into plain strings, at any depth."""
    if isinstance(value, QuotedString):
        return value.text
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _hide(value: Any, key: str, vault: SecretVault) -> Any:
    if isinstance(value, str):
        return replace_secrets(value, key, vault.reference)
    if isinstance(value, list):
        return [_hide(v, key, vault) for v in value]
    if isinstance(value, dict):
        # Under a secret's key everything is secret, whatever its shape (`api_keys=[{a: KEY}]` is refused later,
        # but Hydra prints and saves the override first).
        return {k: _hide(v, key if SECRET_KEY.search(key) else str(k), vault) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    """The override syntax of a value; strings are single-quoted, which keeps `${...}` references intact."""
    if isinstance(value, ChoiceSweep):
        text = f"choice({','.join(_text(v) for v in value.list)})"
        text = f"shuffle({text})" if value.shuffle else text
        return f"tag({','.join(sorted(value.tags))},{text})" if value.tags else text
    if isinstance(value, str):
        return QuotedString(text=value, quote=Quote.single).with_quotes()
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_text(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)
