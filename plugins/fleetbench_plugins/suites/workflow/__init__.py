"""The WorkflowBench workload as a fleetbench suite: interactive, simulated tool-use workflows (reference §1-§4).

A cell is (prompt_type, difficulty, tool_success_rate, task_type). One unit samples a task with a seed derived from its
unit key, renders the prompt, plays the episode against the model, scores it, and classifies every non-full outcome.
Everything random is seeded from the unit key, so a rerun of a unit with the same model replies stores the same
transcript and scores. Infrastructure failures end the unit as `INFRA_ERROR`, never as a model error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from fleetbench.data_files import read_data_file
from fleetbench.errors import choices_text
from fleetbench.interfaces import Chat, EpisodeContext, Suite, option
from fleetbench.types import Cell, Episode, MetricSpec, Outcome, Unit
from fleetbench_plugins.suites.workflow.classify import CLASSIFIERS, Diagnosis, ErrorVerdict, classify
from fleetbench_plugins.suites.workflow.difficulty import PHRASES_PATH, SOURCE_RENDERED, description_source
from fleetbench_plugins.suites.workflow.executor import NATIVE_TOOL_LISTS, ExecutorConfig, WorkflowExecutor
from fleetbench_plugins.suites.workflow.flaws import APPLICABILITY, flaw_applies
from fleetbench_plugins.suites.workflow.metrics import WORKFLOW_METRICS, activity_metrics, episode_metrics
from fleetbench_plugins.suites.workflow.model import (
    DIFFICULTIES,
    FLAW_TYPES,
    PROMPT_TYPES,
    SEVERITIES,
    TASK_TYPES,
    Task,
)
from fleetbench_plugins.suites.workflow.prompts import PromptBundle, build_prompt
from fleetbench_plugins.suites.workflow.protocol import MULTI_CALL_POLICIES
from fleetbench_plugins.suites.workflow.reference import reference_workflow
from fleetbench_plugins.suites.workflow.registry import DEFAULT_REGISTRY_PATH, load_registry
from fleetbench_plugins.suites.workflow.scoring import (
    SCORE_AGAINST,
    SCORING_VARIANTS,
    ScoreInputs,
    Scores,
    expected_for,
    score,
)
from fleetbench_plugins.suites.workflow.simulator import ToolSimulator
from fleetbench_plugins.suites.workflow.task_files import open_task_source
from fleetbench_plugins.suites.workflow.transcript import EpisodeLog, build_transcript, chat_messages, render_text

FACTORS = ("prompt_type", "difficulty", "tool_success_rate", "task_type")
# The original's shorthands (§2): `flawed` = the seven flaw types, `all` = baseline/cot/optimal,
# `all_with_flawed` = all ten.
PROMPT_TYPE_GROUPS = {
    "flawed": tuple(f"flawed_{flaw}" for flaw in FLAW_TYPES),
    "all": ("baseline", "cot", "optimal"),
    "all_with_flawed": PROMPT_TYPES,
}


def _expand_prompt_types(values: Sequence[str]) -> list[str]:
    expanded = [name for value in values for name in PROMPT_TYPE_GROUPS.get(value, (value,))]
    return list(dict.fromkeys(expanded))


def _check_choices(field: str, values: Sequence[str], choices: Sequence[str]) -> None:
    if not values:
        raise ValueError(f"{field}: must not be empty; valid choices: {choices_text(choices)}")
    for value in values:
        if value not in choices:
            raise ValueError(f"{field}: unknown value {value!r}; valid choices: {choices_text(choices)}")


@dataclasses.dataclass
class WorkflowOptions:
    """Options of the workflow suite. Grid lists define the cells; the rest change how every unit runs."""

    # The grid: these select cells (each cell's factors are in its units' keys), so they change no unit's result.
    prompt_types: list[str] = option(affects_result=False, default_factory=lambda: ["optimal"])
    difficulties: list[str] = option(affects_result=False, default_factory=lambda: ["easy"])
    tool_success_rates: list[float] = option(affects_result=False, default_factory=lambda: [0.8])
    task_types: list[str] = option(affects_result=False, default_factory=lambda: list(TASK_TYPES))
    # How every unit runs and is scored.
    severity: str = option("severe", affects_result=True, help="light | medium | severe (flawed_* only)")
    max_turns: int = option(10, affects_result=True)
    scoring: str = option("corrected", affects_result=True, help="corrected | legacy (the original's formulas)")
    score_against: str = option("prompt_plan", affects_result=True, help="prompt_plan | reference")
    multi_call: str = option("first", affects_result=True, help="first | all | reject: several actions in one reply")
    help_reveals_required_tools: bool = option(False, affects_result=True)
    substring_match: bool = option(False, affects_result=True, help="legacy: tool names also match by substring")
    validate_arguments: bool = option(True, affects_result=True)
    clean_run_recovery: bool = option(False, affects_result=True)
    native_tools: str = option("discovered", affects_result=True, help="discovered | all (native tool calling)")
    classifier: str = option("rules", affects_result=True, help="rules | llm (needs run.judge)")
    # Data files: their content digests enter the key (identity()), not their paths.
    tool_registry: str | None = option(None, affects_result=False)
    task_file: str | None = option(None, affects_result=False)

    def __post_init__(self) -> None:
        self.prompt_types = _expand_prompt_types(list(self.prompt_types))
        self.difficulties, self.task_types = list(self.difficulties), list(self.task_types)
        self.tool_success_rates = [float(rate) for rate in self.tool_success_rates]
        _check_choices("prompt_types", self.prompt_types, (*PROMPT_TYPES, *PROMPT_TYPE_GROUPS))
        _check_choices("difficulties", self.difficulties, DIFFICULTIES)
        _check_choices("task_types", self.task_types, TASK_TYPES)
        for field, value, choices in (
            ("severity", self.severity, SEVERITIES),
            ("scoring", self.scoring, SCORING_VARIANTS),
            ("score_against", self.score_against, SCORE_AGAINST),
            ("multi_call", self.multi_call, MULTI_CALL_POLICIES),
            ("native_tools", self.native_tools, NATIVE_TOOL_LISTS),
            ("classifier", self.classifier, CLASSIFIERS),
        ):
            _check_choices(field, [value], choices)
        if self.clean_run_recovery and self.scoring != "corrected":
            raise ValueError("clean_run_recovery: applies to scoring=corrected only; set it to false for legacy")
        self._check_numbers()

    def _check_numbers(self) -> None:
        if not self.tool_success_rates:
            raise ValueError("tool_success_rates: must not be empty; give rates within [0, 1]")
        for rate in self.tool_success_rates:
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"tool_success_rates: {rate} is outside [0, 1]")
        if not 1 <= self.max_turns <= MAX_TURNS_LIMIT:
            raise ValueError(f"max_turns: must be from 1 to {MAX_TURNS_LIMIT}, got {self.max_turns}")


MAX_TURNS_LIMIT = 1000
"""An episode of more turns is a loop, not a workflow (the original ran 10): it would only run into its timeout."""


def unit_seed(key: str, purpose: str) -> int:
    """A 64-bit seed derived from the unit key, distinct per purpose (task choice, prompt, simulator)."""
    return int(hashlib.sha256(f"{key}:{purpose}".encode()).hexdigest()[:16], 16)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(read_data_file(path)).hexdigest()


def _flaw_of(prompt_type: str) -> str | None:
    return prompt_type.removeprefix("flawed_") if prompt_type.startswith("flawed_") else None


class WorkflowSuite(Suite):
    """The WorkflowBench workload. Loads its registry and task library once per instance (shared, read-only)."""

    name: ClassVar[str] = "workflow"
    version: ClassVar[str] = "2"
    Options: ClassVar[type[Any]] = WorkflowOptions

    def __init__(self, options: WorkflowOptions | None = None) -> None:
        self.options: WorkflowOptions = options if options is not None else WorkflowOptions()
        self._registry_path = Path(self.options.tool_registry or DEFAULT_REGISTRY_PATH)
        self.registry = load_registry(self._registry_path)
        self.tasks = open_task_source(self.options.task_file, self.registry, self.options.difficulties)
        self.library = self.tasks.library(self.options.difficulties[0])
        self._check_pools()
        self._config = ExecutorConfig(
            max_turns=self.options.max_turns,
            multi_call=self.options.multi_call,
            help_reveals_required_tools=self.options.help_reveals_required_tools,
            substring_match=self.options.substring_match,
            native_tools=self.options.native_tools,
        )

    def _check_pools(self) -> None:
        """Every cell needs a task to sample, and a flawed cell a task its flaw applies to (`flaws.flaw_applies`):
        fail with one line before anything runs."""
        for difficulty in self.options.difficulties:
            library = self.tasks.library(difficulty)
            for task_type in self.options.task_types:
                pool = [reference_workflow(task) for task in library.by_type(task_type)]
                if not pool:
                    raise ValueError(f"task_types: {library.source} has no {task_type} task")
                for flaw in filter(None, map(_flaw_of, self.options.prompt_types)):
                    if not any(flaw_applies(flaw, plan) for plan in pool):
                        raise ValueError(
                            f"prompt_types: flawed_{flaw} needs tasks whose reference plan has "
                            f"{APPLICABILITY.get(flaw, 'a step')}; {library.source} has no such {task_type} task"
                        )

    def sample_task(self, cell: Cell, key: str) -> Task:
        """The task of the unit `key` in `cell`: seeded from the key, among the tasks the cell's flaw applies to."""
        flaw = _flaw_of(str(cell.factor("prompt_type")))
        library = self.tasks.library(str(cell.factor("difficulty")))
        where = None if flaw is None else (lambda task: flaw_applies(flaw, reference_workflow(task)))
        return library.sample(str(cell.factor("task_type")), unit_seed(key, "task"), where)

    @property
    def needs_judge(self) -> bool:
        """Whether episodes should get a judge chat in their context (`classifier: llm`)."""
        return self.options.classifier == "llm"

    def cells(self, base_model: str) -> Iterator[Cell]:
        """prompt_type × difficulty × tool_success_rate × task_type, in that order."""
        o = self.options
        for prompt_type in o.prompt_types:
            for difficulty in o.difficulties:
                for rate in o.tool_success_rates:
                    for task_type in o.task_types:
                        factors = (prompt_type, difficulty, round(rate, 4), task_type)
                        yield Cell(self.name, base_model, tuple(zip(FACTORS, factors, strict=True)))

    def identity(self) -> Mapping[str, Any]:
        """Digests of the data files (the options that change results are declared with `option`)."""
        identity: dict[str, Any] = {
            "tool_registry_sha256": _file_digest(self._registry_path),
            "task_file_sha256": self.tasks.digest,
        }
        if self._renders_descriptions():
            # Rendered wordings come from the phrase bank: editing it changes those prompts.
            identity["phrases_sha256"] = _file_digest(PHRASES_PATH)
        return identity

    def _renders_descriptions(self) -> bool:
        return any(
            description_source(task, level) == SOURCE_RENDERED
            for level, library in self.tasks.libraries.items()
            for task in library
        )

    def render_transcript(self, transcript: Mapping[str, Any]) -> str:
        """The stored transcript as readable text grouped by turn (what `fleetbench show` prints)."""
        return render_text(transcript)

    def transcript_messages(self, transcript: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The episode as the chat the model saw (Inspect export): prompts, replies, environment feedback."""
        return chat_messages(transcript)

    def metrics(self) -> Sequence[MetricSpec]:
        return WORKFLOW_METRICS

    def factor_names(self) -> Sequence[str]:
        return FACTORS

    async def run_episode(self, unit: Unit, chat: Chat, context: EpisodeContext) -> Episode:
        """Sample the task, play the episode, score and classify it."""
        cell = unit.cell
        task = self.sample_task(cell, unit.key)
        native = context.model.tool_calling == "native"
        bundle = build_prompt(
            task, str(cell.factor("prompt_type")), str(cell.factor("difficulty")), self.registry,
            severity=self.options.severity, seed=unit_seed(unit.key, "prompt"), native_tools=native,
            tool_list=self.options.native_tools,
        )  # fmt: skip
        rate = float(cell.factor("tool_success_rate"))
        rng = random.Random(unit_seed(unit.key, "simulator"))
        simulator = ToolSimulator(self.registry, rate, rng, validate=self.options.validate_arguments)
        executor = WorkflowExecutor(
            self.registry, task, bundle.system, bundle.user, simulator, self._config, native=native
        )
        log = await executor.run(chat)
        record = _Record(task, bundle, log, self._settings(cell, native))
        if log.infra_status is not None:
            return record.infra_episode()
        scores = self._score(task, bundle, log)
        verdict = None
        if scores.label is not Outcome.SUCCESS:
            diagnosis = Diagnosis.from_log(task, log, self.options.max_turns)
            # The judge reads the run and its scores, not the rules' verdict; the rules need no text at all.
            text = render_text(record.build(scores)) if self.needs_judge else ""
            verdict = await classify(diagnosis, self.options.classifier, context.judge, text)
        return record.scored_episode(scores, verdict)

    def _score(self, task: Task, bundle: PromptBundle, log: EpisodeLog) -> Scores:
        expected = expected_for(bundle.plan, bundle.reference, self.options.score_against)
        attempts = tuple((a.tool, a.success) for a in log.attempts)
        inputs = ScoreInputs(
            task.task_type,
            tuple(task.required_tools),
            expected,
            log.executed_tools,
            attempts,
            log.completion_signal_seen,
        )
        return score(inputs, self.options.scoring, clean_run_recovery=self.options.clean_run_recovery)

    def _settings(self, cell: Cell, native: bool) -> dict[str, Any]:
        o = self.options
        return {**cell.as_dict(), **dataclasses.asdict(self._config), "scoring": o.scoring,
                "clean_run_recovery": o.clean_run_recovery, "validate_arguments": o.validate_arguments,
                "score_against": o.score_against,
                "classifier": o.classifier, "native_mode": native}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Record:
    """One episode's material, turned into its transcript and `Episode`."""

    task: Task
    bundle: PromptBundle
    log: EpisodeLog
    settings: Mapping[str, Any]

    def build(self, scores: Scores | None = None, verdict: ErrorVerdict | None = None) -> dict[str, Any]:
        b, t = self.bundle, self.task
        return build_transcript(
            task={"task_id": t.task_id, "task_type": t.task_type, "description": t.description,
                  "required_tools": list(t.required_tools), "complexity": t.complexity},
            prompt={"system": b.system, "user": b.user, "expected_sequence": list(b.expected_sequence),
                    "prompt_type": b.prompt_type, "flaw_type": b.flaw_type, "severity": b.severity,
                    "description_source": b.description_source, "native_mode": self.settings.get("native_mode")},
            log=self.log,
            scores=scores.as_dict() if scores is not None else None,
            label=scores.label.value if scores is not None else Outcome.INFRA_ERROR.value,
            error=verdict.as_dict() if verdict is not None else None,
            settings=self.settings,
        )  # fmt: skip

    def infra_episode(self) -> Episode:
        """Not a model outcome: no scores, no error category, the partial transcript kept."""
        return Episode(
            Outcome.INFRA_ERROR, activity_metrics(self.log), self.task.task_id, len(self.log.turns), None,
            self.log.infra_status, self.build(),
        )  # fmt: skip

    def scored_episode(self, scores: Scores, verdict: ErrorVerdict | None) -> Episode:
        return Episode(
            scores.label, episode_metrics(self.log, scores, verdict), self.task.task_id, len(self.log.turns),
            verdict.category if verdict is not None else None, None, self.build(scores, verdict),
        )  # fmt: skip
