"""The jsonl suite, directly: scorers, dataset validation (each problem names the file and line), which item a unit
asks, and how an episode is scored and recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fleetbench.errors import ConfigError, InfraFailure, UserError
from fleetbench.interfaces import EpisodeContext
from fleetbench.testing.units import make_unit
from fleetbench.types import Cell, Completion, DeploymentSpec, ModelSpec, Outcome, Request, Role
from fleetbench_plugins.suites.jsonl import JsonlOptions, JsonlSuite
from fleetbench_plugins.suites.jsonl.dataset import load_dataset
from fleetbench_plugins.suites.jsonl.scorers import SCORERS, contains, exact, regex

# --- scorers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        ("Paris", "paris", True),
        ("  Paris.  ", "Paris", True),
        ("Paris", "Paris.", True),
        ("new   york", "New York", True),
        ("New\tYork\n", "new york", True),
        ("Paris!", "Paris", False),
        ("Pari", "Paris", False),
        ("27", "-27", False),
        ("", "", True),
        ("..", "", True),
        ("Xavier", "avier", False),
        ("x.", "x", True),
    ],
)
def test_exact_ignores_case_padding_a_trailing_full_stop_and_space_runs(
    answer: str, reference: str, expected: bool
) -> None:
    assert exact(answer, reference) is expected


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        ("The capital is PARIS.", "paris", True),
        ("It is new   york city", "New York", True),
        ("Lyon", "Paris", False),
        ("Par is", "paris", False),
        ("a b", "xx", False),
        ("a  b", "a b", True),
    ],
)
def test_contains_finds_the_reference_inside_the_answer(answer: str, reference: str, expected: bool) -> None:
    assert contains(answer, reference) is expected


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [("answer: 42", r"\b42\b", True), ("answer: 421", r"\b42\b", False), ("ABC", "abc", False), ("x", "^x$", True)],
)
def test_regex_searches_the_answer_case_sensitively(answer: str, reference: str, expected: bool) -> None:
    assert regex(answer, reference) is expected


def test_the_scorers_by_name() -> None:
    assert {"exact": exact, "contains": contains, "regex": regex} == SCORERS


# --- datasets -----------------------------------------------------------------------------------------------------


def _write(tmp_path: Path, lines: Sequence[Any]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


ROW = {"id": "q1", "prompt": "What is 1+1?", "reference": "2"}


def test_a_dataset_keeps_items_in_order_with_their_defaults(tmp_path: Path) -> None:
    rows = [
        {**ROW, "category": "math"},
        "",
        {"id": 7, "prompt": "Capital of France?", "reference": "Paris", "scorer": "contains"},
        "   ",
        {"id": "q3", "prompt": "Say x", "reference": "^x$", "scorer": "regex", "category": "math"},
    ]
    path = _write(tmp_path, rows)
    dataset = load_dataset(str(path), "exact")
    assert dataset.path == path
    assert [(i.item_id, i.scorer, i.category) for i in dataset.items] == [
        ("q1", "exact", "math"),
        ("7", "contains", "all"),
        ("q3", "regex", "math"),
    ]
    assert dataset.categories() == ["math", "all"]
    assert [i.item_id for i in dataset.in_category("math")] == ["q1", "q3"]
    assert len(dataset.digest) == 16


def test_the_digest_follows_the_bytes_of_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, [ROW])
    before = load_dataset(str(path), "exact").digest
    path.write_text(path.read_text() + "\n")
    assert load_dataset(str(path), "exact").digest != before


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (["{not json"], r"data\.jsonl:1: not valid JSON \("),
        ([ROW, "[1, 2]"], r"data\.jsonl:2: expected a JSON object"),
        ([{"prompt": "p", "reference": "r"}], r"data\.jsonl:1: missing or empty 'id'"),
        ([{"id": "a", "reference": "r"}], r"data\.jsonl:1: missing or empty 'prompt'"),
        ([{"id": "a", "prompt": "p", "reference": ""}], r"data\.jsonl:1: missing or empty 'reference'"),
        ([{"id": "a", "prompt": ["p"], "reference": "r"}], r"data\.jsonl:1: missing or empty 'prompt'"),
        ([{**ROW, "scorer": "fuzzy"}], r"data\.jsonl:1: scorer 'fuzzy' is not valid; choices: contains, exact, regex"),
        ([{**ROW, "scorer": "regex", "reference": "("}], r"data\.jsonl:1: reference is not a valid regular expr"),
        ([{**ROW, "id": "x" * 256}], r"data\.jsonl:1: id 'xxxx.*has 256 characters; at most 255"),
        ([ROW, "", {**ROW, "prompt": "again"}], r"data\.jsonl: item id 'q1' appears twice"),
        (["", "  "], r"suite\.dataset: '.*data\.jsonl' holds no items"),
        ([ROW, '{"id": "a\\u0000b", "prompt": "p", "reference": "r"}'], r"data\.jsonl:2: id holds a NUL character"),
        (['{"id": "a", "prompt": "p\\ud800", "reference": "r"}'], r"data\.jsonl:1: prompt holds a lone surrogate"),
        ([{**ROW, "category": "a\x00"}], r"data\.jsonl:1: category holds a NUL character \(at 1\)"),
    ],
)
def test_every_problem_names_the_file_and_line(tmp_path: Path, lines: list[Any], problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        load_dataset(str(_write(tmp_path, lines)), "exact")


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"id": "a", "prompt": "p", "reference": "r"}\n{"id": "b", "prompt": "\xff"}\n')
    with pytest.raises(UserError, match=r"data\.jsonl:2: not UTF-8 text \(byte 0xff\)$"):
        load_dataset(str(path), "exact")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^suite\.dataset: cannot read '.*nowhere\.jsonl': No such file"):
        load_dataset(str(tmp_path / "nowhere.jsonl"), "exact")


def test_a_regex_reference_is_checked_only_for_the_regex_scorer(tmp_path: Path) -> None:
    dataset = load_dataset(str(_write(tmp_path, [{**ROW, "reference": "("}])), "contains")
    assert dataset.items[0].reference == "("


def test_the_builtin_dataset() -> None:
    dataset = load_dataset("builtin", "exact")
    assert dataset.categories() == ["arithmetic", "strings", "counting", "sorting", "comparison"]
    assert len(dataset.items) == 120


# --- the suite ----------------------------------------------------------------------------------------------------

MODEL = ModelSpec("Sim-Agent", "simulated", (DeploymentSpec("Sim-Agent"),))
CONTEXT = EpisodeContext(MODEL, "Sim-Agent#key0", "Sim-Agent")


def _suite(tmp_path: Path, rows: Sequence[Any], **options: Any) -> JsonlSuite:
    return JsonlSuite(JsonlOptions(dataset=str(_write(tmp_path, rows)), **options))


def _unit(category: str, index: int = 0, seed: int = 0) -> Any:
    return make_unit(f"{index:032x}", Cell("jsonl", "Sim-Agent", (("category", category),)), index, seed)


class Answering:
    """A chat that answers every request with `text` and keeps the requests."""

    def __init__(self, text: str | BaseException) -> None:
        self.text = text
        self.requests: list[Request] = []

    async def __call__(self, request: Request) -> Completion:
        self.requests.append(request)
        if isinstance(self.text, BaseException):
            raise self.text
        return Completion(self.text, prompt_tokens=11, completion_tokens=2)


def test_cells_are_the_selected_categories_in_dataset_order(tmp_path: Path) -> None:
    rows = [{**ROW, "id": f"q{i}", "category": c} for i, c in enumerate(["b", "a", "b", "c"])]
    assert [c.factor("category") for c in _suite(tmp_path, rows).cells("M")] == ["b", "a", "c"]
    assert [c.factor("category") for c in _suite(tmp_path, rows, categories=["c", "b"]).cells("M")] == ["c", "b"]
    with pytest.raises(ValueError, match=r"^categories: 'z' is not in the dataset; choices: a, b, c$"):
        _suite(tmp_path, rows, categories=["a", "z"])


def test_instances_per_mode(tmp_path: Path) -> None:
    rows = [{**ROW, "id": f"q{i}", "category": "c"} for i in range(3)]
    cell = Cell("jsonl", "M", (("category", "c"),))
    assert _suite(tmp_path, rows).instances(cell, 3) == 3
    assert _suite(tmp_path, rows, items="all").instances(cell, 1) == 3
    assert _suite(tmp_path, rows, items="cycle").instances(cell, 10) == 10
    with pytest.raises(ConfigError) as raised:
        _suite(tmp_path, rows).instances(cell, 4)
    assert str(raised.value) == (
        f"run.instances: 4 units per cell, but category 'c' of suite.dataset {str(tmp_path / 'data.jsonl')!r} holds 3 "
        "items; ask at most 3, every item once (suite.items=all), or repeat items on purpose (suite.items=cycle)"
    )


def test_a_unit_asks_the_item_at_its_index_of_the_seeded_permutation(tmp_path: Path) -> None:
    rows = [{**ROW, "id": f"q{i}", "category": "c"} for i in range(20)]
    suite = _suite(tmp_path, rows, items="cycle")
    asked = [suite.item_for(_unit("c", index, seed=3)).item_id for index in range(20)]
    assert sorted(asked) == sorted(f"q{i}" for i in range(20)), "every item once per round"
    assert asked != [f"q{i}" for i in range(20)], "a permutation, not the file order"
    assert [suite.item_for(_unit("c", index, seed=3)).item_id for index in range(20, 40)] == asked
    assert [suite.item_for(_unit("c", index, seed=4)).item_id for index in range(20)] != asked
    assert [_suite(tmp_path, rows).item_for(_unit("c", i, seed=3)).item_id for i in range(20)] == asked


def test_options_are_validated_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^scorer: 'fuzzy' is not valid; choices: contains, exact, regex$"):
        JsonlOptions(scorer="fuzzy")
    with pytest.raises(ValueError, match=r"^items: 'some' is not valid; choices: all, cycle, distinct$"):
        JsonlOptions(items="some")


def test_identity_is_the_dataset_digest(tmp_path: Path) -> None:
    suite = _suite(tmp_path, [ROW])
    assert suite.identity() == {"dataset": load_dataset(str(tmp_path / "data.jsonl"), "exact").digest}
    assert suite.factor_names() == ("category",)
    assert [(m.name, m.description, m.aggregate) for m in suite.metrics()] == [
        ("correct", "1 if the answer matched the reference, else 0", "mean"),
        ("prompt_tokens", "Prompt tokens sent by the unit's calls (mean per unit)", "mean"),
        ("completion_tokens", "Completion tokens received by the unit's calls (mean per unit)", "mean"),
    ]


def test_a_right_answer_succeeds_with_its_metrics_and_transcript(tmp_path: Path) -> None:
    suite = _suite(tmp_path, [{**ROW, "category": "c"}], system_prompt="Be brief.")
    chat = Answering(" 2. ")
    episode = asyncio.run(suite.run_episode(_unit("c"), chat, CONTEXT))
    assert episode.outcome is Outcome.SUCCESS
    assert dict(episode.metrics) == {"correct": 1.0, "prompt_tokens": 11.0, "completion_tokens": 2.0}
    assert (episode.task_id, episode.turns) == ("q1", 1)
    assert episode.transcript == {
        "item": "q1",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 1+1?"}],
        "reference": "2",
        "scorer": "exact",
        "answer": " 2. ",
        "correct": True,
    }
    (request,) = chat.requests
    assert [(m.role, m.content) for m in request.messages] == [(Role.SYSTEM, "Be brief."), (Role.USER, "What is 1+1?")]
    assert request.protocol == "jsonl"


def test_a_wrong_answer_is_a_failure_scored_by_the_items_own_scorer(tmp_path: Path) -> None:
    suite = _suite(tmp_path, [{**ROW, "category": "c", "scorer": "contains", "reference": "two"}])
    episode = asyncio.run(suite.run_episode(_unit("c"), Answering("2"), CONTEXT))
    assert episode.outcome is Outcome.FAILURE
    assert episode.metrics["correct"] == 0.0
    assert episode.transcript is not None and episode.transcript["correct"] is False
    right = asyncio.run(suite.run_episode(_unit("c"), Answering("it is TWO"), CONTEXT))
    assert right.outcome is Outcome.SUCCESS


def test_an_infra_failure_is_recorded_as_not_done(tmp_path: Path) -> None:
    suite = _suite(tmp_path, [{**ROW, "category": "c"}])
    episode = asyncio.run(suite.run_episode(_unit("c"), Answering(InfraFailure("auth", "401")), CONTEXT))
    assert episode.outcome is Outcome.INFRA_ERROR
    assert (episode.infra_status, episode.task_id, episode.metrics) == ("auth", "q1", {})
    assert episode.transcript is not None and episode.transcript["infra"] == "auth: 401"
