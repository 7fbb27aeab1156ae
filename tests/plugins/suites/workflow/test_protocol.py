"""The text protocol parser, on the kinds of replies the original mis-scored (§3.1, §10 item 9)."""

from __future__ import annotations

import pytest

from fleetbench.types import ToolCall
from fleetbench_plugins.suites.workflow.model import Tool
from fleetbench_plugins.suites.workflow.native import parse_native
from fleetbench_plugins.suites.workflow.protocol import (
    CALL,
    INFO,
    SEARCH,
    NameResolver,
    has_completion_signal,
    looks_like_attempted_call,
    parse_turn,
    select_actions,
)

TOOLS = (
    Tool("file_operations_reader", "file_operations", "reader", "Read a file", aliases=("file_operations_reader_8",)),
    Tool("data_processing_parser", "data_processing", "parser", "Parse data"),
    Tool("data_processing_validator", "data_processing", "validator", "Validate data"),
    Tool("network_validator", "network", "validator", "Validate a response"),
    Tool("file_operations_writer", "file_operations", "writer", "Write a file"),
)
RESOLVER = NameResolver(TOOLS)


def test_unclosed_tool_call_is_a_call_with_a_parse_issue() -> None:
    # qwen2.5's serving stack stripped </tool_call>: 223 of 223 such calls counted as format errors in the original.
    parsed = parse_turn("I will read the input first.\n<tool_call>file_operations_reader", RESOLVER)
    assert [(a.kind, a.tool, a.closed) for a in parsed.actions] == [(CALL, "file_operations_reader", False)]
    assert parsed.issues == ("unclosed <tool_call>",)


def test_unclosed_call_runs_to_the_next_tag_and_ignores_trailing_prose() -> None:
    text = "<tool_call>file_operations_reader\nWaiting for the result.\n<tool_call>data_processing_parser</tool_call>"
    parsed = parse_turn(text, RESOLVER)
    assert [a.tool for a in parsed.actions] == ["file_operations_reader", "data_processing_parser"]
    assert [a.closed for a in parsed.actions] == [False, True]


@pytest.mark.parametrize(
    "body",
    [
        '{"tool": "file_operations_reader", "arguments": {"source": "data/in.json"}}',
        'file_operations_reader {"source": "data/in.json"}',
        '{"name": "file_operations_reader", "parameters": {"source": "data/in.json"}}',
        '{"name": "file_operations_reader", "arguments": "{\\"source\\": \\"data/in.json\\"}"}',
        '{"function": {"name": "file_operations_reader", "arguments": {"source": "data/in.json"}}}',
        '```json\n{"tool": "file_operations_reader", "arguments": {"source": "data/in.json"}}\n```',
        'file_operations_reader({"source": "data/in.json"})',
        '<name>file_operations_reader</name><arguments>{"source": "data/in.json"}</arguments>',
    ],
)
def test_json_arguments_inside_the_call_tag(body: str) -> None:
    parsed = parse_turn(f"<tool_call>{body}</tool_call>", RESOLVER)
    (action,) = parsed.actions
    assert action.tool == "file_operations_reader"
    assert action.arguments == {"source": "data/in.json"}
    assert parsed.issues == ()


def test_unclosed_json_call_with_trailing_text() -> None:
    parsed = parse_turn(
        '<tool_call>\n{"name": "data_processing_parser", "arguments": {}}\nThen I will validate.', RESOLVER
    )
    assert [a.tool for a in parsed.actions] == ["data_processing_parser"]
    assert parsed.issues == ("unclosed <tool_call>",)


def test_broken_json_still_finds_the_name_and_records_the_issue() -> None:
    parsed = parse_turn('<tool_call>{"tool": "data_processing_parser", "arguments": {oops}}</tool_call>', RESOLVER)
    assert [a.tool for a in parsed.actions] == ["data_processing_parser"]
    assert parsed.issues == ("invalid JSON in <tool_call>",)


def test_names_resolve_precisely_by_default() -> None:
    assert RESOLVER.resolve("file_operations_reader") == ("file_operations_reader", "exact")
    assert RESOLVER.resolve("file_operations_reader_8") == ("file_operations_reader", "alias")
    assert RESOLVER.resolve("File_Operations_Reader") == ("file_operations_reader", "case")
    variants = (
        "file-operations-reader", "file operations reader", "fileOperationsReader", "`file.operations.reader`",
        "functions.file_operations_reader", "tools:file_operations_reader", "file_operations_reader()",
        "FILE-OPERATIONS-READER-8",
    )  # fmt: skip
    for variant in variants:
        assert RESOLVER.resolve(variant) == ("file_operations_reader", "variant"), variant
    # Fragments are not tools: the original's substring match turned "validator" or "file" into real tools.
    for fragment in ("validator", "file", "data", "process", "reader", "io", "functions.reader"):
        assert RESOLVER.resolve(fragment) == (None, "unknown"), fragment


def test_substring_matching_is_the_explicit_legacy_option() -> None:
    legacy = NameResolver(TOOLS, substring=True)
    assert legacy.resolve("validator") == ("data_processing_validator", "substring")  # first registry hit
    assert legacy.resolve("call network_validator please") == ("network_validator", "substring")
    assert legacy.resolve("io") == (None, "unknown")  # too short to mean anything
    assert legacy.resolve("file_operations_reader") == ("file_operations_reader", "exact")  # precise rules first


def test_unknown_tool_is_kept_as_an_unresolved_call() -> None:
    (action,) = parse_turn("<tool_call>magic_tool</tool_call>", RESOLVER).actions
    assert (action.kind, action.requested, action.tool, action.match) == (CALL, "magic_tool", None, "unknown")


def test_search_and_call_in_one_message_keep_their_order() -> None:
    # The original let the search win and silently dropped the call.
    text = "<tool_search>read file</tool_search>\n<tool_call>file_operations_reader</tool_call>"
    parsed = parse_turn(text, RESOLVER)
    assert [(a.kind, a.requested) for a in parsed.actions] == [
        (SEARCH, "read file"),
        (CALL, "file_operations_reader"),
    ]
    first = select_actions(parsed.actions, "first")
    assert [a.kind for a in first.execute] == [SEARCH]
    assert [a.kind for a in first.ignored] == [CALL]


def test_several_calls_under_each_policy() -> None:
    text = "".join(f"<tool_call>{t.name}</tool_call>" for t in TOOLS[:3])
    actions = parse_turn(text, RESOLVER).actions
    first = select_actions(actions, "first")
    assert ([a.tool for a in first.execute], len(first.ignored), first.rejected) == (
        ["file_operations_reader"],
        2,
        False,
    )
    every = select_actions(actions, "all")
    assert ([a.tool for a in every.execute], every.ignored, every.rejected) == ([t.name for t in TOOLS[:3]], (), False)
    reject = select_actions(actions, "reject")
    assert (reject.execute, len(reject.ignored), reject.rejected) == ((), 3, True)
    with pytest.raises(ValueError, match="multi_call must be one of first, all, reject"):
        select_actions(actions, "some")


def test_single_action_is_never_rejected() -> None:
    actions = parse_turn("<tool_call>file_operations_reader</tool_call>", RESOLVER).actions
    assert select_actions(actions, "reject").execute == actions


def test_info_and_search_forms() -> None:
    parsed = parse_turn('<tool_info>data_processing_parser</tool_info><tool_search>{"query": "parse json"}', RESOLVER)
    assert [(a.kind, a.requested, a.tool) for a in parsed.actions] == [
        (INFO, "data_processing_parser", "data_processing_parser"),
        (SEARCH, "parse json", None),
    ]
    unclosed = parse_turn("<tool_search>validate records\nI'll pick the best one.", RESOLVER)
    assert [a.requested for a in unclosed.actions] == ["validate records"]


def test_empty_tags_are_issues_not_actions() -> None:
    parsed = parse_turn("<tool_call></tool_call> <tool_search> </tool_search>", RESOLVER)
    assert parsed.actions == ()
    assert parsed.issues == ("empty <tool_call>", "empty <tool_search>")
    stray = parse_turn("file_operations_reader</tool_call>", RESOLVER)
    assert stray.issues == ("closing tag without opening tag",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("TASK_COMPLETED", True),
        ("The Task Is Complete now.", True),
        ("I have finished executing the workflow", True),
        ("task_completed!", True),
        ("The task has been completed successfully", True),
        ("Almost there, one more step.", False),
    ],
)
def test_completion_phrases_case_insensitive(text: str, expected: bool) -> None:
    assert has_completion_signal(text) is expected
    assert parse_turn(text, RESOLVER).completion_signal is expected


def test_malformed_attempt_heuristics() -> None:
    names = [t.name for t in TOOLS]
    assert looks_like_attempted_call("I'll use file_operations_reader now", names)
    assert looks_like_attempted_call("file_operations_reader(source='x')", names)
    assert looks_like_attempted_call("<function_call>reader</function_call>", names)
    assert not looks_like_attempted_call("Let me think about it.", names)


def test_native_calls_map_to_actions() -> None:
    calls = (
        ToolCall("tool_search", '{"query": "read"}', "c1"),
        ToolCall("tool_info", '{"tool_name": "file_operations_reader"}', "c2"),
        ToolCall("file_operations_reader", '{"source": "a.json"}', "c3"),
        ToolCall("data_processing_parser", "not json", "c4"),
    )
    parsed = parse_native(calls, "", RESOLVER)
    assert [(a.kind, a.requested, a.tool, a.call_id) for a in parsed.actions] == [
        (SEARCH, "read", None, "c1"),
        (INFO, "file_operations_reader", "file_operations_reader", "c2"),
        (CALL, "file_operations_reader", "file_operations_reader", "c3"),
        (CALL, "data_processing_parser", "data_processing_parser", "c4"),
    ]
    assert parsed.actions[2].arguments == {"source": "a.json"}
    assert parsed.issues == ("arguments of <tool_call> are not a JSON object",)


# -- text the model did not mean as an action -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Example:\n```\n<tool_call>file_operations_writer</tool_call>\n```\n", "code block"),
        ("Example:\n~~~xml\n<tool_call>file_operations_writer</tool_call>\n~~~\n", "code block"),
        ("Unclosed fence:\n```\n<tool_call>file_operations_writer</tool_call>", "code block"),
        ("You could write `<tool_call>file_operations_writer</tool_call>` here.", "inline code"),
        ("<think>Maybe <tool_call>file_operations_writer</tool_call> first?</think>", "<think> block"),
        ("<thinking>\n<tool_call>file_operations_writer</tool_call>\n", "<think> block"),  # never closed
        ("Stack stripped the opening: <tool_call>file_operations_writer</tool_call></think>", "<think> block"),
        ("> <tool_call>file_operations_writer</tool_call>", "quotation"),
        ('The prompt says "<tool_call>file_operations_writer</tool_call>" is the syntax.', "quotation"),
        ("The prompt says “<tool_call>file_operations_writer</tool_call>” is the syntax.", "quotation"),
    ],
)
def test_tags_in_code_reasoning_and_quotations_are_not_actions(text: str, kind: str) -> None:
    parsed = parse_turn(text, RESOLVER)
    assert parsed.actions == ()
    assert parsed.issues == (f"ignored: <tool_call> inside a {kind}",)
    assert parsed.tags == 1


def test_the_real_action_next_to_an_example_is_kept() -> None:
    text = (
        "<think>I should not call <tool_call>file_operations_writer</tool_call> yet.</think>\n"
        "The syntax is `<tool_call>name</tool_call>`; here goes:\n"
        "<tool_call>file_operations_reader</tool_call>"
    )
    parsed = parse_turn(text, RESOLVER)
    assert [a.tool for a in parsed.actions] == ["file_operations_reader"]
    assert parsed.issues == (
        "ignored: <tool_call> inside a <think> block",
        "ignored: <tool_call> inside a inline code",
    )


def test_a_completion_phrase_inside_reasoning_is_not_a_declaration() -> None:
    assert not parse_turn("<think>Later I will say TASK_COMPLETED.</think> Next step.", RESOLVER).completion_signal
    assert parse_turn("<think>Check.</think> All done: TASK_COMPLETED", RESOLVER).completion_signal


# -- argument and attribute forms -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "file_operations_reader source=data/in.json timeout=30",
        'file_operations_reader source="data/in.json", timeout=30',
        "file_operations_reader(source='data/in.json', timeout=30)",
        'file_operations_reader(source="data/in.json"; timeout=30)',
        'file_operations_reader({"source": "data/in.json", "timeout": 30})',
        'file_operations_reader {"source": "data/in.json", "timeout": 30}',
    ],
)
def test_key_value_and_call_forms(body: str) -> None:
    parsed = parse_turn(f"<tool_call>{body}</tool_call>", RESOLVER)
    (action,) = parsed.actions
    assert (action.tool, action.arguments, parsed.issues) == (
        "file_operations_reader", {"source": "data/in.json", "timeout": 30}, ()
    )  # fmt: skip


def test_key_value_literals() -> None:
    text = '<tool_call>data_processing_parser(strict=True, schema=None, depth=2.5, tags=["a"], o={"k": 1}, raw=[\'a\'])'
    (action,) = parse_turn(text + "</tool_call>", RESOLVER).actions
    # JSON literals and Python's True/False/None are read as values; anything else is the word as written
    assert action.arguments == {
        "strict": True, "schema": None, "depth": 2.5, "tags": ["a"], "o": {"k": 1}, "raw": "['a']"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ('<tool_call name="file_operations_reader">{"source": "data/in.json"}</tool_call>', {"source": "data/in.json"}),
        (
            "<tool_call name='file_operations_reader' arguments='{\"source\": \"data/in.json\"}'/>",
            {"source": "data/in.json"},
        ),
        ('<tool_call name="file_operations_reader">source=data/in.json</tool_call>', {"source": "data/in.json"}),
        ('<tool_call tool="File Operations Reader"></tool_call>', {}),
        (
            '<tool_call arguments=\'{"source": "data/in.json"}\'>file_operations_reader</tool_call>',
            {"source": "data/in.json"},
        ),
    ],
)
def test_the_attribute_form(text: str, arguments: dict[str, object]) -> None:
    parsed = parse_turn(text, RESOLVER)
    (action,) = parsed.actions
    assert (action.kind, action.tool, action.arguments, action.closed, parsed.issues) == (
        CALL, "file_operations_reader", arguments, True, ()
    )  # fmt: skip


def test_attribute_forms_of_search_and_info() -> None:
    parsed = parse_turn('<tool_search query="read csv"/> <tool_info name="data_processing_parser"/>', RESOLVER)
    assert [(a.kind, a.requested, a.tool) for a in parsed.actions] == [
        (SEARCH, "read csv", None),
        (INFO, "data_processing_parser", "data_processing_parser"),
    ]


@pytest.mark.parametrize(
    ("text", "issue"),
    [
        (
            "<tool_call>file_operations_reader to read the input</tool_call>",
            "unreadable arguments in <tool_call> dropped: 'to read the input'",
        ),
        (
            "<tool_call>file_operations_reader source=a.json and then stop</tool_call>",
            "unreadable arguments in <tool_call> dropped: 'and then stop'",
        ),
        (
            '<tool_call>{"tool": "file_operations_reader"} and more</tool_call>',
            "text after the JSON in <tool_call> dropped: 'and more'",
        ),
        (
            '<tool_call name="file_operations_reader" mode="fast"></tool_call>',
            "unknown attribute 'mode' of <tool_call> dropped",
        ),
        (
            "<tool_call name='file_operations_reader' arguments='nope'/>",
            "unreadable arguments in <tool_call> dropped: 'nope'",
        ),
        ("<tool_info>file_operations_reader source=a.json</tool_info>", "arguments of <tool_info> ignored"),
        ("<tool_call>file_operations_reader {broken</tool_call>", "invalid JSON arguments in <tool_call>"),
        ("<tool_call>file_operations_reader please", "unreadable arguments in <tool_call> dropped: 'please'"),
    ],
)
def test_whatever_is_dropped_is_recorded(text: str, issue: str) -> None:
    parsed = parse_turn(text, RESOLVER)
    assert [a.tool for a in parsed.actions] == ["file_operations_reader"]
    assert issue in parsed.issues


def test_prose_after_an_unclosed_call_is_not_an_argument() -> None:
    parsed = parse_turn("<tool_call>file_operations_reader source=a.json\nThen I will parse it.", RESOLVER)
    assert parsed.actions[0].arguments == {"source": "a.json"}
    assert parsed.issues == ("unclosed <tool_call>",)


def test_native_text_tags_next_to_function_calls_are_recorded() -> None:
    calls = (ToolCall("file_operations_reader", "{}", "c1"),)
    parsed = parse_native(calls, "Also <tool_call>file_operations_writer</tool_call>", RESOLVER)
    assert [a.tool for a in parsed.actions] == ["file_operations_reader"]
    assert parsed.issues == ("1 action tag(s) in the text ignored next to function calls",)
