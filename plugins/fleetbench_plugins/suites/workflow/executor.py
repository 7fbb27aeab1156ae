"""The interactive episode loop (reference §3.2): every LLM call is one turn, for at most `max_turns` turns.

Text mode parses the `<tool_search>` / `<tool_info>` / `<tool_call>` protocol from the reply; native mode offers the
registry's tools plus the `tool_search` / `tool_info` helpers as functions and answers each call with a `role: tool`
message. Differences from the original, on purpose:

- several actions in one reply follow `multi_call` (default `first`: run the first, tell the model the rest were
  ignored) instead of executing every call and letting a search silently swallow calls in the same reply;
- a short reply without an action gets a nudge instead of the identical request being re-sent;
- format help names the required tools only when `help_reveals_required_tools` is on (the original always leaked them);
- native mode offers, by default (`native_tools: discovered`), the two helper functions plus the tools whose names the
  model has read so far (in the prompt, search results, tool details or feedback), so that, as in text mode, tools must
  be found before they are listed; `all` offers every registry tool from the first request. A correctly named tool
  that is not offered still runs, as it would in text mode;
- completion is checked after this turn's actions ran, so "final call + TASK_COMPLETED" in one reply completes;
- an `InfraFailure` from `chat` ends the episode as an infrastructure outcome, never as a model error.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from fleetbench.errors import InfraFailure
from fleetbench.interfaces import Chat
from fleetbench.types import ChatMessage, Completion, Message, Request, Role, ToolSpec
from fleetbench_plugins.suites.workflow.model import Task
from fleetbench_plugins.suites.workflow.names import NameResolver
from fleetbench_plugins.suites.workflow.native import helper_tools, parse_native
from fleetbench_plugins.suites.workflow.protocol import (
    CALL,
    INFO,
    MULTI_CALL_POLICIES,
    SEARCH,
    Action,
    ParsedTurn,
    looks_like_attempted_call,
    parse_turn,
    select_actions,
)
from fleetbench_plugins.suites.workflow.registry import ToolRegistry
from fleetbench_plugins.suites.workflow.simulator import ToolSimulator
from fleetbench_plugins.suites.workflow.transcript import Attempt, EpisodeLog, TurnRecord

PROTOCOL = "workflow"
"""The protocol requests of this suite carry (the simulated provider's `workflow` player speaks it)."""

STOP_COMPLETED = "completed"
STOP_MAX_TURNS = "max_turns"
STOP_FAILURE_STREAK = "failure_streak"
STOP_EXECUTION_LIMIT = "execution_limit"
STOP_LOOP = "loop"
STOP_INFRA = "infra_error"
NATIVE_TOOL_LISTS = ("discovered", "all")

FORMAT_HELP = (
    "TOOL CALL FORMAT HELP\nNo valid tool call was found in your response. To execute a tool, reply with exactly one "
    "tag:\n<tool_call>tool_name</tool_call>\nArguments are optional: "
    '<tool_call>{"tool": "tool_name", "arguments": {"source": "data/input.json"}}</tool_call>\n'
    "To find tools use <tool_search>what you need</tool_search>; for details use <tool_info>tool_name</tool_info>.\n"
    "Write the tag as plain text: a tag inside a code block, a quotation or <think> reasoning is not executed."
)
NO_ACTION = (
    "NO ACTION DETECTED. Your response contained no <tool_search>, <tool_info> or <tool_call>.\n"
    "Do not explain: act. Find a tool with <tool_search>query</tool_search> or execute one with "
    "<tool_call>tool_name</tool_call>.\nA tag inside a code block, a quotation or <think> reasoning is not executed."
)
NATIVE_NO_ACTION = (
    "NO ACTION DETECTED. Call one of the provided functions: tool_search to find tools, tool_info for details, "
    "or a tool to execute it."
)
NUDGE = (
    "No tool was executed in your last response. Continue the task one tool per response with "
    "<tool_call>tool_name</tool_call>; reply TASK_COMPLETED only once every step has succeeded."
)
NATIVE_NUDGE = (
    "No tool was executed in your last response. Continue the task by calling one tool; reply TASK_COMPLETED "
    "only once every step has succeeded."
)
IGNORED = "Not executed: only the first action of a response is executed."
REJECTED = "Not executed: your response contained {n} actions. Send exactly ONE action per response."
PROGRESS = (
    "Current progress: {n} tools executed successfully.\nContinue with the next tool, or reply TASK_COMPLETED when "
    "every step of the task has succeeded.\nRemember: execute only ONE tool per response."
)


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    """The loop's rules. Defaults reproduce the original's limits (§3.2)."""

    max_turns: int = 10
    multi_call: str = "first"
    help_reveals_required_tools: bool = False
    substring_match: bool = False
    native_tools: str = "discovered"
    search_k: int = 5
    failure_streak: int = 5
    max_successful_executions: int = 15
    loop_window: int = 5
    no_action_min_chars: int = 50
    format_help_min_turn: int = 2
    stalled_turns: int = 5

    def __post_init__(self) -> None:
        if self.multi_call not in MULTI_CALL_POLICIES:
            raise ValueError(f"multi_call must be one of {', '.join(MULTI_CALL_POLICIES)}, got {self.multi_call!r}")
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {self.max_turns}")
        if self.native_tools not in NATIVE_TOOL_LISTS:
            raise ValueError(f"native_tools must be one of {', '.join(NATIVE_TOOL_LISTS)}, got {self.native_tools!r}")


class WorkflowExecutor:
    """Runs one episode of one task through a `Chat`. One instance per episode."""

    def __init__(
        self,
        registry: ToolRegistry,
        task: Task,
        system: str,
        user: str,
        simulator: ToolSimulator,
        config: ExecutorConfig | None = None,
        *,
        native: bool = False,
    ) -> None:
        self._registry = registry
        self._task = task
        self._simulator = simulator
        self._config = config or ExecutorConfig()
        self._native = native
        self._resolver = NameResolver(registry.tools.values(), substring=self._config.substring_match)
        self._messages: list[ChatMessage] = [ChatMessage(Role.SYSTEM, system), ChatMessage(Role.USER, user)]
        self._log = EpisodeLog()
        self._read_up_to = 0  # messages already scanned for tool names (native `discovered` mode)

    @property
    def messages(self) -> list[Message]:
        """The conversation so far, in OpenAI wire shape (as transcripts store it)."""
        return [message.wire() for message in self._messages]

    async def run(self, chat: Chat) -> EpisodeLog:
        """Play the episode to completion, early stop, max turns or an infrastructure failure."""
        for turn in range(1, self._config.max_turns + 1):
            try:
                completion = await chat(Request(tuple(self._messages), self._offered_tools(), protocol=PROTOCOL))
            except InfraFailure as exc:
                # Not a model error: keep the partial log and say why the episode ended.
                self._log.api_issues.append({"turn": turn, "status": exc.status, "detail": exc.detail})
                self._log.infra_status = exc.status
                self._log.stop_reason = STOP_INFRA
                return self._log
            self._play_turn(turn, completion)
            if self._log.stop_reason:
                return self._log
        self._log.stop_reason = STOP_MAX_TURNS
        return self._log

    def _offered_tools(self) -> tuple[ToolSpec, ...]:
        """The tools of the next request: none in text mode, else the helpers and the registry's tools (all, or
        those whose names the model has read so far in non-assistant messages, in registry order)."""
        if not self._native:
            return ()
        specs = self._registry.tool_specs()
        if self._config.native_tools == "all":
            return (*specs.values(), *helper_tools())
        discovered = self._log.discovered_tools
        for message in self._messages[self._read_up_to :]:
            if message.role is not Role.ASSISTANT:
                discovered.extend(n for n in self._registry.names_in(message.content))
        self._log.discovered_tools = list(dict.fromkeys(discovered))
        self._read_up_to = len(self._messages)
        known = set(self._log.discovered_tools)
        return (*(spec for name, spec in specs.items() if name in known), *helper_tools())

    def _play_turn(self, turn: int, completion: Completion) -> None:
        native_calls = [{"name": c.name, "arguments": c.arguments} for c in completion.tool_calls]
        record = TurnRecord(
            turn,
            completion.text,
            native_calls,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
        self._log.turns.append(record)
        parsed = self._parse(turn, completion)
        record.actions = [a.summary() for a in parsed.actions]
        record.parse_issues = list(parsed.issues)
        record.completion_signal = parsed.completion_signal
        if parsed.completion_signal:
            self._log.completion_signal_turns.append(turn)
        as_tool_messages = self._native and bool(completion.tool_calls)
        self._messages.append(self._assistant_message(completion, parsed, as_tool_messages))
        if parsed.actions:
            self._act(record, parsed, as_tool_messages)
        else:
            self._no_action(record, parsed)

    def _parse(self, turn: int, completion: Completion) -> ParsedTurn:
        if not (self._native and completion.tool_calls):
            # Native mode still reads text tags: some serving stacks emit them instead of function calls.
            return parse_turn(completion.text, self._resolver)
        parsed = parse_native(completion.tool_calls, completion.text, self._resolver)
        actions = tuple(
            dataclasses.replace(a, call_id=a.call_id or f"call_{turn}_{i}") for i, a in enumerate(parsed.actions)
        )
        return dataclasses.replace(parsed, actions=actions)

    @staticmethod
    def _assistant_message(completion: Completion, parsed: ParsedTurn, as_tool_messages: bool) -> ChatMessage:
        if not as_tool_messages:
            return ChatMessage(Role.ASSISTANT, completion.text)
        calls = tuple(
            dataclasses.replace(c, call_id=a.call_id)
            for c, a in zip(completion.tool_calls, parsed.actions, strict=True)
        )
        return ChatMessage(Role.ASSISTANT, completion.text, calls)

    def _act(self, record: TurnRecord, parsed: ParsedTurn, as_tool_messages: bool) -> None:
        selection = select_actions(parsed.actions, self._config.multi_call)
        if selection.rejected:
            record.parse_issues.append(f"{len(parsed.actions)} actions in one response (rejected)")
            text = REJECTED.format(n=len(parsed.actions))
            self._reply(record, "rejected", [(a, text) for a in selection.ignored], [], as_tool_messages)
            return
        replies = [(a, self._perform(record.turn, a)) for a in selection.execute]
        replies += [(a, IGNORED) for a in selection.ignored]
        notes: list[str] = []
        if selection.ignored:
            record.parse_issues.append(f"{len(selection.ignored)} further action(s) ignored (multi_call=first)")
            notes.append(f"Note: {len(selection.ignored)} further action(s) in your response were ignored.")
        if any(a.kind == CALL for a in selection.execute):
            notes.append(PROGRESS.format(n=len(self._log.executed_tools)))
        kind = "+".join(sorted({a.kind for a in selection.execute}))
        self._reply(record, kind, replies, notes, as_tool_messages)
        if parsed.completion_signal and self._required_done():
            self._log.completed = True
            self._log.stop_reason = STOP_COMPLETED
        elif any(a.kind == CALL for a in selection.execute):
            self._log.stop_reason = self._termination()

    def _reply(
        self,
        record: TurnRecord,
        kind: str,
        replies: Sequence[tuple[Action, str]],
        notes: Sequence[str],
        as_tool_messages: bool,
    ) -> None:
        record.feedback_kind = kind
        record.feedback = [text for _, text in replies] + list(notes)
        if not as_tool_messages:
            self._messages.append(ChatMessage(Role.USER, "\n\n".join(record.feedback)))
            return
        for index, (action, text) in enumerate(replies):
            content = "\n\n".join([text, *notes]) if index == len(replies) - 1 else text
            self._messages.append(ChatMessage(Role.TOOL, content, tool_call_id=action.call_id))

    def _perform(self, turn: int, action: Action) -> str:
        if action.kind == SEARCH:
            found = self._registry.search(action.requested, k=self._config.search_k)
            self._log.searches.append({"turn": turn, "query": action.requested, "results": [t.name for t in found]})
            return self._registry.format_search_results(action.requested, found)
        if action.kind == INFO:
            self._log.infos.append({"turn": turn, "requested": action.requested, "tool": action.tool})
            tool = self._registry.get(action.tool) if action.tool is not None else None
            if tool is None:
                return f"Tool '{action.requested}' not found. Use <tool_search>query</tool_search> to find tools."
            return self._registry.describe(tool)
        return self._execute(turn, action)

    def _execute(self, turn: int, action: Action) -> str:
        if action.tool is None:
            error = f"TOOL_NOT_FOUND: No tool named '{action.requested}' (use <tool_search> to find tools)"
            attempt = Attempt(
                turn, action.requested, False, False, "TOOL_NOT_FOUND", error, arguments=dict(action.arguments)
            )
        else:
            result = self._simulator.execute(action.tool, action.arguments)
            attempt = Attempt(
                turn,
                result.tool,
                result.success,
                True,
                result.error_code,
                result.error,
                result.output,
                dict(action.arguments),
                result.unmet_dependencies,
            )
        self._log.attempts.append(attempt)
        if attempt.success:
            return f"✅ {attempt.tool} executed successfully.\nOutput: {json.dumps(attempt.output)}"
        return f"❌ {attempt.tool} failed.\nError: {attempt.error}"

    def _no_action(self, record: TurnRecord, parsed: ParsedTurn) -> None:
        if parsed.completion_signal and self._required_done():
            record.feedback_kind = "completed"
            self._log.completed = True
            self._log.stop_reason = STOP_COMPLETED
            return
        text = record.assistant.strip()
        if not parsed.completion_signal and len(text) > self._config.no_action_min_chars:
            self._assist(record, "no_action", self._no_action_text())
        elif not parsed.completion_signal and self._malformed(record.turn, parsed, text):
            self._assist(record, "format_help", self._format_help_text())
        else:
            # The original appended nothing here and re-sent the identical request; a nudge is not an assisted turn.
            self._log.nudges += 1
            self._send(record, "nudge", NATIVE_NUDGE if self._native else NUDGE)

    def _malformed(self, turn: int, parsed: ParsedTurn, text: str) -> bool:
        if parsed.issues:
            return True
        if turn >= self._config.stalled_turns and not self._log.attempts:
            return True
        return turn >= self._config.format_help_min_turn and looks_like_attempted_call(text, self._resolver.names)

    def _assist(self, record: TurnRecord, kind: str, text: str) -> None:
        self._log.format_issues.append({"turn": record.turn, "kind": kind})
        self._send(record, kind, text)

    def _send(self, record: TurnRecord, kind: str, text: str) -> None:
        record.feedback_kind = kind
        record.feedback = [text]
        self._messages.append(ChatMessage(Role.USER, text))

    def _no_action_text(self) -> str:
        base = NATIVE_NO_ACTION if self._native else NO_ACTION
        if self._config.help_reveals_required_tools and self._task.required_tools:
            return f"{base}\nExecute the first required tool NOW: <tool_call>{self._task.required_tools[0]}</tool_call>"
        return base

    def _format_help_text(self) -> str:
        base = NATIVE_NO_ACTION if self._native else FORMAT_HELP
        if not (self._config.help_reveals_required_tools and self._task.required_tools):
            return base
        tools = self._task.required_tools
        examples = "\n".join(f"<tool_call>{name}</tool_call>" for name in tools)
        return f"{base}\nFor this task, you need to use these tools: {', '.join(tools)}\nExamples:\n{examples}"

    def _required_done(self) -> bool:
        return set(self._task.required_tools) <= set(self._log.executed_tools)

    def _termination(self) -> str:
        """The original's `_should_terminate`: a failure streak, too many executions, or a one-tool loop."""
        attempts, done, cfg = self._log.attempts, self._log.executed_tools, self._config
        if len(attempts) >= cfg.failure_streak and not any(a.success for a in attempts[-cfg.failure_streak :]):
            return STOP_FAILURE_STREAK
        if len(done) > cfg.max_successful_executions:
            return STOP_EXECUTION_LIMIT
        if len(done) >= cfg.loop_window and len(set(done[-cfg.loop_window :])) == 1:
            return STOP_LOOP
        return ""
