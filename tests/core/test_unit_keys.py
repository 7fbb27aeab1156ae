"""Unit keys, end to end: a whole unit built through the planner from a real suite identity has a pinned key; what can
change a result changes every key, what cannot changes none; every unit of a plan asks its own question.

A failing pin means the key derivation changed: every stored result would silently re-run (or worse, mix). Such a
change needs a new `KEY_SCHEME` and a storage migration, and then new pins here.
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePosixPath
from typing import Any, ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbench.config.identity import build_scopes, canonical_json, digest, model_identity, suite_identity
from fleetbench.interfaces import NoOptions, Suite, option
from fleetbench.plan import cell_key, model_plan, unit_key
from fleetbench.runner import run
from fleetbench.testing.fakes import TinyOptions, TinySuite
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.testing.runs import fake_models, fake_run_spec
from fleetbench.types import Cell, GenerationSettings, ModelSpec, Unit, UnitScope

MODEL = fake_models(["Pinned-Model"])[0]
WORDS = ["alpha", "bravo"]


def _units(
    suite: Suite | None = None,
    model: ModelSpec = MODEL,
    seed: int = 7,
    instances: int = 3,
    judge: Any = None,
    provider_options: Any = None,
    params: Any = None,
) -> list[Unit]:
    """The units the runner plans: scopes from the suite's and the model's identities, cells from the suite."""
    suite = suite or TinySuite(TinyOptions(words=WORDS))
    identity = model_identity(model, provider_options or NoOptions(), params or NoOptions())
    scope = build_scopes(suite_identity(suite, suite.options, judge), {model.name: identity}).by_model[model.name]
    cells = [(cell, suite.instances(cell, instances)) for cell in suite.cells(model.name)]
    return list(model_plan(model.name, cells, scope, seed).units())


def _keys(units: list[Unit]) -> set[str]:
    return {unit.key for unit in units}


def test_a_whole_unit_built_through_the_planner_has_a_pinned_key() -> None:
    units = _units()
    assert units[0].scope == UnitScope("6022acaaa9f27efd4b6ae71087f9d247", "13dc06bfe602afef797f0ab9ee76b406")
    assert [(u.cell.factor("word"), u.index, u.seed, u.key) for u in units] == [
        ("alpha", 0, 7, "7a1c10ef6fad72cede1627f775bf62cd"),
        ("alpha", 1, 7, "9c602024bb1238f9883a89e9a5f13792"),
        ("alpha", 2, 7, "08716a239638f34cc6cda4c907ec8c14"),
        ("bravo", 0, 7, "1ec95036ca78e20d8e3496474a9687e7"),
        ("bravo", 1, 7, "c7e23b06de66dc16cce9d66c190c32d1"),
        ("bravo", 2, 7, "f3de8357e488d8ee75bd9622d6a9b57f"),
    ]
    assert {u.cell_key for u in units} == {"bdaf5ea8bcba2addebec220f02793ab1", "5bb00dfd0e4e17549c1f621310a3d73c"}


def test_what_each_scope_stands_for_is_described_with_its_kind() -> None:
    suite = TinySuite(TinyOptions(words=WORDS))
    judged = suite_identity(suite, suite.options, {"model": "Judge-Model"})
    assert judged == {
        "suite": "tiny",
        "version": "1",
        "data": {},
        "options": {"case_sensitive": True},
        "judge": {"model": "Judge-Model"},
    }
    identity = model_identity(MODEL, NoOptions(), NoOptions())
    scopes = build_scopes(judged, {MODEL.name: identity})
    scope = scopes.by_model[MODEL.name]
    assert scopes.descriptions == {
        scope.suite: {"kind": "suite", **judged},
        scope.model: {"kind": "model", **identity},
    }
    assert (scope.suite, scope.model) == (digest(judged), digest(identity))


def test_the_scope_encoding_is_pinned() -> None:
    assert canonical_json({"b": 0.1, "a": [1, "é", None, True], "c": ("x",)}) == (
        b'{"a":[1,"\\u00e9",null,true],"b":0.1,"c":["x"]}'
    )
    assert digest({"suite": "tiny"}) == "f280e8be46085cfa1ed3d284b005ff98"
    assert canonical_json({"path": PurePosixPath("/data/set.jsonl")}) == b'{"path":"/data/set.jsonl"}'  # as str()


class _Versioned(TinySuite):
    version = "2"


class _Renamed(TinySuite):
    name = "tiny-renamed"


class _WithData(TinySuite):
    def identity(self) -> dict[str, Any]:
        return {"dataset": "digest-of-other-data"}


def test_suite_name_version_data_and_result_options_each_change_every_key() -> None:
    base = _keys(_units())
    for suite in (
        _Versioned(TinyOptions(words=WORDS)),
        _Renamed(TinyOptions(words=WORDS)),
        _WithData(TinyOptions(words=WORDS)),
        TinySuite(TinyOptions(words=WORDS, case_sensitive=False)),
    ):
        assert _keys(_units(suite)).isdisjoint(base), f"{type(suite).__name__} {suite.options} reused a key"
    assert _keys(_units(judge={"model": "Judge-Model"})).isdisjoint(base)


def test_an_option_that_only_selects_cells_changes_no_key() -> None:
    both = _units()
    alpha_only = _units(TinySuite(TinyOptions(words=["alpha"])))
    assert _keys(alpha_only) == {u.key for u in both if u.cell.factor("word") == "alpha"}


def test_what_the_model_answers_with_changes_every_key_and_its_deployments_do_not() -> None:
    base = _keys(_units())
    changed = [
        dataclasses.replace(MODEL, name="Other-Model"),
        dataclasses.replace(MODEL, provider="other"),
        dataclasses.replace(MODEL, tool_calling="native"),
        dataclasses.replace(MODEL, generation=GenerationSettings(temperature=0.0)),
        dataclasses.replace(MODEL, generation=GenerationSettings(stop=("\n",))),
    ]
    for model in changed:
        assert _keys(_units(model=model)).isdisjoint(base), model
    five = fake_models(["Pinned-Model"], deployments=5)[0].deployments
    more_deployments = dataclasses.replace(MODEL, deployments=five)
    assert _keys(_units(model=more_deployments)) == base
    assert _keys(_units(model=dataclasses.replace(MODEL, aliases=("pinned",), route="r"))) == base


@dataclasses.dataclass
class _Settings:
    """Options (or model params) of a provider: one that changes answers, one that cannot."""

    seed: int = option(0, affects_result=True)
    timeout_s: float = option(1.0, affects_result=False)


def test_the_providers_and_the_models_result_relevant_settings_change_every_key_and_the_others_none() -> None:
    base = _keys(_units(provider_options=_Settings(), params=_Settings()))
    assert _keys(_units(provider_options=_Settings(timeout_s=9.0), params=_Settings(timeout_s=9.0))) == base
    assert _keys(_units(provider_options=_Settings(seed=1), params=_Settings())).isdisjoint(base)
    assert _keys(_units(provider_options=_Settings(), params=_Settings(seed=1))).isdisjoint(base)
    assert _keys(_units(provider_options=_Settings(seed=1))).isdisjoint(_keys(_units(params=_Settings(seed=1))))


def test_every_unit_of_a_plan_carries_its_own_index_and_the_seed_and_so_asks_its_own_question() -> None:
    units = _units(seed=11, instances=4)
    assert [(u.cell.factor("word"), u.index, u.seed) for u in units] == [
        (word, index, 11) for word in WORDS for index in range(4)
    ]
    questions = [TinySuite.token(unit) for unit in units]
    assert len(set(questions)) == len(units)
    assert set(questions).isdisjoint(TinySuite.token(u) for u in _units(seed=12, instances=4))


def test_a_run_asks_every_instance_its_own_question() -> None:
    """Through the runner: the stored transcripts hold one distinct question per unit, with the run's seed."""

    class Kept(MemoryStorage):
        opened: ClassVar[list[MemoryStorage]] = []

        def __init__(self, options: object = None, **context: Any) -> None:
            super().__init__(options, **context)
            Kept.opened.append(self)

    run(fake_run_spec(Kept, instances=3, seed=5))
    asked = [transcript["token"] for _, _, transcript in Kept.opened[0].transcripts("", limit=100)]
    assert sorted(asked) == sorted(f"{word}-5-{index}" for word in WORDS for index in range(3))


# --- properties ---------------------------------------------------------------------------------------------------

HEX32 = st.text("0123456789abcdef", min_size=32, max_size=32)
FACTOR = st.tuples(st.sampled_from(["level", "rate", "flaw"]), st.one_of(st.integers(), st.text(max_size=8)))
CELLS = st.builds(lambda factors: Cell("grid", "any", tuple(factors)), st.lists(FACTOR, max_size=3))
SEEDS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INDICES = st.integers(min_value=0, max_value=2**63 - 1)


@settings(deadline=None)
@given(scope=st.builds(UnitScope, HEX32, HEX32), cell=CELLS, seed=SEEDS, index=INDICES)
def test_a_planned_unit_has_the_key_computed_from_scratch(scope: UnitScope, cell: Cell, seed: int, index: int) -> None:
    """The planner's shared per-cell hash state gives exactly the one-shot key (stable however it is computed)."""
    planned = model_plan("any", [(cell, index + 1)], scope, seed).cells[0]
    unit = planned.unit(index)
    assert unit.key == unit_key(scope, cell_key(cell), seed, index)
    assert (unit.index, unit.seed, unit.scope, unit.cell, unit.cell_key) == (index, seed, scope, cell, cell_key(cell))
    assert len(unit.key) == 32 and int(unit.key, 16) >= 0


@settings(deadline=None)
@given(
    points=st.sets(
        st.tuples(st.sampled_from(["a" * 32, "b" * 32]), st.sampled_from(["c" * 32, "d" * 32]), CELLS, SEEDS, INDICES),
        min_size=2,
        max_size=20,
    ).filter(lambda points: len({(s, m, cell_key(c), seed, i) for s, m, c, seed, i in points}) == len(points))
)
def test_distinct_units_never_share_a_key(points: set[tuple[str, str, Cell, int, int]]) -> None:
    keys = {unit_key(UnitScope(s, m), cell_key(cell), seed, index) for s, m, cell, seed, index in points}
    assert len(keys) == len(points)
