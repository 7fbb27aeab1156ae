"""The suite kit: what every `Suite` must do, as tests an author inherits.

Subclass `SuiteContract` (as `TestMySuite`) and define the `suite` fixture; define `replies` to script what the
model answers (by default it answers every request with one sentence that solves nothing), and `episode_cells` to
run more or fewer cells' first units::

    class TestCapitalsSuite(SuiteContract):
        @pytest.fixture
        def suite(self) -> Suite:
            return CapitalsSuite(CapitalsOptions())
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from itertools import islice
from typing import Any

import pytest

from fleetbench.contracts import contract_problem
from fleetbench.errors import InfraFailure
from fleetbench.interfaces import EpisodeContext, Suite
from fleetbench.limits import FACTOR_OR_METRIC_NAME
from fleetbench.testing.units import plan_units
from fleetbench.types import Cell, Completion, DeploymentSpec, Episode, ModelSpec, Outcome, Purpose, Request, Unit

KIT_MODEL = ModelSpec("Kit-Model", "scripted", (DeploymentSpec("Kit-Model"),))
"""The model the kit's episodes run against (a scripted chat stands for it)."""


class ScriptedChat:
    """A `Chat` that answers from a list of replies, in turn, repeating the last one; it records every request."""

    def __init__(self, replies: Sequence[str], fail_with: InfraFailure | None = None) -> None:
        self._replies = list(replies) or ["I do not know."]
        self._fail_with = fail_with
        self.requests: list[Request] = []

    async def __call__(self, request: Request) -> Completion:
        self.requests.append(request)
        if self._fail_with is not None:
            raise self._fail_with
        text = self._replies[min(len(self.requests), len(self._replies)) - 1]
        return Completion(text, prompt_tokens=sum(len(m.content.split()) for m in request.messages))


def episode(suite: Suite, unit: Unit, chat: ScriptedChat, judge: ScriptedChat | None = None) -> Episode:
    """Run one unit of `suite` through a scripted chat (and a scripted judge when the suite needs one)."""
    context = EpisodeContext(KIT_MODEL, "Kit-Model#key0", "Kit-Model", judge if suite.needs_judge else None)
    return asyncio.run(suite.run_episode(unit, chat, context))


class SuiteContract:
    """Inherited tests proving a suite's grid, identity, metrics and episodes keep the contract."""

    @pytest.fixture
    def suite(self) -> Suite:
        """The suite under test, constructed with its options. Override this."""
        raise NotImplementedError("define the `suite` fixture in your SuiteContract subclass")

    @pytest.fixture
    def replies(self) -> Sequence[str]:
        """What the scripted model answers, in turn (the last one repeats)."""
        return ("I do not know.",)

    @pytest.fixture
    def episode_cells(self) -> int:
        """How many cells' first units the episode tests run."""
        return 3

    @pytest.fixture
    def units(self, suite: Suite, episode_cells: int) -> list[Unit]:
        """The first unit of the first `episode_cells` cells, keyed as the planner keys them."""
        first_of_each = [u for u in plan_units(suite, suite.options, KIT_MODEL.name, 1) if u.index == 0]
        return first_of_each[:episode_cells]

    def test_passes_the_load_time_contract_check(self, suite: Suite) -> None:
        assert contract_problem(Suite, type(suite)) is None
        assert suite.name.strip() and suite.version.strip()

    def test_cells_are_deterministic_and_belong_to_the_suite(self, suite: Suite) -> None:
        cells = list(suite.cells(KIT_MODEL.name))
        assert cells, "a suite needs at least one cell"
        assert cells == list(suite.cells(KIT_MODEL.name))
        assert cells == list(type(suite)(suite.options).cells(KIT_MODEL.name)), "a new instance, other cells"
        assert len(set(cells)) == len(cells), "cells repeat"
        for cell in cells:
            _check_cell(cell, suite)

    def test_metrics_are_unique_and_aggregate_by_mean_or_sum(self, suite: Suite) -> None:
        names = [metric.name for metric in suite.metrics()]
        assert names and len(set(names)) == len(names), f"metric names repeat: {names}"
        for metric in suite.metrics():
            assert FACTOR_OR_METRIC_NAME.match(metric.name), metric.name
            assert metric.aggregate in ("mean", "sum"), f"{metric.name}: {metric.aggregate}"

    def test_identity_is_stable_so_unit_keys_are(self, suite: Suite) -> None:
        again = type(suite)(suite.options)
        assert json.dumps(suite.identity(), sort_keys=True, default=str) == json.dumps(
            again.identity(), sort_keys=True, default=str
        )
        keys = [unit.key for unit in islice(plan_units(suite, suite.options, KIT_MODEL.name, 2), 50)]
        assert keys == [unit.key for unit in islice(plan_units(again, again.options, KIT_MODEL.name, 2), 50)]
        assert len(set(keys)) == len(keys)

    def test_instances_are_counts(self, suite: Suite) -> None:
        for cell in islice(suite.cells(KIT_MODEL.name), 50):
            count = suite.instances(cell, 1)
            assert isinstance(count, int) and count >= 0

    def test_an_episode_runs_through_a_scripted_chat(
        self, suite: Suite, units: list[Unit], replies: Sequence[str]
    ) -> None:
        metric_names = {metric.name for metric in suite.metrics()}
        for unit in units:
            chat = ScriptedChat(replies)
            result = episode(suite, unit, chat, ScriptedChat(["other_errors"]))
            assert isinstance(result, Episode), f"run_episode returned {type(result).__name__}"
            assert result.outcome in (Outcome.SUCCESS, Outcome.PARTIAL, Outcome.FAILURE), result.outcome
            assert set(result.metrics) <= metric_names, f"undeclared metrics {set(result.metrics) - metric_names}"
            assert all(isinstance(float(v), float) for v in result.metrics.values())
            assert isinstance(result.turns, int) and result.turns >= 0
            assert chat.requests, "the episode never asked the model"
            for request in chat.requests:
                _check_request(request)
            if result.transcript is not None:
                json.dumps(result.transcript)
                rendered = suite.render_transcript(result.transcript)
                assert isinstance(rendered, str) and rendered.strip()

    def test_episodes_are_deterministic(self, suite: Suite, units: list[Unit], replies: Sequence[str]) -> None:
        for unit in units[:1]:
            first = episode(suite, unit, ScriptedChat(replies), ScriptedChat(["other_errors"]))
            second = episode(suite, unit, ScriptedChat(replies), ScriptedChat(["other_errors"]))
            assert first == second

    def test_an_infrastructure_failure_is_not_a_model_failure(self, suite: Suite, units: list[Unit]) -> None:
        failing = ScriptedChat([], fail_with=InfraFailure("request_timeout", "no reply within 1s"))
        try:
            result = episode(suite, units[0], failing, failing)
        except InfraFailure:
            return  # letting it propagate is allowed: the scheduler records the unit as not done
        assert result.outcome is Outcome.INFRA_ERROR
        assert result.infra_status == "request_timeout"


def _check_cell(cell: Cell, suite: Suite) -> None:
    assert cell.suite == suite.name
    assert cell.base_model == KIT_MODEL.name
    assert [name for name, _ in cell.factors] == list(suite.factor_names()), "factors out of factor_names() order"
    for name, value in cell.factors:
        assert FACTOR_OR_METRIC_NAME.match(name), name
        assert isinstance(value, str | int | float | bool), f"{name}: {value!r}"


def _check_request(request: Any) -> None:
    assert isinstance(request, Request)
    assert request.messages, "a request without messages"
    assert request.protocol, "requests name their protocol (the simulated provider picks its player by it)"
    assert request.purpose is Purpose.ANSWER
