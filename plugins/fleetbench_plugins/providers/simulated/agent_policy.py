"""What the simulated agent does next, given its reading of the task and of the conversation so far.

The agent works through a list of steps (the plan's, or the ones the description implies). It says which step each
reply is about ("Step 2 of 4"), so that the next turn, which starts from nothing but the messages, can tell which
steps are done, which it gave up on ("skipping step 2") and which failed and might be retried. Every random decision
comes from the per-turn `rng`, so a reply is a pure function of (messages, profile, rng seed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from fleetbench_plugins.providers.simulated.agent_history import (
    CALL,
    FAILED,
    INFO,
    NUDGE,
    OK,
    SEARCH,
    Exchange,
)
from fleetbench_plugins.providers.simulated.agent_knowledge import knowledge
from fleetbench_plugins.providers.simulated.agent_task import Step, TaskView
from fleetbench_plugins.providers.simulated.profiles import Profile

MAX_TURNS = 10  # the executor's budget (reference §3.2); a model only "knows" it loosely, as a wish to be brief
COMPLETE = "complete"
WAIT = "wait"  # believes it is done but does not say the completion word
EXPLAIN = "explain"  # reasoning without an action
PROSE = "prose"  # a native-only model describing calls it cannot make in text
CONFIRMED_BOOST = 0.8  # share of a deviation risk that disappears when the description names the plan's tool
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


@dataclass
class State:
    """The agent's picture of the episode, rebuilt from the messages on every turn."""

    task: TaskView
    steps: tuple[Step, ...]
    history: tuple[Exchange, ...]
    profile: Profile
    rng: random.Random
    native: bool
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
    task: TaskView, history: tuple[Exchange, ...], profile: Profile, rng: random.Random, native: bool
) -> State:
    """Replay the history onto the task's steps."""
    revealed = next((e.revealed for e in reversed(history) if e.revealed), ())
    steps = task.steps
    if revealed and not task.has_plan:
        steps = tuple(Step(name, name, True) for name in revealed)  # format help named the tools: use them
    state = State(task, steps, history, profile, rng, native, dependencies=dict(task.requires))
    rejected = any(e.completion and e.feedback == NUDGE for e in history)
    for exchange in history:
        _replay(state, exchange, keep_skips=not rejected)
    if revealed and not task.has_plan:
        state.settled = {i for i, s in enumerate(steps) if s.tool in state.succeeded}
    return state


def _replay(state: State, exchange: Exchange, keep_skips: bool) -> None:
    for name, deps in exchange.dependencies:
        state.dependencies[name] = deps
    if keep_skips:
        state.settled.update(i for i in exchange.skipped if 0 <= i < len(state.steps))
    if exchange.succeeded:
        state.succeeded.append(exchange.target)
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
    if not state.history and state.task.has_plan and state.steps and rng.random() < profile.checks_plan:
        return Decision(INFO, state.steps[0].tool or "", 0, len(state.steps), reason="check")
    return _next_step(state, ())


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
    if state.task.has_plan:
        return _plan_step(state, index, skipping)
    return _free_step(state, index, skipping)


def _after_failure(state: State, index: int, last: Exchange, skipping: tuple[int, ...]) -> Decision:
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
    follow = profile.follows_plan
    if step.named:  # the description corroborates this step
        follow += (1.0 - follow) * CONFIRMED_BOOST
    if rng.random() < follow:
        return _call(state, tool, index, skipping, "plan")
    return _deviate(state, index, tool, skipping)


def _repair(state: State, index: int, tool: str, skipping: tuple[int, ...]) -> Decision | None:
    """A strong model's fix of an obviously broken plan step, when it has the evidence (else None)."""
    if tool in state.succeeded:
        evidence: Decision | None = _next_step(state, (*skipping, index))  # a repeated step: already done
    elif later := _later_dependency(state, index, tool, skipping):
        evidence = _call(state, state.steps[later].tool or "", later, skipping, "dependency")
    elif (named := _contradicting_name(state, tool)) is not None:
        evidence = _call(state, named, index, skipping, "description")
    else:
        return None
    return evidence if state.rng.random() < state.profile.repairs_plan else None


def _later_dependency(state: State, index: int, tool: str, skipping: tuple[int, ...]) -> int:
    """The first later open plan step that `tool` depends on (0 when there is none)."""
    deps = state.dependencies.get(tool, ())
    for later in state.open_steps(after=index, skipping=skipping):
        if state.steps[later].tool in deps:
            return later
    return 0


def _contradicting_name(state: State, tool: str) -> str | None:
    """A tool the description names for this kind of work while the plan uses another one it never mentions."""
    mentioned = state.task.mentioned
    if not mentioned or tool in mentioned:
        return None
    planned = {s.tool for s in state.steps}
    missing = [name for name in mentioned if name not in planned and name not in state.succeeded]
    return missing[0] if missing else None


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
    vocab = knowledge()
    # A misleading term in the description pulls the slip towards the tool it evokes.
    lure = [name for name, _ in vocab.match(state.task.description) if name not in {s.tool for s in state.steps}]
    options = lure[:1] or vocab.similar(tool) or [tool]
    return state.rng.choice(options)


def _free_step(state: State, index: int, skipping: tuple[int, ...]) -> Decision:
    """A step without a plan: call the tool the description names, or search for one and pick from the results."""
    step, rng, profile = state.steps[index], state.rng, state.profile
    searches = state.searches.get(index, [])
    if step.tool is not None:
        if not searches and state.slack(skipping) >= 2 and rng.random() >= profile.skips_search:
            return _search(state, index, skipping, step.text)
        return _call(state, step.tool, index, skipping, "named")
    if searches and searches[-1].results:
        return _call(state, _pick(state, step, searches[-1].results), index, skipping, "picked")
    if len(searches) >= 2 or state.slack(skipping) < 1:
        return _call(state, _guess(state, index), index, skipping, "guess")
    query_words = knowledge().query_words(step.text, 4)
    if searches:  # the first search found nothing: try the words it did not lead with
        query_words = query_words[-2:] or query_words
    return _search(state, index, skipping, " ".join(query_words) or step.text)


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


def _guess(state: State, index: int) -> str:
    """A call without evidence: the tool the wording evokes, else the usual tool for that position."""
    best = knowledge().best(state.steps[index].text)
    if best is not None and state.rng.random() < state.profile.picks_right_tool:
        return best[0]
    if index == 0:
        return _FIRST_GUESS
    return _LAST_GUESS if index == len(state.steps) - 1 else _MIDDLE_GUESS


def _finish(state: State, skipping: tuple[int, ...]) -> Decision:
    if state.rng.random() < state.profile.declares_completion:
        return Decision(COMPLETE, skipped=skipping, total=len(state.steps))
    return Decision(WAIT, skipped=skipping, total=len(state.steps))
