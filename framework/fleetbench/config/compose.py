"""Compose the configuration with Hydra's compose API and turn Hydra/OmegaConf failures into one-line `ConfigError`s."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import (
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from fleetbench.config.groups import broken_plugin
from fleetbench.config.overrides import composed_as_given, normalize
from fleetbench.config.schema import register
from fleetbench.config.spec import accepted_range
from fleetbench.errors import ConfigError, choices_text
from fleetbench.limits import text_problem
from fleetbench.secrets import SECRET_KEY, secret_spans

CONFIG_MODULE = "fleetbench_conf"
CLUSTER_LAUNCHERS = ("joblib", "ray", "submitit_local", "submitit_slurm")
"""The Hydra launchers the `cluster` extra installs."""
CLUSTER_HINT = (
    "the joblib, submitit and Ray launchers come with the cluster extra: pip install -c constraints.txt -e '.[cluster]'"
)
CONFIG_NAME = "config"


@contextmanager
def hydra_context() -> Iterator[None]:
    """Initialise Hydra on the packaged configs (clearing any earlier global state)."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        yield


def compose_config(overrides: Sequence[str], config_name: str | None = None) -> DictConfig:
    """Compose `conf/config.yaml` (or `config_name`) with command-line style overrides; bad input raises
    `ConfigError`."""
    with hydra_context():
        try:
            cfg, _ = compose_normalized(overrides, config_name)
        except Exception as exc:  # Hydra wraps everything; translate() re-raises what it cannot explain
            raise translate(exc, overrides) from None
    return cfg


def compose_normalized(
    overrides: Sequence[str], config_name: str | None = None, *, with_hydra: bool = False
) -> tuple[DictConfig, list[str]]:
    """The configuration `overrides` compose once normalized, and the normalized overrides (call inside
    `hydra_context`; Hydra's errors propagate). As few compositions as the overrides allow, each about a quarter of a
    second: one when they compose as typed and normalizing could not change them (`compose_as_given`); two when
    normalizing must look (a catalog param, `models.x.deployments.0.params.latency_ms=2`, sets a node the schema
    leaves untyped) but changes nothing; three when it rewrites them."""
    name = config_name or CONFIG_NAME
    typed = _composed_as_typed(overrides, name, with_hydra)
    if typed is not None and composed_as_given(overrides, typed):
        return typed, list(overrides)
    normalized = normalize_overrides(overrides)
    if typed is not None and normalized == list(overrides):
        return typed, normalized
    return compose(config_name=name, overrides=normalized, return_hydra_config=with_hydra), normalized


def compose_as_given(
    overrides: Sequence[str], config_name: str | None = None, *, with_hydra: bool = False
) -> DictConfig | None:
    """The configuration `overrides` compose as typed, when normalizing could not change them; else None (call inside
    `hydra_context`). One composition instead of two for the usual command line: normalizing composes the group
    selections first to learn which keys are lists, and a composition takes about a quarter of a second.
    `with_hydra` keeps Hydra's own settings under `hydra` (see `without_hydra`)."""
    cfg = _composed_as_typed(overrides, config_name or CONFIG_NAME, with_hydra)
    return cfg if cfg is not None and composed_as_given(overrides, cfg) else None


def _composed_as_typed(overrides: Sequence[str], name: str, with_hydra: bool) -> DictConfig | None:
    """What `overrides` compose exactly as typed, or None where that fails."""
    try:
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=with_hydra)
    except Exception:  # a scalar for a list, a catalog param without `+`, or a real error: normalizing decides
        return None


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The application's part of a configuration composed `with_hydra` (a copy; `cfg` keeps Hydra's settings, whose
    interpolations may read the application's keys)."""
    application = copy.copy(cfg)
    with open_dict(application):
        del application["hydra"]
    return application


def normalize_overrides(overrides: Sequence[str]) -> list[str]:
    """`overrides.normalize` against this application's configuration (call inside `hydra_context`)."""
    return normalize(overrides, lambda selected: compose(config_name=CONFIG_NAME, overrides=selected))


def translate(exc: BaseException, overrides: Sequence[str] = ()) -> BaseException:
    """A one-line `ConfigError` for a Hydra/OmegaConf composition failure (or the exception itself if unknown)."""
    if isinstance(exc, ConfigError):
        return exc
    unreadable = _unreadable_file(exc, overrides)
    if unreadable is not None:
        return ConfigError(unreadable)
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", str(exc))
    if isinstance(exc, MissingConfigException) and exc.options is not None and missing:
        group, choice = missing.groups()
        broken = broken_plugin(group, choice)
        if broken is not None:
            return broken
        hint = f" ({CLUSTER_HINT})" if group == "hydra/launcher" and choice in CLUSTER_LAUNCHERS else ""
        return ConfigError(f"{group}: no config {choice!r}; valid choices: {choices_text(exc.options)}{hint}")
    keyed = _first_keyed_cause(exc)
    if isinstance(keyed, ConfigKeyError | ConfigAttributeError):
        return ConfigError(_unknown_key_message(keyed, overrides))
    if keyed is not None:
        return ConfigError(_keyed_message(keyed, overrides))
    if isinstance(exc, OverrideParseException):
        return ConfigError(_unparsable(exc))
    ambiguous = re.match(r"Ambiguous value for argument '([^=']+)=(.*)'$", str(exc).splitlines()[0] if str(exc) else "")
    if ambiguous:
        key, value = ambiguous.groups()
        return ConfigError(
            f"{key}: {value!r} has a comma: quote it to keep it one string ({key}={quoted(value)}), write a list "
            f"({key}=[{value}]) or sweep over it with -m"
        )
    if isinstance(exc, HydraException | OmegaConfBaseException):
        return ConfigError(_one_line(exc))
    return exc


def _keyed_message(exc: OmegaConfBaseException, overrides: Sequence[str]) -> str:
    """A failure about one key; a list or mapping typed for a text key (`run.label=[x]`) says how to quote it, and an
    index past a list's end (`models.x.deployments.5.rpm=1`) names the indices there are."""
    key = str(exc.full_key)
    entries = exc.parent_node
    index = re.search(r"\[(\d+)\]$", key)
    if isinstance(entries, ListConfig) and index is not None and int(index.group(1)) >= len(entries):
        there = {0: "none", 1: "index 0"}.get(len(entries), f"indices 0 to {len(entries) - 1}")
        return f"{key}: no such entry; the list has {len(entries)} ({there}); give the whole list to change its length"
    given = [o.split("=", 1)[1] for o in overrides if "=" in o and o.split("=", 1)[0].lstrip("+~") == key]
    if given and re.match(r"Cannot convert '(list|dict)' to string", _one_line(exc)):
        value = given[-1]
        return f"{key}: expected text, got {value!r}, which reads as a list or mapping; quote it: {key}={quoted(value)}"
    message = _one_line(exc)
    wrong_type = _wrong_type(message)
    if wrong_type is not None:
        value, wanted = wrong_type
        accepted = accepted_range(key)
        return f"{key}: expected {wanted}, got {value!r}" + (f"; must be {accepted}" if accepted else "")
    return f"{key}: {message}"


def _wrong_type(message: str) -> tuple[str, str] | None:
    """(the value given, what the key wants) of OmegaConf's failure to convert a value to a typed key's type."""
    number = re.fullmatch(r"Value '(.*)' of type '\w+' could not be converted to (Integer|Float)", message)
    if number is not None:
        return number.group(1), "an integer" if number.group(2) == "Integer" else "a number"
    boolean = re.fullmatch(r"Value '(.*)' is not a valid bool \(type \w+\)", message)
    return (boolean.group(1), "true or false") if boolean is not None else None


def _unreadable_file(exc: BaseException, overrides: Sequence[str]) -> str | None:
    """The one-line message for a config file that is not YAML, or not UTF-8 text; None for other failures."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, yaml.YAMLError):
            mark = getattr(current, "problem_mark", None)
            problem = " ".join(str(getattr(current, "problem", None) or current).split())
            where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "a config file"
            return f"{where}: not valid YAML ({problem})"
        if isinstance(current, UnicodeDecodeError):
            where = _undecodable_file(overrides, bytes(current.object)) or "a config file"
            return f"{where}: not UTF-8 text ({current.reason} at byte {current.start})"
        current = current.__cause__ or current.__context__
    return None


def _undecodable_file(overrides: Sequence[str], data: bytes) -> str | None:
    """The YAML file holding `data` (what failed to decode) in a search path given on the command line (`-cd`; the
    packaged configuration is UTF-8)."""
    for override in overrides:
        found = re.fullmatch(r"hydra\.searchpath=\[file://(.+)\]", override)
        if found is None:
            continue
        for path in sorted(Path(found.group(1)).rglob("*.yaml")):
            if path.read_bytes() == data:
                return str(path)
    return None


EXPERIMENT_GROUP = "experiment"
MISPLACED_PACKAGES = (EXPERIMENT_GROUP, "_group_")  # where a preset's keys land without `# @package _global_`


def preset_without_header(preset: str) -> str:
    """The one line for a preset whose keys did not land at the top level."""
    return (
        f"experiment={preset}: the preset file experiment/{preset}.yaml does not put its keys at the top level (nor "
        "does an empty file): a preset's first line must be `# @package _global_`, as in the shipped "
        "conf/experiment/*.yaml, so that its keys (run:, suite:, ...) apply there"
    )


def _chosen_preset(overrides: Sequence[str]) -> str | None:
    """The preset chosen on the command line (`experiment=NAME`), if any."""
    chosen = [o.split("=", 1)[1] for o in overrides if o.lstrip("+~").startswith(f"{EXPERIMENT_GROUP}=")]
    return chosen[-1] if chosen else None


def _first_keyed_cause(exc: BaseException) -> OmegaConfBaseException | None:
    """The first exception in the chain that knows which config key it is about."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, OmegaConfBaseException) and getattr(current, "full_key", None):
            return current
        current = current.__cause__ or current.__context__
    return None


def _unknown_key_message(exc: OmegaConfBaseException, overrides: Sequence[str]) -> str:
    full_key = str(getattr(exc, "full_key", "") or "?")
    preset = _chosen_preset(overrides)
    if (
        preset
        and full_key.split(".")[0].split("[")[0] in MISPLACED_PACKAGES
        and not any(o.lstrip("+~").startswith(f"{EXPERIMENT_GROUP}.") for o in overrides)
    ):  # not typed on the command line: the preset file's content
        return preset_without_header(preset)
    parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
    valid = _keys_at(parent, [o for o in overrides if _override_key(o) != full_key])
    plugin = valid.pop("plugin", None)
    if plugin is None:
        return f"{full_key}: no such key; valid keys{f' under {parent}' if parent else ''}: {choices_text(list(valid))}"
    # A plugin section: its keys are the plugin's options; `plugin` itself is chosen through the group.
    if not valid:
        return f"{full_key}: no such key; {parent} {plugin!r} takes no options (`{parent}=NAME` picks another plugin)"
    return f"{full_key}: no such key; valid keys under {parent} ({plugin!r}): {choices_text(list(valid))}"


def _override_key(override: str) -> str:
    """An override's key as OmegaConf names it in errors (`a.deployments.0.x` → `a.deployments[0].x`)."""
    key = override.split("=", 1)[0].strip().lstrip("+~")
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", key)


def _keys_at(path: str, overrides: list[str]) -> dict[str, object]:
    """Keys (and plain values) of the composed node at `path`, composing again without the offending override
    (inside Hydra's context)."""
    try:
        node = compose(config_name=CONFIG_NAME, overrides=overrides)
    except Exception:  # the other overrides, or a config file, are broken too: fall back to the typed schema's keys
        node = None
    selected = OmegaConf.select(node, path) if node is not None and path else node
    if not isinstance(selected, DictConfig):
        selected = _schema_at(path)
    if not isinstance(selected, DictConfig):
        return {}
    container = OmegaConf.to_container(selected, resolve=False)  # unresolved: a secret's interpolation stays text
    return {str(key): value for key, value in container.items()} if isinstance(container, dict) else {}


def _schema_at(path: str) -> DictConfig | None:
    """The typed schema of the node at `path`, where composition cannot say: a catalog entry (`models.NAME`) or one
    of its deployments (`models.NAME.deployments[N]`) has the keys of its dataclass whatever its name."""
    from fleetbench.config.schema import DeploymentConf, FleetbenchConf, ModelConf

    schema: type | None = None
    if re.fullmatch(r"models\.[^.\[\]]+", path):
        schema = ModelConf
    elif re.fullmatch(r"models\.[^.\[\]]+\.deployments\[\d+\]", path):
        schema = DeploymentConf
    root = OmegaConf.structured(schema or FleetbenchConf)
    selected = root if schema is not None or not path else OmegaConf.select(root, path)
    return selected if isinstance(selected, DictConfig) else None


def _unparsable(exc: OverrideParseException) -> str:
    """Hydra's parser names no key (and its lexer no cause): say which override, why when Hydra knows, and how to
    quote a value."""
    override = str(exc.override or "").strip()
    if not override:
        return _one_line(exc)
    key, _, value = override.partition("=")
    if text_problem(override) is not None:  # bytes that are not UTF-8 arrive as lone surrogates: quoting cannot help
        return f"{key.lstrip('+~')}: the override is not UTF-8 text ({override.encode(errors='surrogateescape')!r})"
    if SECRET_KEY.search(key.rsplit(".", 1)[-1]) or secret_spans(value):  # never echo a key typed on the line
        return (
            f"{key.lstrip('+~')}: the override does not parse (its value is not shown: it holds a secret); quote the "
            f"value, e.g. {key}='...'"
        )
    detail = _one_line(exc)
    why = "" if detail.startswith("LexerNoViableAltException") else f" ({detail})"
    return (
        f"{key.lstrip('+~')}: the override {override!r} does not parse{why}; quote a value holding characters other "
        f"than letters, digits and _-./:, e.g. {key}={quoted(value)}"
    )


def quoted(value: str) -> str:
    """`value` as a quoted string of Hydra's override grammar: in single quotes, or in double quotes when it holds a
    single quote and no double one. A quote of the enclosing kind is escaped, and so are backslashes that precede a
    quote or the closing one (the grammar's only escapes)."""
    quote = '"' if "'" in value and '"' not in value else "'"
    doubled = re.sub(rf"(\\+)(?={quote}|$)", lambda run: run.group(1) * 2, value)
    return quote + doubled.replace(quote, "\\" + quote) + quote


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("full_key", "object_type", "reference_type"))]
    return "; ".join(useful[:2]) if useful else type(exc).__name__
