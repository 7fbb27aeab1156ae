"""Error classification: the §4.5 messages, the ordered rules and the optional LLM judge."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from fleetbench.errors import InfraFailure
from fleetbench.testing.requests import wire
from fleetbench.types import Completion, Message, Request
from fleetbench_plugins.suites.workflow.classify import (
    Diagnosis,
    ErrorVerdict,
    classify,
    classify_rules,
    normalise_category,
    parse_judge_reply,
)
from fleetbench_plugins.suites.workflow.executor import STOP_FAILURE_STREAK, STOP_LOOP, STOP_MAX_TURNS
from fleetbench_plugins.suites.workflow.metrics import WORKFLOW_METRICS
from fleetbench_plugins.suites.workflow.model import ERROR_CATEGORIES, INFRASTRUCTURE_CATEGORY, Task
from fleetbench_plugins.suites.workflow.transcript import Attempt, EpisodeLog, TurnRecord

READER, PARSER, WRITER = "file_operations_reader", "data_processing_parser", "file_operations_writer"
TASK = Task("t-9", "data_pipeline", "Read, parse, write", (READER, PARSER, WRITER))


def ok(tool: str, turn: int = 1) -> Attempt:
    return Attempt(turn, tool, True, output={"status": "success"})


def failed(tool: str, code: str, text: str, *, unmet: tuple[str, ...] = (), turn: int = 1) -> Attempt:
    return Attempt(turn, tool, False, error_code=code, error=f"{code}: {text}", unmet_dependencies=unmet)


def diagnose(
    attempts: Sequence[Attempt] = (),
    *,
    stop: str = STOP_MAX_TURNS,
    turns: int = 10,
    format_issues: int = 0,
    parse_issues: Sequence[str] = (),
) -> Diagnosis:
    log = EpisodeLog(
        turns=[TurnRecord(i + 1, "...", parse_issues=list(parse_issues) if i == 0 else []) for i in range(turns)],
        attempts=list(attempts),
        format_issues=[{"turn": i + 1, "kind": "format_help"} for i in range(format_issues)],
        stop_reason=stop,
    )
    return Diagnosis.from_log(TASK, log, max_turns=10)


def category(d: Diagnosis) -> str:
    return classify_rules(d).category


def test_no_tool_calls_with_format_issues_is_a_format_error() -> None:
    d = diagnose(format_issues=3)
    assert d.message == ("Tool call format errors detected (3 times) - Model unable to use correct <tool_call> format")
    assert category(d) == "tool_call_format_errors"
    assert category(diagnose(parse_issues=["unclosed <tool_call>"])) == "tool_call_format_errors"


def test_no_tool_calls_and_out_of_turns_is_max_turns() -> None:
    d = diagnose()
    assert d.message == "Max turns reached (10) with no tool calls"
    assert category(d) == "max_turns_errors"


def test_a_tool_returned_timeout_is_not_a_timeout_error() -> None:
    attempts = [ok(READER), *(failed(PARSER, "TIMEOUT", "Operation timed out (after 37 seconds)") for _ in range(5))]
    d = diagnose(attempts, stop=STOP_FAILURE_STREAK, turns=6)
    assert d.message == f"TIMEOUT: Operation timed out (after 37 seconds) (tool: {PARSER})"
    assert category(d) == "other_errors"


def test_timeout_is_not_a_model_error_category() -> None:
    # §4.6 lists timeout_errors, but a model's request or episode timeout is an infrastructure outcome here (never
    # classified, re-run); the category is not among the model's, so no rule and no judge can assign it.
    assert INFRASTRUCTURE_CATEGORY == "timeout_errors" and INFRASTRUCTURE_CATEGORY not in ERROR_CATEGORIES
    assert len(ERROR_CATEGORIES) == 7
    d = Diagnosis((READER,), (), (), 0, 0, 1, 10, False, False, message="Test timeout after 600 seconds")
    assert category(d) == "other_errors"
    assert f"error_{INFRASTRUCTURE_CATEGORY}" not in {m.name for m in WORKFLOW_METRICS}


def test_wrong_tools_instead_of_required_is_selection() -> None:
    d = diagnose([ok(READER), ok("utility_logger"), ok("network_fetcher")], stop=STOP_LOOP, turns=3)
    assert d.message == (
        f"Tool selection error: wrong tools used (utility_logger, network_fetcher) instead of required tools "
        f"({PARSER}, {WRITER})"
    )
    assert category(d) == "tool_selection_errors"


def test_out_of_order_first_successes_is_sequence() -> None:
    d = diagnose([ok(PARSER), ok(READER), ok(WRITER)], stop=STOP_LOOP, turns=3)
    assert d.message == "Sequence order error: tools executed in wrong order"
    assert category(d) == "sequence_order_errors"


def test_required_tool_failing_for_missing_input_before_its_predecessor_is_sequence() -> None:
    attempts = [failed(WRITER, "FILE_NOT_FOUND", "Input file not found (path: /data/input.json)"), ok(READER)]
    d = diagnose(attempts, stop=STOP_LOOP, turns=2)
    assert d.message is not None and d.message.startswith(f"Sequence order error: {WRITER} executed before {READER}")
    assert category(d) == "sequence_order_errors"


def test_unrecovered_failure_with_unmet_dependency_is_dependency() -> None:
    attempts = [ok(READER), ok(PARSER), failed(WRITER, "OPERATION_FAILED", "Operation failed", unmet=("x",))]
    assert category(diagnose(attempts, stop=STOP_LOOP, turns=3)) == "dependency_errors"


def test_unrecovered_invalid_input_is_parameter() -> None:
    attempts = [ok(READER), ok(PARSER), failed(WRITER, "INVALID_INPUT", "Invalid input (parameter: data)")]
    d = diagnose(attempts, stop=STOP_LOOP, turns=3)
    assert d.message == f"INVALID_INPUT: Invalid input (parameter: data) (tool: {WRITER})"
    assert category(d) == "parameter_config_errors"


def test_recovered_invalid_input_is_not_blamed() -> None:
    attempts = [ok(READER), failed(PARSER, "INVALID_INPUT", "Invalid input"), ok(PARSER)]
    assert category(diagnose(attempts, stop=STOP_MAX_TURNS)) == "max_turns_errors"


def test_incomplete_run_out_of_turns_is_max_turns_and_early_stop_is_other() -> None:
    attempts = [ok(READER), ok(PARSER)]
    d = diagnose(attempts)
    assert d.message == f"Required tools not completed: {WRITER} - Task partially incomplete"
    assert category(d) == "max_turns_errors"
    assert category(diagnose(attempts, stop=STOP_LOOP, turns=2)) == "other_errors"


class JudgeChat:
    """A scripted judge model."""

    def __init__(self, reply: str | BaseException) -> None:
        self.reply = reply
        self.seen: list[list[Message]] = []

    async def __call__(self, request: Request) -> Completion:
        messages, _tools = wire(request)
        self.seen.append(list(messages))
        if isinstance(self.reply, BaseException):
            raise self.reply
        return Completion(self.reply)


def judge(reply: str | BaseException, classifier: str = "llm") -> tuple[ErrorVerdict, JudgeChat]:
    chat = JudgeChat(reply)
    d = diagnose([ok(READER), ok(PARSER)])
    return asyncio.run(classify(d, classifier, chat, "TRANSCRIPT TEXT")), chat


def test_judge_verdict_is_used_when_it_parses() -> None:
    reply = (
        'Here you go:\n```json\n{"error_type": "Tool selection", "reasoning": "used logger", "confidence": 0.8}\n```'
    )
    verdict, chat = judge(reply)
    assert (verdict.category, verdict.source, verdict.reasoning, verdict.confidence) == (
        "tool_selection_errors", "llm", "used logger", 0.8
    )  # fmt: skip
    system, user = chat.seen[0]
    assert "timeout_errors" not in system["content"] and "there is no timeout category" in system["content"]
    assert user["content"] == "TRANSCRIPT TEXT"


@pytest.mark.parametrize(
    ("reply", "issue"),
    [
        ("I think it is a selection problem.", "judge reply not parseable"),
        ('{"error_type": "cosmic rays"}', "judge reply not parseable"),
        (InfraFailure("auth", "bad key"), "judge infrastructure failure: auth"),
        ('{"error_type": "timeout_errors", "reasoning": "TIMEOUT returned"}', "judge chose timeout_errors, which is"),
        ('{"error_type": "Timeout_Errors"}', "judge chose timeout_errors"),
    ],
)
def test_judge_falls_back_to_rules(reply: str | BaseException, issue: str) -> None:
    verdict, _ = judge(reply)
    assert (verdict.category, verdict.source) == ("max_turns_errors", "rules")
    assert verdict.judge_issue is not None and verdict.judge_issue.startswith(issue)


def test_rules_classifier_never_asks_the_judge() -> None:
    verdict, chat = judge('{"error_type": "other_errors"}', classifier="rules")
    assert verdict.source == "rules" and chat.seen == []
    no_judge = asyncio.run(classify(diagnose(), "llm", None, "T"))
    assert no_judge.source == "rules"
    with pytest.raises(ValueError, match="classifier must be one of rules, llm"):
        asyncio.run(classify(diagnose(), "ai", None, "T"))


def test_category_normalisation_and_reply_parsing() -> None:
    assert normalise_category("sequence_order_errors") == "sequence_order_errors"
    assert normalise_category("Parameter-Config") == "parameter_config_errors"
    assert normalise_category("format") == "tool_call_format_errors"
    assert normalise_category("errors") is None  # ambiguous
    assert parse_judge_reply('{"x": 1} {"error_type": "dependency", "confidence": "high"}') == (
        "dependency_errors", "", None
    )  # fmt: skip
    assert parse_judge_reply('{"error_type": "other", "confidence": 7}') == ("other_errors", "", 1.0)
