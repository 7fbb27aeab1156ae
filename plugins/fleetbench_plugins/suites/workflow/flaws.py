"""Flaw injection into a reference plan (§2.4): 7 flaw types x 3 severities, deterministic from a seed.

Every flaw changes what the agent reads: either the plan's tool order (`FlawedPlan.sequence`, which the scorer
compares against) or per-step notes rendered under the steps (`FlawedPlan.step_notes`, keyed by 0-based step index).
The original rendered three flaw types exactly like the optimal plan (§2.4 [BUG]); here:

- parameter_error renders explicit wrong parameter values on the affected steps;
- logical_inconsistency renders contradicting formats between steps (step k writes CSV, step k+1 reads XML);
- semantic_drift replaces later steps with a registry neighbour of the step before (same category, different
  operation), falling back to search and then to any other tool, so it can never be a no-op.

Severity sets how many steps are affected (light: one; medium: in between; severe: the original's method where it
was sound):

- sequence_disorder: tools with dependencies moved to the front, reversed if that changes nothing;
- tool_misuse: floor(n/2)+1 steps replaced by the most similar tool of another operation;
- parameter_error: two wrong values on every step (values a validating tool rejects, see `WRONG_VALUES`);
- missing_step: only the first and last steps kept;
- redundant_operations: every step duplicated;
- logical_inconsistency: every consecutive pair contradicts on format (one step: it contradicts its own paths);
- semantic_drift: every step from the second on drifts.

Applicability (`flaw_applies`): a flaw is injected only where it can be what it claims. missing_step and semantic_drift
need a plan of at least two steps (a one-step plan has no step to drop without emptying the plan, and no "later step"
to drift), sequence_disorder at least two different tools (nothing to reorder otherwise). The suite samples flawed
units only among tasks whose reference plan qualifies, and `inject_flaw` refuses any other plan, so a flawed prompt
always carries its flaw and is always scored against the plan it shows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbench_plugins.suites.workflow.model import FLAW_TYPES, SEVERITIES, Tool, ToolParameter
from fleetbench_plugins.suites.workflow.registry import ToolRegistry, json_type
from fleetbench_plugins.suites.workflow.validation import check_call

FORMATS = ("csv", "json", "xml", "yaml", "parquet")
# Values that look like what a plan might say but that a validating tool rejects (validation.check_call): missing,
# of the wrong type, out of range, or contradicting the data. A value the tool would accept is never used.
WRONG_VALUES: Mapping[str, tuple[Any, ...]] = {
    "source": ("", ["data/input.json"], 404),
    "destination": ("", {"path": "data/output.json"}, []),
    "data": (None, "data/input.json", []),
    "schema": ("schema_v0.json", [], None),
    "options": ([], "fast", None),
    "input_format": ("xml", "yaml", "binary"),
    "output_format": ("yaml", "xml", "binary"),
    "timeout": (0, -5, "30s"),
    "retry_count": (-1, 100, "3"),
    "precision": (-3, "high", 2.5),
}
_WRONG_BY_TYPE: Mapping[str, tuple[Any, ...]] = {
    "string": ("", []),
    "integer": ("1", 1.5),
    "number": ("1.0", []),
    "boolean": ("maybe", 1),
    "object": ([], "{}"),
    "array": ({}, "[]"),
}

Steps = tuple[str, ...]
Notes = dict[int, str]


class FlawNotApplicable(ValueError):
    """The flaw cannot be injected into this plan as what it claims to be (see `flaw_applies`)."""


@dataclass(frozen=True)
class FlawedPlan:
    """A flawed plan: the tool order the agent is told to follow, per-step notes, and an internal description.

    `description` is for logs and analysis only; it is never rendered (the prompt gives no hint of the flaw).
    """

    sequence: Steps
    step_notes: Mapping[int, str]
    description: str
    flaw_type: str
    severity: str


def _count(severity: str, light: int, severe: int) -> int:
    """How many steps a severity affects: light..severe, medium in between."""
    severe = max(light, severe)
    return {"light": light, "medium": max(light, (light + severe) // 2), "severe": severe}[severity]


# What a flaw needs of the reference plan, in words (for errors and docs) and as a test on the plan.
APPLICABILITY: Mapping[str, str] = {
    "sequence_disorder": "at least two different tools",
    "missing_step": "at least two steps",
    "semantic_drift": "at least two steps",
}
_APPLIES: Mapping[str, Callable[[Sequence[str]], bool]] = {
    "sequence_disorder": lambda seq: len(set(seq)) >= 2,
    "missing_step": lambda seq: len(seq) >= 2,
    "semantic_drift": lambda seq: len(seq) >= 2,
}


def flaw_applies(flaw_type: str, sequence: Sequence[str]) -> bool:
    """Whether `flaw_type` can be injected into `sequence` as what it claims to be (see APPLICABILITY)."""
    if flaw_type not in FLAW_TYPES:
        raise ValueError(f"flaw type {flaw_type!r} is not one of {', '.join(FLAW_TYPES)}")
    return bool(sequence) and _APPLIES.get(flaw_type, bool)(sequence)


def _disorder(seq: Steps, severity: str, registry: ToolRegistry, rng: random.Random) -> tuple[Steps, Notes, str]:
    if severity == "light":
        pairs = [i for i in range(len(seq) - 1) if seq[i] != seq[i + 1]] or [0]
        i = rng.choice(pairs)
        first: Steps = (*seq[:i], *seq[i + 1 : i + 2], seq[i], *seq[i + 2 :])
    elif severity == "medium":
        first = (*seq[-1:], *seq[:-1])  # the final (output) step comes first
    else:  # the original's `dependency` method: every tool with dependencies goes to the front
        has_deps = [t for t in seq if registry.get(t).dependencies]
        first = (*has_deps, *(t for t in seq if not registry.get(t).dependencies))
    # With two different tools, rotating by one always changes the order (only a constant sequence equals it).
    changed = next(c for c in (first, tuple(reversed(seq)), (*seq[1:], *seq[:1])) if c != seq)
    return changed, {}, f"order changed: {list(seq)} -> {list(changed)}"


def _other_function(name: str, used: Sequence[str], registry: ToolRegistry) -> str:
    """The tool most similar to `name` that does something else; same category and unused preferred."""
    tool = registry.get(name)
    others = [t for t in registry.similar(name) if t.operation != tool.operation] or list(registry.similar(name))
    if not others:
        raise ValueError(f"tool misuse needs a tool other than {name!r} in the registry")
    # sorted() is stable: within each preference class the search ranking decides
    return sorted(others, key=lambda t: (t.category != tool.category, t.name in used))[0].name


def _misuse(seq: Steps, severity: str, registry: ToolRegistry, rng: random.Random) -> tuple[Steps, Notes, str]:
    count = min(len(seq), _count(severity, 1, len(seq) // 2 + 1))
    new = list(seq)
    for i in sorted(rng.sample(range(len(seq)), count)):
        new[i] = _other_function(seq[i], new, registry)
    return tuple(new), {}, f"tools replaced: {list(seq)} -> {new}"


def _wrong_value(tool: Tool, param: ToolParameter, rng: random.Random) -> Any:
    """A value for `param` that `tool` rejects: one of the plausible WRONG_VALUES, else one of the wrong type."""
    for candidates in (WRONG_VALUES.get(param.name, ()), _WRONG_BY_TYPE[json_type(param)]):
        rejected = [value for value in candidates if check_call(tool, {param.name: value}).problem is not None]
        if rejected:
            return rng.choice(rejected)
    raise ValueError(f"no value of parameter {param.name!r} is rejected by {tool.name}")


def _parameter_note(name: str, per_step: int, registry: ToolRegistry, rng: random.Random) -> str:
    tool = registry.get(name)
    params = list(tool.parameters) or [ToolParameter("options", "object", "", False, {})]
    required = [p for p in params if p.required]
    optional = [p for p in params if not p.required]
    rng.shuffle(required)
    rng.shuffle(optional)
    chosen = (required + optional)[:per_step]
    values = ", ".join(f"{p.name}={json.dumps(_wrong_value(tool, p, rng))}" for p in chosen)
    return f"Parameters: {values}"


def _parameters(seq: Steps, severity: str, registry: ToolRegistry, rng: random.Random) -> tuple[Steps, Notes, str]:
    count = _count(severity, 1, len(seq))
    per_step = 2 if severity == "severe" else 1
    notes = {i: _parameter_note(seq[i], per_step, registry, rng) for i in sorted(rng.sample(range(len(seq)), count))}
    return seq, notes, f"wrong parameters on steps {[i + 1 for i in notes]}"


def _missing(seq: Steps, severity: str, registry: ToolRegistry, rng: random.Random) -> tuple[Steps, Notes, str]:
    n = len(seq)
    count = _count(severity, 1, max(1, n - 2))
    if severity == "severe":  # the original's `critical` method: keep the first and last steps
        removed = set(range(1, n - 1)) if n >= 3 else {0}
    else:  # validation steps first (the original's `validation` method), then other middle steps
        candidates = list(range(1, n - 1)) if n >= 3 else list(range(n))
        rng.shuffle(candidates)
        candidates.sort(key=lambda i: registry.get(seq[i]).operation != "validator")
        removed = set(candidates[:count])
    kept = tuple(t for i, t in enumerate(seq) if i not in removed)
    return kept, {}, f"steps removed: {[seq[i] for i in sorted(removed)]}"


def _redundant(seq: Steps, severity: str, registry: ToolRegistry, rng: random.Random) -> tuple[Steps, Notes, str]:
    doubled = set(rng.sample(range(len(seq)), _count(severity, 1, len(seq))))
    new = tuple(t for i, step in enumerate(seq) for t in ((step, step) if i in doubled else (step,)))
    return new, {}, f"steps duplicated: {[seq[i] for i in sorted(doubled)]}"


def _add(notes: Notes, index: int, note: str) -> None:
    notes[index] = f"{notes[index]}\n{note}" if index in notes else note


def _logic(seq: Steps, severity: str, registry: ToolRegistry, rng: random.Random) -> tuple[Steps, Notes, str]:
    notes: Notes = {}
    if len(seq) == 1:  # contradict the step's own paths: JSON files read and written as other formats
        read, write = (rng.choice([f for f in FORMATS if f != "json"]) for _ in range(2))
        _add(notes, 0, f"Input: read data/input.json as {read.upper()}")
        _add(notes, 0, f"Output: write the result to data/output.json as {write.upper()}")
        return seq, notes, "single step reads and writes formats that contradict its paths"
    pairs = sorted(rng.sample(range(len(seq) - 1), _count(severity, 1, len(seq) - 1)))
    for i in pairs:
        written, read = rng.sample(FORMATS, 2)
        _add(notes, i, f"Output: save the result as {written.upper()}")
        _add(notes, i + 1, f"Input: read the {read.upper()} produced by step {i + 1}")
    return seq, notes, f"format contradictions between steps {[(i + 1, i + 2) for i in pairs]}"


def _neighbour(previous: str, original: str, used: Sequence[str], registry: ToolRegistry, rng: random.Random) -> str:
    """What drift puts where `original` was: a same-category tool of `previous` with another operation (unused
    preferred); else `previous`'s closest search match; else any tool other than `original`, so never a no-op."""
    tool = registry.get(previous)
    banned = {original, previous}
    peers = sorted(t.name for t in registry.same_category(previous) if t.operation != tool.operation)
    peers = [name for name in peers if name not in banned]
    pool = [name for name in peers if name not in used] or peers
    if pool:
        return rng.choice(pool)
    searched = [t.name for t in registry.search(tool.description, k=len(registry)) if t.name not in banned]
    anything = [name for name in registry.names if name != original]
    if not searched and not anything:
        raise ValueError(f"semantic drift needs a tool other than {original!r} in the registry")
    return (searched or anything)[0]


def _drift(seq: Steps, severity: str, registry: ToolRegistry, rng: random.Random) -> tuple[Steps, Notes, str]:
    count = _count(severity, 1, len(seq) - 1)
    new = list(seq)
    for i in range(len(seq) - count, len(seq)):  # the original drifted from step 2 on, each from the one before
        new[i] = _neighbour(new[i - 1], seq[i], new[:i], registry, rng)
    return tuple(new), {}, f"drift: {list(seq)} -> {new}"


_Injector = Callable[[Steps, str, ToolRegistry, random.Random], tuple[Steps, Notes, str]]
_INJECTORS: Mapping[str, _Injector] = {
    "sequence_disorder": _disorder,
    "tool_misuse": _misuse,
    "parameter_error": _parameters,
    "missing_step": _missing,
    "redundant_operations": _redundant,
    "logical_inconsistency": _logic,
    "semantic_drift": _drift,
}


def inject_flaw(
    sequence: tuple[str, ...], flaw_type: str, severity: str, registry: ToolRegistry, seed: int
) -> FlawedPlan:
    """`sequence` (a reference plan) with one flaw of `flaw_type` at `severity`; deterministic for a seed."""
    if flaw_type not in _INJECTORS:
        raise ValueError(f"flaw type {flaw_type!r} is not one of {', '.join(FLAW_TYPES)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    steps = tuple(registry.resolve(name) for name in sequence)
    if not flaw_applies(flaw_type, steps):
        need = APPLICABILITY.get(flaw_type, "at least one step")
        raise FlawNotApplicable(f"{flaw_type} needs a plan of {need}; {list(steps)} has not")
    rng = random.Random(f"{flaw_type}:{severity}:{seed}:{','.join(steps)}")
    flawed, notes, what = _INJECTORS[flaw_type](steps, severity, registry, rng)
    return FlawedPlan(flawed, dict(sorted(notes.items())), f"{flaw_type} ({severity}): {what}", flaw_type, severity)
