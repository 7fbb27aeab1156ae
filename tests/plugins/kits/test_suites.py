"""The built-in suites pass the suite kit, and their simulated players the player kit."""

from __future__ import annotations

import pytest

from fleetbench.interfaces import NoOptions, SimulatedPlayer, Suite
from fleetbench.testing.contracts import PlayerContract, SuiteContract
from fleetbench_plugins.suites.jsonl import JsonlOptions, JsonlSuite
from fleetbench_plugins.suites.jsonl.simulated import JsonlPlayer
from fleetbench_plugins.suites.workflow import WorkflowOptions, WorkflowSuite
from fleetbench_plugins.suites.workflow.simulated import WorkflowPlayer


class TestJsonlSuite(SuiteContract):
    @pytest.fixture
    def suite(self) -> Suite:
        return JsonlSuite(JsonlOptions())


class TestWorkflowSuite(SuiteContract):
    @pytest.fixture
    def suite(self) -> Suite:
        return WorkflowSuite(WorkflowOptions())


class TestWorkflowSuiteWithAJudge(SuiteContract):
    @pytest.fixture
    def suite(self) -> Suite:
        return WorkflowSuite(WorkflowOptions(classifier="llm"))


class TestJsonlPlayer(PlayerContract):
    @pytest.fixture
    def player(self) -> SimulatedPlayer:
        return JsonlPlayer(NoOptions())

    @pytest.fixture
    def suite(self) -> Suite:
        return JsonlSuite(JsonlOptions())


class TestWorkflowPlayer(PlayerContract):
    @pytest.fixture
    def player(self) -> SimulatedPlayer:
        return WorkflowPlayer(NoOptions())

    @pytest.fixture
    def suite(self) -> Suite:
        return WorkflowSuite(WorkflowOptions())
