"""What one episode recorded, the transcript stored per unit, and its readable text form.

The transcript holds no timestamps or durations (the scheduler records timing in its own columns), so two runs of the
same unit with the same seed and the same model replies store identical transcripts. `render_text` is what
`fleetbench show` prints and what the LLM judge reads (the original's TXT log, §3.7).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

TRANSCRIPT_VERSION = 2


@dataclass(frozen=True)
class Attempt:
    """One tool execution attempt. `tool` is the registry name, or the name as written when it matched no tool."""

    turn: int
    tool: str
    success: bool
    known: bool = True
    error_code: str | None = None
    error: str | None = None
    output: Mapping[str, Any] | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    unmet_dependencies: tuple[str, ...] = ()


@dataclass
class TurnRecord:
    """One LLM call and the executor's answer to it. `feedback_kind` names the branch the executor took."""

    turn: int
    assistant: str
    native_calls: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    parse_issues: list[str] = field(default_factory=list)
    completion_signal: bool = False
    feedback_kind: str = ""
    feedback: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class EpisodeLog:
    """Everything the executor recorded for one episode."""

    turns: list[TurnRecord] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    format_issues: list[dict[str, Any]] = field(default_factory=list)
    api_issues: list[dict[str, Any]] = field(default_factory=list)
    nudges: int = 0
    completed: bool = False
    completion_signal_turns: list[int] = field(default_factory=list)
    stop_reason: str = ""
    infra_status: str | None = None
    discovered_tools: list[str] = field(default_factory=list)
    """Native `discovered` mode: the tools offered as functions, in the order the model came across them."""

    @property
    def executed_tools(self) -> tuple[str, ...]:
        """Successfully executed tools, in order, duplicates kept (the original's `executed_tools`)."""
        return tuple(a.tool for a in self.attempts if a.success)

    @property
    def format_error_count(self) -> int:
        """Assisted turns: no-action feedback and format help messages sent (§4.7)."""
        return len(self.format_issues)

    @property
    def parse_issue_count(self) -> int:
        """Parse issues over all turns (unclosed tags, bad JSON...), reported apart from model errors."""
        return sum(len(t.parse_issues) for t in self.turns)

    @property
    def completion_signal_seen(self) -> bool:
        """Whether any turn carried a completion phrase."""
        return bool(self.completion_signal_turns)

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.turns)

    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.turns)


def build_transcript(
    *,
    task: Mapping[str, Any],
    prompt: Mapping[str, Any],
    log: EpisodeLog,
    scores: Mapping[str, Any] | None,
    label: str,
    error: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON-ready transcript stored with a unit."""
    transcript = {
        "version": TRANSCRIPT_VERSION,
        "task": dict(task),
        "prompt": dict(prompt),
        "settings": dict(settings),
        "turns": list(log.turns),
        "execution_history": list(log.attempts),
        "executed_tools": list(log.executed_tools),
        "search_history": list(log.searches),
        "info_history": list(log.infos),
        "format_issues": list(log.format_issues),
        "api_issues": list(log.api_issues),
        "completion_signal_turns": list(log.completion_signal_turns),
        "completed": log.completed,
        "stop_reason": log.stop_reason,
        "infra_status": log.infra_status,
        "discovered_tools": list(log.discovered_tools),
        "scores": dict(scores) if scores is not None else None,
        "label": label,
        "error": dict(error) if error is not None else None,
    }
    # A JSON round trip turns tuples into lists, so the stored form equals the in-memory one; dataclasses are
    # encoded field by field as JSON meets them (dataclasses.asdict would deep-copy everything first).
    result: dict[str, Any] = json.loads(json.dumps(transcript, default=_fields))
    return result


def _fields(value: object) -> dict[str, Any]:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def render_text(transcript: Mapping[str, Any]) -> str:
    """A readable transcript grouped by turn."""
    lines = [*_header(transcript), ""]
    for turn in transcript.get("turns", []):
        lines.extend(_render_turn(turn))
    lines.extend(_footer(transcript))
    return "\n".join(lines).rstrip() + "\n"


def chat_messages(transcript: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The episode as the chat the model saw: system and task prompt, then each reply and the environment's
    feedback to it (tool results, format help) as the next user message."""
    prompt = transcript.get("prompt", {})
    chat = [("system", str(prompt.get("system", ""))), ("user", str(prompt.get("user", "")))]
    for turn in transcript.get("turns", []):
        chat.append(("assistant", str(turn.get("assistant", ""))))
        if turn.get("feedback"):
            chat.append(("user", "\n".join(str(text) for text in turn["feedback"])))
    return chat


def _header(t: Mapping[str, Any]) -> list[str]:
    task, prompt = t.get("task", {}), t.get("prompt", {})
    lines = [
        f"=== Task {task.get('task_id')} ({task.get('task_type')}) ===",
        f"Required tools: {', '.join(task.get('required_tools', []))}",
        f"Prompt type: {prompt.get('prompt_type')}  flaw: {prompt.get('flaw_type')}",
        f"Severity: {prompt.get('severity')}  native mode: {prompt.get('native_mode')}  "
        f"description: {prompt.get('description_source')}",
        f"Expected sequence: {', '.join(prompt.get('expected_sequence', []))}",
        "",
        "--- System prompt ---",
        str(prompt.get("system", "")),
        "",
        "--- User prompt ---",
        str(prompt.get("user", "")),
    ]
    return lines


def _render_turn(turn: Mapping[str, Any]) -> list[str]:
    lines = [f"=== Turn {turn['turn']} ===", "[assistant]", str(turn.get("assistant", ""))]
    for call in turn.get("native_calls", []):
        lines.append(f"[native call] {call.get('name')} {call.get('arguments')}")
    for issue in turn.get("parse_issues", []):
        lines.append(f"[parse issue] {issue}")
    if turn.get("completion_signal"):
        lines.append("[completion signal]")
    if turn.get("feedback"):
        lines.append(f"[environment: {turn.get('feedback_kind')}]")
        lines.extend(str(text) for text in turn["feedback"])
    lines.append("")
    return lines


def _footer(t: Mapping[str, Any]) -> list[str]:
    lines = ["=== Execution history ==="]
    for a in t.get("execution_history", []):
        status = "ok" if a.get("success") else f"FAILED {a.get('error')}"
        lines.append(f"turn {a.get('turn')}: {a.get('tool')} -> {status}")
    lines.append(f"Executed tools: {', '.join(t.get('executed_tools', []))}")
    for issue in t.get("api_issues", []):
        lines.append(f"API issue (turn {issue.get('turn')}): {issue.get('status')} {issue.get('detail', '')}")
    lines.append(f"Stop reason: {t.get('stop_reason')}  completed: {t.get('completed')}")
    lines.extend(_scores_lines(t.get("scores"), t.get("label"), t.get("error")))
    return lines


def _scores_lines(scores: Mapping[str, Any] | None, label: Any, error: Mapping[str, Any] | None) -> list[str]:
    lines = ["=== Result ===", f"Label: {label}"]
    for name in ("workflow_score", "phase2_score", "quality_score", "tool_coverage_rate", "executor_level"):
        if scores and name in scores:
            lines.append(f"{name}: {scores[name]}")
    if error:
        lines.append(f"Error message: {error.get('message')}")
        lines.append(f"Error category: {error.get('category')} (source: {error.get('source')})")
    return lines
