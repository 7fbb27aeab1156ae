"""Flaw injection (§2.4): every type x severity changes the plan as specified, visibly, and deterministically; a flaw
that cannot be what it claims on a plan (a one-step plan has nothing to reorder, drop or drift) is refused for it."""

from __future__ import annotations

import json
import re

import pytest

from fleetbench_plugins.suites.workflow.flaws import FORMATS, FlawedPlan, FlawNotApplicable, flaw_applies, inject_flaw
from fleetbench_plugins.suites.workflow.model import FLAW_TYPES, SEVERITIES
from fleetbench_plugins.suites.workflow.reference import reference_workflow
from fleetbench_plugins.suites.workflow.registry import ToolRegistry, load_registry
from fleetbench_plugins.suites.workflow.tasks import load_tasks
from fleetbench_plugins.suites.workflow.validation import check_call

REGISTRY = load_registry()
SEQUENCES = sorted({reference_workflow(task) for task in load_tasks()})
READER, PARSER, TRANSFORMER, VALIDATOR, WRITER = (
    "file_operations_reader",
    "data_processing_parser",
    "data_processing_transformer",
    "data_processing_validator",
    "file_operations_writer",
)
FIVE = (READER, PARSER, TRANSFORMER, VALIDATOR, WRITER)


def _plans(flaw_type: str, severity: str) -> list[tuple[tuple[str, ...], FlawedPlan]]:
    plans = [
        (seq, inject_flaw(seq, flaw_type, severity, REGISTRY, seed=5)) for seq in SEQUENCES if _applies(flaw_type, seq)
    ]
    assert plans
    return plans


def _applies(flaw_type: str, seq: tuple[str, ...]) -> bool:
    """The applicability rule, from the flaws' definitions (§2.4): reordering needs two different tools, dropping a
    step without emptying the plan and drifting "from step 2" need two steps; every other flaw applies to any plan."""
    if flaw_type == "sequence_disorder":
        return len(set(seq)) >= 2
    if flaw_type in ("missing_step", "semantic_drift"):
        return len(seq) >= 2
    return True


@pytest.mark.parametrize("flaw_type", FLAW_TYPES)
def test_applicability_follows_the_definitions_and_is_enforced(flaw_type: str) -> None:
    one_step = [seq for seq in SEQUENCES if len(seq) == 1]
    assert len(one_step) > 10  # the shipped data has one-step plans (simple_task, basic_task)
    for seq in SEQUENCES:
        assert flaw_applies(flaw_type, seq) is _applies(flaw_type, seq)
        if not _applies(flaw_type, seq):
            for severity in SEVERITIES:
                with pytest.raises(FlawNotApplicable, match=f"{flaw_type} needs a plan of at least two"):
                    inject_flaw(seq, flaw_type, severity, REGISTRY, seed=5)
    assert flaw_applies(flaw_type, (READER, READER)) is (flaw_type != "sequence_disorder")
    assert not flaw_applies(flaw_type, ())


def _expected_count(severity: str, severe: int) -> int:
    return {"light": 1, "medium": max(1, (1 + severe) // 2), "severe": severe}[severity]


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("flaw_type", FLAW_TYPES)
def test_every_flaw_changes_the_sequence_or_the_notes(flaw_type: str, severity: str) -> None:
    for seq, plan in _plans(flaw_type, severity):
        assert plan.sequence != seq or plan.step_notes, (flaw_type, severity, seq)
        assert plan.flaw_type == flaw_type and plan.severity == severity
        assert all(name in REGISTRY.names for name in plan.sequence)
        assert all(0 <= index < len(plan.sequence) for index in plan.step_notes)


@pytest.mark.parametrize("flaw_type", FLAW_TYPES)
def test_injection_is_deterministic_from_the_seed(flaw_type: str) -> None:
    for severity in SEVERITIES:
        assert inject_flaw(FIVE, flaw_type, severity, REGISTRY, 11) == inject_flaw(
            FIVE, flaw_type, severity, REGISTRY, 11
        )
    plans = [inject_flaw(FIVE, flaw_type, "light", REGISTRY, seed) for seed in range(30)]
    variants = {(plan.sequence, tuple(plan.step_notes.items())) for plan in plans}
    if flaw_type != "missing_step":  # light missing_step on 5 steps: always one of 3 middle steps
        assert len(variants) > 1


@pytest.mark.parametrize("severity", SEVERITIES)
def test_sequence_disorder_permutes(severity: str) -> None:
    for seq, plan in _plans("sequence_disorder", severity):
        assert sorted(plan.sequence) == sorted(seq) and plan.sequence != seq  # the same steps, in another order
    # severe is the original's `dependency` method: tools that have dependencies go first
    assert inject_flaw(FIVE, "sequence_disorder", "severe", REGISTRY, 0).sequence == (
        TRANSFORMER, VALIDATOR, WRITER, READER, PARSER
    )  # fmt: skip
    no_deps = (READER, "network_fetcher", "utility_cache")
    assert inject_flaw(no_deps, "sequence_disorder", "severe", REGISTRY, 0).sequence == tuple(reversed(no_deps))
    palindrome = (READER, WRITER, READER)  # reversing changes nothing: the order is rotated instead
    assert inject_flaw(palindrome, "sequence_disorder", "medium", REGISTRY, 0).sequence != palindrome


@pytest.mark.parametrize("severity", SEVERITIES)
def test_tool_misuse_replaces_with_another_operation(severity: str) -> None:
    for seq, plan in _plans("tool_misuse", severity):
        assert len(plan.sequence) == len(seq)
        changed = [i for i, (old, new) in enumerate(zip(seq, plan.sequence, strict=True)) if old != new]
        assert len(changed) == min(len(seq), _expected_count(severity, len(seq) // 2 + 1))
        for i in changed:
            assert REGISTRY.get(plan.sequence[i]).operation != REGISTRY.get(seq[i]).operation
            assert REGISTRY.get(plan.sequence[i]).category == REGISTRY.get(seq[i]).category


@pytest.mark.parametrize("severity", SEVERITIES)
def test_parameter_error_renders_explicit_wrong_values(severity: str) -> None:
    for seq, plan in _plans("parameter_error", severity):
        assert plan.sequence == seq
        assert len(plan.step_notes) == _expected_count(severity, len(seq))
        for index, note in plan.step_notes.items():
            values = re.findall(r"(\w+)=", note.removeprefix("Parameters: "))
            assert note.startswith("Parameters: ") and values
            tool = REGISTRY.get(seq[index])
            assert set(values) <= {p.name for p in tool.parameters}
            assert len(values) == min(2 if severity == "severe" else 1, len(tool.parameters))
            # Every value is one a validating tool rejects: following the plan has a consequence (INVALID_INPUT).
            for name, value in _note_values(note).items():
                assert check_call(tool, {name: value}).problem is not None, (tool.name, name, value)


def _note_values(note: str) -> dict[str, object]:
    body, decoder, found = note.removeprefix("Parameters: "), json.JSONDecoder(), {}
    for match in re.finditer(r"\b(\w+)=", body):
        found[match.group(1)] = decoder.raw_decode(body, match.end())[0]
    return found


@pytest.mark.parametrize("severity", SEVERITIES)
def test_missing_step_drops_steps(severity: str) -> None:
    for seq, plan in _plans("missing_step", severity):
        kept = iter(seq)
        assert all(step in kept for step in plan.sequence)  # an ordered subsequence
        assert plan.sequence  # never emptied: there is always a plan to follow and to score against
        removed = len(seq) - len(plan.sequence)
        assert removed == min(len(seq) - 1, _expected_count(severity, max(1, len(seq) - 2)))
    assert inject_flaw(FIVE, "missing_step", "severe", REGISTRY, 0).sequence == (READER, WRITER)
    assert inject_flaw(FIVE, "missing_step", "medium", REGISTRY, 0).sequence.count(VALIDATOR) == 0
    assert len(inject_flaw((READER, WRITER), "missing_step", "severe", REGISTRY, 0).sequence) == 1


@pytest.mark.parametrize("severity", SEVERITIES)
def test_redundant_operations_duplicate_steps(severity: str) -> None:
    for seq, plan in _plans("redundant_operations", severity):
        assert len(plan.sequence) == len(seq) + _expected_count(severity, len(seq))
        deduplicated = [s for i, s in enumerate(plan.sequence) if i == 0 or s != plan.sequence[i - 1]]
        assert tuple(deduplicated) == seq
    assert inject_flaw((READER, WRITER), "redundant_operations", "severe", REGISTRY, 0).sequence == (
        READER, READER, WRITER, WRITER
    )  # fmt: skip


@pytest.mark.parametrize("severity", SEVERITIES)
def test_logical_inconsistency_renders_format_contradictions(severity: str) -> None:
    formats = "|".join(f.upper() for f in FORMATS)
    for seq, plan in _plans("logical_inconsistency", severity):
        assert plan.sequence == seq and plan.step_notes
        if len(seq) == 1:
            note = plan.step_notes[0]
            assert "data/input.json as " in note and "JSON" not in note.split("data/output.json as ")[1]
            continue
        pairs = 0
        for index, note in plan.step_notes.items():
            for written in re.findall(rf"Output: save the result as ({formats})", note):
                read = re.search(
                    rf"Input: read the ({formats}) produced by step {index + 1}", plan.step_notes[index + 1]
                )
                assert read is not None and read.group(1) != written
                pairs += 1
        assert pairs == _expected_count(severity, len(seq) - 1)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_semantic_drift_walks_to_neighbours_and_never_no_ops(severity: str) -> None:
    for seq, plan in _plans("semantic_drift", severity):
        assert plan.sequence[0] == seq[0] and len(plan.sequence) == len(seq)
        count = _expected_count(severity, len(seq) - 1)
        assert plan.sequence[: len(seq) - count] == seq[: len(seq) - count]
        for i in range(len(seq) - count, len(seq)):
            drifted, previous = REGISTRY.get(plan.sequence[i]), REGISTRY.get(plan.sequence[i - 1])
            assert drifted.name != seq[i]
            assert drifted.category == previous.category and drifted.operation != previous.operation


def test_semantic_drift_falls_back_when_a_category_has_no_neighbour() -> None:
    from fleetbench_plugins.suites.workflow.model import Tool

    lonely = ToolRegistry(
        [Tool("solo_tool", "solo", "tool", "Does one thing"), Tool("other_tool", "other", "tool", "Other")]
    )
    plan = inject_flaw(("solo_tool", "other_tool"), "semantic_drift", "severe", lonely, 0)
    assert plan.sequence != ("solo_tool", "other_tool")


def test_severity_affects_more_steps_as_it_rises() -> None:
    def affected(plan: FlawedPlan) -> int:
        return len(plan.step_notes) + sum(a != b for a, b in zip(FIVE, plan.sequence, strict=False))

    for flaw_type in ("tool_misuse", "parameter_error", "logical_inconsistency", "semantic_drift"):
        counts = [affected(inject_flaw(FIVE, flaw_type, severity, REGISTRY, 0)) for severity in SEVERITIES]
        assert counts == sorted(counts) and counts[0] < counts[-1], flaw_type
    lengths = [len(inject_flaw(FIVE, "redundant_operations", s, REGISTRY, 0).sequence) for s in SEVERITIES]
    assert lengths == [6, 8, 10]
    lengths = [len(inject_flaw(FIVE, "missing_step", s, REGISTRY, 0).sequence) for s in SEVERITIES]
    assert lengths == [4, 3, 2]


def test_descriptions_are_internal_and_inputs_are_checked() -> None:
    plan = inject_flaw(FIVE, "tool_misuse", "severe", REGISTRY, 0)
    assert plan.description.startswith("tool_misuse (severe): ")
    with pytest.raises(ValueError, match="flaw type 'typo'"):
        inject_flaw(FIVE, "typo", "severe", REGISTRY, 0)
    with pytest.raises(ValueError, match="severity 'extreme'"):
        inject_flaw(FIVE, "tool_misuse", "extreme", REGISTRY, 0)
    with pytest.raises(FlawNotApplicable, match="tool_misuse needs a plan of at least one step"):
        inject_flaw((), "tool_misuse", "light", REGISTRY, 0)
    assert inject_flaw(("file_operations_reader_8",), "redundant_operations", "light", REGISTRY, 0).sequence == (
        READER, READER
    )  # fmt: skip
