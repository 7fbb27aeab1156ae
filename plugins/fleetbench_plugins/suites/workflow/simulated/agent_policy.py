"""What the simulated agent does next, given its reading of the task and of the conversation so far.

The agent works through a list of steps (the plan's, or the ones the description implies). It says which step each
reply is about ("Step 2 of 4"), so that the next turn, which starts from nothing but the messages, can tell which
steps are done, which it gave up on ("skipping step 2") and which failed and might be retried. Every random decision
comes from the per-turn `rng`, so a reply is a pure function of (messages, profile, rng seed).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetbench_plugins.suites.workflow.simulated.agent_history import (
    CALL,
    FAILED,
    INFO,
    NUDGE,
    OK,
    SEARCH,
    UNKNOWN_TOOL,
    Exchange,
)
from fleetbench_plugins.suites.workflow.simulated.agent_knowledge import knowledge
from fleetbench_plugins.suites.workflow.simulated.agent_task import Step, TaskView
from fleetbench_plugins.suites.workflow.simulated.profiles import Profile

MAX_TURNS = 10  # the executor's budget (reference §3.2); a model only "knows" it loosely, as a wish to be brief
COMPLETE = "complete"
WAIT = "wait"  # believes it is done but does not say the completion word
EXPLAIN = "explain"  # reasoning without an action
PROSE = "prose"  # a native-only model describing calls it cannot make in text
CONFIRMED_BOOST = 0.9  # share of the deviation risk that goes when the description names the plan's tool
LURE_DOUBT = 0.5  # extra deviation risk per misleading term in the description
# Where a model's guess lands when nothing in the description or the search results helps.
_FIRST_GUESS = "file_operations_reader"
_LAST_GUESS = "file_operations_writer"
_MIDDLE_GUESS = "data_processing_transformer"


@dataclass(frozen=True)
class Decision:
    """One reply's content: the action, the step it belongs to, and the narration around it."""

    kind: str
    target: str = ""
    step: int | None = None
    total: int = 0
    skipped: tuple[int, ...] = ()
    reason: str = ""
    finish: bool = False
    """Also say TASK_COMPLETED (the model is confident this call is the last one)."""
    adopt: bool = False
    """Announce that the description's steps replace the plan's (read back on later turns)."""
    arguments: Mapping[str, Any] | None = None
    """Arguments to pass as written (the plan's); None lets the reply choose the prompt's defaults."""


@dataclass
class State:
    """The agent's picture of the episode, rebuilt from the messages on every turn."""

    task: TaskView
    steps: tuple[Step, ...]
    history: tuple[Exchange, ...]
    profile: Profile
    rng: random.Random
    native: bool
    can_search: bool = True
    can_inspect: bool = True
    settled: set[int] = field(default_factory=set)
    calls: dict[int, list[Exchange]] = field(default_factory=dict)
    searches: dict[int, list[Exchange]] = field(default_factory=dict)
    dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    succeeded: list[str] = field(default_factory=list)

    @property
    def turns_left(self) -> int:
        """Replies left in the budget, this one included."""
        return MAX_TURNS - len(self.history)

    def open_steps(self, after: int = -1, skipping: tuple[int, ...] = ()) -> list[int]:
        """Steps not done and not given up, in order (optionally only those after `after`)."""
        return [i for i in range(len(self.steps)) if i > after and i not in self.settled and i not in skipping]

    def slack(self, skipping: tuple[int, ...] = ()) -> int:
        """Turns to spare beyond one per open step plus one to declare completion."""
        return self.turns_left - len(self.open_steps(skipping=skipping)) - 1


def build_state(
    task: TaskView,
    history: tuple[Exchange, ...],
    profile: Profile,
    rng: random.Random,
    native: bool,
    helpers: tuple[bool, bool] = (True, True),
) -> State:
    """Replay the history onto the task's steps. `helpers` says whether searching and tool details are offered."""
    steps = _steps(task, history)
    state = State(task, steps, history, profile, rng, native, *helpers, dependencies=dict(task.requires))
    for exchange in history:
        _replay(state, exchange)
    if not task.has_plan and any(e.revealed for e in history):
        # The executor's help listed the tools: a step is done when its tool has run.
        state.settled = {i for i, s in enumerate(steps) if s.tool in state.succeeded}
    return state


def _steps(task: TaskView, history: tuple[Exchange, ...]) -> tuple[Step, ...]:
    """The steps the agent works through: the task's, unless the conversation has since told it better."""
    revealed = next((e.revealed for e in reversed(history) if e.revealed), ())
    hinted = next((e.hinted for e in reversed(history) if e.hinted), "")
    if task.has_plan:
        followed = task.repaired is not None and any(e.follows_description for e in history)
        return task.repaired if followed and task.repaired is not None else task.steps
    if revealed:
        return tuple(Step(name, name, 1.0, told=True) for name in revealed)
    if hinted and task.steps and task.steps[0].tool != hinted:
        return (Step(hinted, task.steps[0].text, 1.0, told=True), *task.steps[1:])
    return task.steps


def _replay(state: State, exchange: Exchange) -> None:
    for name, deps in exchange.dependencies:
        state.dependencies[name] = deps
    state.settled.update(i for i in exchange.skipped if 0 <= i < len(state.steps))
    if exchange.succeeded:
        state.succeeded.append(exchange.target)
    if exchange.completion and exchange.feedback == NUDGE:
        # The executor did not accept "done": steps given up on, and tools picked from search results, deserve
        # another look.
        state.settled = {
            i for i, calls in state.calls.items() if calls[-1].succeeded and state.steps[i].tool is not None
        }
    step = exchange.step
    if step is None or not 0 <= step < len(state.steps):
        return
    if exchange.kind == CALL:
        state.calls.setdefault(step, []).append(exchange)
        if exchange.succeeded:
            state.settled.add(step)
    elif exchange.kind == SEARCH:
        state.searches.setdefault(step, []).append(exchange)


def decide(state: State) -> Decision:
    """The next reply of the agent."""
    profile, rng = state.profile, state.rng
    if profile.native_only and not state.native:
        return Decision(PROSE)
    if not state.history and state.task.cot and rng.random() < profile.explains_first:
        return Decision(EXPLAIN)
    adopt = False
    if not state.history and state.task.repaired is not None and rng.random() < profile.repairs_plan:
        # The plan contradicts the description (which names the tools): follow the description instead.
        state.steps, adopt = state.task.repaired, True
    first_tool = state.steps[0].tool if state.steps else None
    if (
        not state.history
        and state.task.has_plan
        and first_tool
        and state.can_inspect
        and rng.random() < profile.checks_plan
    ):
        decision = Decision(INFO, first_tool, 0, len(state.steps), reason="check")
    else:
        decision = _next_step(state, ())
    return dataclasses.replace(decision, adopt=adopt) if adopt else decision


def _next_step(state: State, skipping: tuple[int, ...]) -> Decision:
    """Work on the first open step; `skipping` are steps this reply gives up on."""
    open_steps = state.open_steps(skipping=skipping)
    if not open_steps:
        return _finish(state, skipping)
    index = open_steps[0]
    calls = state.calls.get(index, [])
    if calls and calls[-1].feedback != OK:
        return _after_failure(state, index, calls[-1], skipping)
    step = state.steps[index]
    if step.tentative and state.rng.random() < state.profile.picks_right_tool:
        return _next_step(state, (*skipping, index))  # a side remark, not a step: leave it out
    if state.task.has_plan and step.tool is not None:
        return _plan_step(state, index, skipping)
    return _free_step(state, index, skipping)


def _after_failure(state: State, index: int, last: Exchange, skipping: tuple[int, ...]) -> Decision:
    """Retry the step's last call (a failure, or a reply that did not say), or give the step up."""
    if last.feedback == UNKNOWN_TOOL:
        return _next_step(state, (*skipping, index))  # no such tool: retrying cannot help
    if last.feedback != FAILED or state.rng.random() < state.profile.retries_failed_tool:
        return _call(state, last.target, index, skipping, "retry")
    return _next_step(state, (*skipping, index))


def _call(state: State, tool: str, index: int, skipping: tuple[int, ...], reason: str) -> Decision:
    remaining = state.open_steps(skipping=skipping)
    # On the very last turn a model that is about to run its last step says it is done in the same breath.
    finish = state.turns_left <= 1 and remaining == [index]
    return Decision(CALL, tool, index, len(state.steps), skipping, reason, finish)


def _plan_step(state: State, index: int, skipping: tuple[int, ...]) -> Decision:
    profile, rng, step = state.profile, state.rng, state.steps[index]
    tool = step.tool or ""
    repair = _repair(state, index, tool, skipping)
    if repair is not None:
        return repair
    # A step the description corroborates is followed more reliably than one the plan alone asks for; misleading
    # terms in the description (tools the plan does not use) make the whole plan look less certain.
    risk = (1.0 - profile.follows_plan) * (1.0 - CONFIRMED_BOOST * step.support)
    risk *= 1.0 + LURE_DOUBT * len(state.task.lures)
    if rng.random() >= risk:
        if state.steps is state.task.repaired:
            return _call(state, tool, index, skipping, "task")
        return _with_plan_arguments(state, _call(state, tool, index, skipping, "plan"))
    return _deviate(state, index, tool, skipping)


def _with_plan_arguments(state: State, decision: Decision) -> Decision:
    """Pass the arguments the plan's notes give for this step, unless the model notices they are wrong."""
    given = state.task.arguments.get(decision.step) if decision.step is not None else None
    if not given:
        return decision
    if state.rng.random() < state.profile.repairs_plan:
        return dataclasses.replace(decision, reason="defaults")
    return dataclasses.replace(decision, arguments=given)


def _repair(state: State, index: int, tool: str, skipping: tuple[int, ...]) -> Decision | None:
    """A strong model's fix of an obviously broken plan step, when it has the evidence (else None)."""
    if tool in state.succeeded:
        fixed = _next_step(state, (*skipping, index))  # a repeated step: its tool already ran
    elif (later := _later_dependency(state, index, tool, skipping)) is not None:
        fixed = _call(state, state.steps[later].tool or "", later, skipping, "dependency")
    else:
        return None
    return fixed if state.rng.random() < state.profile.repairs_plan else None


def _later_dependency(state: State, index: int, tool: str, skipping: tuple[int, ...]) -> int | None:
    """The first later open plan step that `tool` depends on, if any."""
    deps = state.dependencies.get(tool, ())
    return next((i for i in state.open_steps(after=index, skipping=skipping) if state.steps[i].tool in deps), None)


def _deviate(state: State, index: int, tool: str, skipping: tuple[int, ...]) -> Decision:
    """A plausible slip: skip the step, do the next one first, or use a similar tool."""
    draw = state.rng.random()
    later = state.open_steps(after=index, skipping=skipping)
    if draw < 1 / 3:
        return _next_step(state, (*skipping, index))
    if draw < 2 / 3 and later:
        return _call(state, state.steps[later[0]].tool or "", later[0], skipping, "swap")
    return _call(state, _similar(state, tool), index, skipping, "similar")


def _similar(state: State, tool: str) -> str:
    # A misleading term in the description pulls the slip towards the tool it evokes.
    options = list(state.task.lures) or knowledge().similar(tool) or [tool]
    return state.rng.choice(options)


def _free_step(state: State, index: int, skipping: tuple[int, ...]) -> Decision:
    """A step without a plan: call the tool the description names, or search for one and pick from the results."""
    step, rng, profile = state.steps[index], state.rng, state.profile
    searches = state.searches.get(index, [])
    may_search = state.can_search and state.slack(skipping) >= 1
    if step.tool is not None:
        wants_search = not step.told and rng.random() >= profile.skips_search
        if not searches and may_search and state.slack(skipping) >= 2 and wants_search:
            return _search(state, index, skipping, _query(step.text, retry=False))
        return _call(state, step.tool, index, skipping, "named")
    tried = [call.target for call in state.calls.get(index, [])]
    if searches and searches[-1].results:
        fresh = tuple(name for name in searches[-1].results if name not in tried)
        if not fresh:  # every candidate ran and the task is still not done: give this step up
            return _next_step(state, (*skipping, index))
        return _call(state, _pick(state, step, fresh), index, skipping, "picked")
    query = _query(step.text, retry=bool(searches))
    if len(searches) >= 2 or not may_search or any(search.target == query for search in searches):
        guess = _guess(state, index, tried)
        if guess is None:
            return _next_step(state, (*skipping, index))
        return _call(state, guess, index, skipping, "guess")
    return _search(state, index, skipping, query)


def _query(text: str, retry: bool) -> str:
    """What a model types into the search box: the step's content words, plus the tool family it names."""
    vocab = knowledge()
    words = vocab.query_words(text, 4)
    if retry:  # the first search found nothing: try the words it did not lead with
        words = words[-2:] or words
    hint = vocab.category_hint(text)
    hint_words = hint.split("_") if hint is not None else []
    if hint_words and hint_words[0] not in words:
        words += hint_words
    return " ".join(words) or text


def _search(state: State, index: int, skipping: tuple[int, ...], query: str) -> Decision:
    return Decision(SEARCH, query, index, len(state.steps), skipping, "search")


def _pick(state: State, step: Step, results: tuple[str, ...]) -> str:
    """The result that best matches the step, with the profile's reliability; vaguer steps are riskier."""
    strengths = dict(knowledge().match(step.text))
    if step.tool is not None and step.tool in results:
        strengths[step.tool] = strengths.get(step.tool, 0.0) + 100.0
    best = max(results, key=lambda name: (strengths.get(name, 0.0), -results.index(name)))
    sure = state.profile.picks_right_tool
    if strengths.get(best, 0.0) <= 0.0:
        sure *= 0.5  # nothing in the step's wording matches: the first hit is as good as any
    others = [name for name in results if name != best]
    if not others or state.rng.random() < sure:
        return best
    return state.rng.choice(others)


def _guess(state: State, index: int, tried: list[str]) -> str | None:
    """A call without evidence: the tool the wording evokes, else the usual tool for that position (None when
    every such guess has been tried)."""
    evoked = [name for name, _ in knowledge().match(state.steps[index].text) if name not in tried]
    if evoked and state.rng.random() < state.profile.picks_right_tool:
        return evoked[0]
    last = index == len(state.steps) - 1
    usual = [_FIRST_GUESS if index == 0 else _LAST_GUESS if last else _MIDDLE_GUESS, *evoked[1:2]]
    return next((name for name in usual if name not in tried), None)


def _finish(state: State, skipping: tuple[int, ...]) -> Decision:
    """Every step is done (or given up): say so, unless the executor already refused that and a tool the
    description names never ran."""
    rejected = any(e.completion and e.feedback == NUDGE for e in state.history)
    extras = [name for name in state.task.mentioned if name not in state.succeeded]
    if rejected and extras and state.rng.random() < state.profile.repairs_plan:
        return Decision(CALL, extras[0], None, len(state.steps), skipping, "extra")
    if state.rng.random() < state.profile.declares_completion:
        return Decision(COMPLETE, skipped=skipping, total=len(state.steps))
    return Decision(WAIT, skipped=skipping, total=len(state.steps))
