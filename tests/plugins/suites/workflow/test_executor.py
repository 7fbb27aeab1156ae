"""The episode loop, driven by scripted fake chats (a test double for the *model*; every component is real)."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from fleetbench.errors import InfraFailure
from fleetbench.testing.requests import wire
from fleetbench.types import Completion, Message, Request, ToolCall
from fleetbench_plugins.suites.workflow.executor import (
    STOP_COMPLETED,
    STOP_EXECUTION_LIMIT,
    STOP_FAILURE_STREAK,
    STOP_INFRA,
    STOP_LOOP,
    STOP_MAX_TURNS,
    ExecutorConfig,
    WorkflowExecutor,
)
from fleetbench_plugins.suites.workflow.model import Task, Tool, ToolError
from fleetbench_plugins.suites.workflow.registry import ToolRegistry
from fleetbench_plugins.suites.workflow.simulator import ToolSimulator
from fleetbench_plugins.suites.workflow.transcript import EpisodeLog

ERRORS = (ToolError("INVALID_INPUT", "Invalid input"), ToolError("TIMEOUT", "Operation timed out"))
REGISTRY = ToolRegistry(
    [
        Tool("file_operations_reader", "file_operations", "reader", "Read a file", errors=ERRORS,
             usage_keywords=("read", "load")),
        Tool("data_processing_parser", "data_processing", "parser", "Parse raw data", errors=ERRORS),
        Tool("data_processing_transformer", "data_processing", "transformer", "Transform data", errors=ERRORS,
             dependencies=("data_processing_parser",)),
        Tool("file_operations_writer", "file_operations", "writer", "Write a file", errors=ERRORS),
        Tool("utility_logger", "utility", "logger", "Log a message", errors=ERRORS),
    ]
)  # fmt: skip
TASK = Task("t-1", "basic_task", "Read, transform and write", ("file_operations_reader", "file_operations_writer"))
READER, WRITER = "<tool_call>file_operations_reader</tool_call>", "<tool_call>file_operations_writer</tool_call>"


class ScriptedRandom(random.Random):
    """Success draws are always `value` (0.0: every execution succeeds, 0.99: every execution fails)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value

    def getrandbits(self, k: int) -> int:
        return super().getrandbits(k)


class ScriptedChat:
    """Returns pre-written replies in order; an exception in the script is raised instead of replying."""

    def __init__(self, script: Sequence[Completion | str | BaseException]) -> None:
        self.script = list(script)
        self.requests: list[tuple[list[Message], list[Mapping[str, Any]] | None]] = []

    async def __call__(self, request: Request) -> Completion:
        messages, tools = wire(request)
        self.requests.append((json.loads(json.dumps(list(messages))), None if tools is None else list(tools)))
        if not self.script:
            raise AssertionError("the model script ran out of replies")
        reply = self.script.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return Completion(reply, prompt_tokens=10, completion_tokens=5) if isinstance(reply, str) else reply


def run(
    script: Sequence[Completion | str | BaseException],
    *,
    value: float = 0.0,
    native: bool = False,
    task: Task = TASK,
    **config: Any,
) -> tuple[EpisodeLog, ScriptedChat, WorkflowExecutor]:
    import asyncio

    chat = ScriptedChat(script)
    simulator = ToolSimulator(REGISTRY, 0.8, ScriptedRandom(value))
    executor = WorkflowExecutor(REGISTRY, task, "SYSTEM", "USER", simulator, ExecutorConfig(**config), native=native)
    return asyncio.run(executor.run(chat)), chat, executor


def last_user(chat: ScriptedChat, request: int) -> str:
    return str(chat.requests[request][0][-1]["content"])


def test_search_calls_and_completion() -> None:
    log, chat, _ = run(["<tool_search>read a file</tool_search>", READER, f"{WRITER}\nTASK_COMPLETED"])
    assert log.stop_reason == STOP_COMPLETED and log.completed
    assert log.executed_tools == ("file_operations_reader", "file_operations_writer")
    assert [t.feedback_kind for t in log.turns] == ["search", "call", "call"]
    assert log.searches[0]["query"] == "read a file" and "file_operations_reader" in log.searches[0]["results"]
    assert "Search results" in last_user(chat, 1)
    assert last_user(chat, 2).startswith("✅ file_operations_reader executed successfully.\nOutput: {")
    assert (log.prompt_tokens, log.completion_tokens) == (30, 15)


def test_completion_signal_before_the_work_is_recorded_but_does_not_complete() -> None:
    log, chat, _ = run(["TASK_COMPLETED", READER, WRITER, "All steps completed."])
    assert log.completion_signal_turns == [1, 4]
    assert log.stop_reason == STOP_COMPLETED and len(log.turns) == 4
    assert log.nudges == 1 and log.format_error_count == 0
    assert "No tool was executed" in last_user(chat, 1)


def test_unclosed_call_is_executed() -> None:
    log, _, _ = run(["<tool_call>file_operations_reader", "<tool_call>file_operations_writer\nTASK_COMPLETED"])
    assert log.completed and log.executed_tools == ("file_operations_reader", "file_operations_writer")
    assert log.parse_issue_count == 2 and log.format_error_count == 0


def test_multi_call_first_executes_one_and_says_so() -> None:
    log, chat, _ = run([READER + WRITER, "Okay."], max_turns=2)
    assert log.executed_tools == ("file_operations_reader",)
    assert "1 further action(s) in your response were ignored" in last_user(chat, 1)
    assert log.turns[0].feedback[1].startswith("Not executed")


def test_multi_call_all_executes_every_call() -> None:
    log, _, _ = run([READER + WRITER + " TASK_COMPLETED"], multi_call="all")
    assert log.executed_tools == ("file_operations_reader", "file_operations_writer") and log.completed


def test_multi_call_reject_executes_nothing() -> None:
    log, chat, _ = run([READER + WRITER, READER], multi_call="reject", max_turns=2)
    assert log.executed_tools == ("file_operations_reader",)
    assert log.turns[0].feedback_kind == "rejected"
    assert "2 actions in one response (rejected)" in log.turns[0].parse_issues
    assert "Send exactly ONE action per response" in last_user(chat, 1)


def test_search_no_longer_swallows_a_call_silently() -> None:
    text = "<tool_search>write</tool_search>" + READER
    first, _, _ = run([text], max_turns=1)
    assert first.attempts == [] and first.turns[0].feedback[-1].startswith("Note: 1 further action")
    every, _, _ = run([text], max_turns=1, multi_call="all")
    assert every.executed_tools == ("file_operations_reader",) and len(every.searches) == 1


def test_long_reply_without_action_gets_no_action_feedback_without_leaking_tools() -> None:
    essay = "I think the best approach is to carefully consider the data before doing anything at all."
    log, chat, _ = run([essay, READER], max_turns=2)
    assert log.format_issues == [{"turn": 1, "kind": "no_action"}] and log.format_error_count == 1
    assert "NO ACTION DETECTED" in last_user(chat, 1) and "file_operations_reader" not in last_user(chat, 1)
    _, chat2, _ = run([essay, READER], max_turns=2, help_reveals_required_tools=True)
    assert "<tool_call>file_operations_reader</tool_call>" in last_user(chat2, 1)


def test_short_reply_gets_a_nudge_not_the_identical_request() -> None:
    log, chat, _ = run(["Okay.", READER], max_turns=2)
    assert chat.requests[1][0] != chat.requests[0][0]
    assert chat.requests[1][0][-1]["role"] == "user" and log.nudges == 1
    assert log.format_error_count == 0


def test_malformed_attempt_gets_format_help() -> None:
    log, chat, _ = run([READER, "use file_operations_writer", WRITER], max_turns=3)
    assert log.format_issues == [{"turn": 2, "kind": "format_help"}]
    assert "TOOL CALL FORMAT HELP" in last_user(chat, 2)
    assert "you need to use these tools" not in last_user(chat, 2)
    _, chat2, _ = run([READER, "use file_operations_writer", WRITER], max_turns=3, help_reveals_required_tools=True)
    assert "For this task, you need to use these tools: file_operations_reader, file_operations_writer" in last_user(
        chat2, 2
    )


def test_parse_issue_without_action_gets_format_help_from_turn_one() -> None:
    log, _, _ = run(["<tool_call></tool_call>"], max_turns=1)
    assert log.format_issues == [{"turn": 1, "kind": "format_help"}]


@pytest.mark.parametrize(
    "reply",
    ["```\n<tool_call>file_operations_reader</tool_call>\n```", "<think><tool_call>file_operations_reader</tool_call>"],
)
def test_a_call_the_model_did_not_mean_is_not_executed_and_the_help_says_why(reply: str) -> None:
    log, chat, _ = run([reply] + ["Done."] * 9)
    assert log.attempts == [] and log.turns[0].parse_issues[0].startswith("ignored: <tool_call> inside a ")
    assert log.turns[0].feedback_kind in ("no_action", "format_help")
    assert "not executed" in last_user(chat, 1) and log.format_error_count >= 1


def test_unknown_tool_fails_with_tool_not_found() -> None:
    log, _, _ = run(["<tool_call>quantum_teleporter</tool_call>"], max_turns=1)
    (attempt,) = log.attempts
    assert (attempt.tool, attempt.success, attempt.known, attempt.error_code) == (
        "quantum_teleporter", False, False, "TOOL_NOT_FOUND"
    )  # fmt: skip


def test_stop_after_five_failures_in_a_row() -> None:
    log, _, _ = run([READER] * 10, value=0.99)
    assert log.stop_reason == STOP_FAILURE_STREAK and len(log.turns) == 5
    assert log.attempts[0].error is not None and log.attempts[0].error.startswith(("INVALID_INPUT: ", "TIMEOUT: "))


def test_stop_on_a_loop_of_one_tool() -> None:
    log, _, _ = run(["<tool_call>utility_logger</tool_call>"] * 10)
    assert log.stop_reason == STOP_LOOP and len(log.turns) == 5


def test_stop_after_more_than_fifteen_successes() -> None:
    calls = "".join(f"<tool_call>{name}</tool_call>" for name in ("utility_logger", "data_processing_parser") * 8)
    log, _, _ = run([calls], multi_call="all")
    assert log.stop_reason == STOP_EXECUTION_LIMIT and len(log.executed_tools) == 16


def test_max_turns() -> None:
    log, _, _ = run([READER] * 3, max_turns=3, value=0.0, loop_window=99)
    assert log.stop_reason == STOP_MAX_TURNS and len(log.turns) == 3 and not log.completed


def test_infra_failure_ends_the_episode_and_keeps_the_partial_log() -> None:
    log, chat, _ = run([READER, InfraFailure("timeout", "request took 150 s"), WRITER])
    assert log.stop_reason == STOP_INFRA and log.infra_status == "timeout"
    assert log.api_issues == [{"turn": 2, "status": "timeout", "detail": "request took 150 s"}]
    assert len(log.turns) == 1 and log.executed_tools == ("file_operations_reader",)
    assert len(chat.requests) == 2


def native(*calls: ToolCall, text: str = "") -> Completion:
    return Completion(text, tool_calls=calls, prompt_tokens=3, completion_tokens=2)


def test_native_round_trip() -> None:
    script = [
        native(ToolCall("tool_search", '{"query": "read file"}', "s1")),
        native(ToolCall("tool_info", '{"tool_name": "file_operations_reader"}', "")),
        native(ToolCall("file_operations_reader", '{"source": "data/input.json"}', "c1"), ToolCall("utility_logger")),
        native(ToolCall("file_operations_writer", "{}", "c3"), text="TASK_COMPLETED"),
    ]
    log, chat, executor = run(script, native=True, native_tools="all")
    assert log.completed and log.executed_tools == ("file_operations_reader", "file_operations_writer")
    for _, tools in chat.requests:  # `all`: every registry tool on every request
        assert tools is not None
        names = [t["function"]["name"] for t in tools]
        assert names == [*REGISTRY.names, "tool_search", "tool_info"]
    assert log.discovered_tools == []
    messages = executor.messages
    assistant = messages[2]
    assert assistant["role"] == "assistant" and assistant["content"] is None
    assert assistant["tool_calls"] == [
        {"id": "s1", "type": "function", "function": {"name": "tool_search", "arguments": '{"query": "read file"}'}}
    ]
    assert messages[3]["role"] == "tool" and messages[3]["tool_call_id"] == "s1"
    assert "Search results" in messages[3]["content"]
    assert messages[4]["tool_calls"][0]["id"] == "call_2_0"  # a missing id gets a deterministic one
    assert messages[5] == {
        "role": "tool",
        "tool_call_id": "call_2_0",
        "content": REGISTRY.describe("file_operations_reader"),
    }
    # two calls under `first`: both get a tool reply (OpenAI requires one per id), the second one says it was ignored
    replies = messages[7:9]
    assert [m["tool_call_id"] for m in replies] == ["c1", "call_3_1"]
    assert replies[0]["content"].startswith("✅ file_operations_reader executed successfully.")
    assert replies[1]["content"].startswith("Not executed")
    assert log.attempts[0].arguments == {"source": "data/input.json"}


def _offered(chat: ScriptedChat, request: int) -> list[str]:
    tools = chat.requests[request][1]
    assert tools is not None
    return [t["function"]["name"] for t in tools]


def test_native_discovered_offers_only_the_tools_found_so_far() -> None:
    """As in text mode, a tool must be found before it is listed: the helpers, plus the tools named in what the model
    has read (the prompt, search results, tool details, feedback), in registry order."""
    import asyncio

    script = [
        native(ToolCall("tool_search", '{"query": "transform"}', "s1")),
        native(ToolCall("tool_info", '{"tool_name": "file_operations_writer"}', "i1")),
        native(ToolCall("utility_logger", "{}", "c1")),  # named correctly but never offered: it still runs
        native(text="TASK_COMPLETED"),
    ]
    chat = ScriptedChat(script)
    simulator = ToolSimulator(REGISTRY, 0.8, ScriptedRandom(0.0))
    user = "Read the input with file_operations_reader, then write it."
    executor = WorkflowExecutor(REGISTRY, TASK, "SYSTEM", user, simulator, ExecutorConfig(max_turns=4), native=True)
    log = asyncio.run(executor.run(chat))
    assert _offered(chat, 0) == ["file_operations_reader", "tool_search", "tool_info"]
    found = REGISTRY.search("transform", k=5)
    read = REGISTRY.names_in(user + REGISTRY.format_search_results("transform", found))  # results name dependencies too
    assert {t.name for t in found} <= set(read)
    assert _offered(chat, 1) == [*(n for n in REGISTRY.names if n in read), "tool_search", "tool_info"]
    assert "file_operations_writer" in _offered(chat, 2)  # its details were read
    assert "utility_logger" not in _offered(chat, 2)
    assert log.attempts[0].tool == "utility_logger" and log.attempts[0].known
    assert log.discovered_tools[0] == "file_operations_reader" and "file_operations_writer" in log.discovered_tools
    # what the model only wrote itself is not "found"
    assert all(name in REGISTRY.names for name in log.discovered_tools)


def test_native_discovered_starts_with_the_helpers_when_the_prompt_names_no_tool() -> None:
    log, chat, _ = run([native(text="TASK_COMPLETED")] * 10, native=True)
    assert _offered(chat, 0) == ["tool_search", "tool_info"] and log.discovered_tools == []


def test_native_mode_still_reads_text_tags() -> None:
    log, chat, _ = run([READER, f"{WRITER} TASK_COMPLETED"], native=True)
    assert log.completed
    assert chat.requests[1][0][-1]["role"] == "user"


def test_same_script_and_seed_give_identical_logs() -> None:
    script = ["<tool_search>read</tool_search>", READER, "Hmm.", READER, WRITER + " TASK_COMPLETED"] + [READER] * 5

    def once() -> tuple[dict[str, Any], list[Message]]:
        import asyncio

        chat = ScriptedChat(list(script))
        sim = ToolSimulator(REGISTRY, 0.5, random.Random(1234))
        executor = WorkflowExecutor(REGISTRY, TASK, "S", "U", sim)
        log = asyncio.run(executor.run(chat))
        return dataclasses.asdict(log), executor.messages

    assert once() == once()


def test_invalid_config() -> None:
    with pytest.raises(ValueError, match="multi_call must be one of first, all, reject"):
        ExecutorConfig(multi_call="many")
    with pytest.raises(ValueError, match="max_turns"):
        ExecutorConfig(max_turns=0)
    with pytest.raises(ValueError, match="native_tools must be one of discovered, all"):
        ExecutorConfig(native_tools="some")
