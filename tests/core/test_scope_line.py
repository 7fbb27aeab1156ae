"""The scope line under a report names what makes its units comparable, without printing a paragraph."""

from __future__ import annotations

from fleetbench.report.scope import describe_suite_scope

SHARED = "You are a careful assistant. Think about the question step by step, "


def _line(prompt: str) -> str:
    options = {"scorer": "exact", "system_prompt": prompt}
    return describe_suite_scope({"suite": "jsonl", "version": "1", "options": options})


def test_short_option_values_are_shown_whole() -> None:
    assert _line("Be brief.") == "suite jsonl 1, options scorer=exact system_prompt=Be brief."


def test_long_values_show_their_start_and_a_digest_that_tells_them_apart() -> None:
    first, second = _line(SHARED + "then answer."), _line(SHARED + "then answer with the number only.")
    assert first != second
    for line, prompt in ((first, SHARED + "then answer."), (second, SHARED + "then answer with the number only.")):
        assert prompt not in line
        assert f"system_prompt={SHARED[:40]}… (sha256 " in line
        assert len(line) < 120


def test_a_value_with_newlines_stays_on_one_line() -> None:
    short, long = _line("One.\nTwo."), _line("Line one.\nLine two.\nLine three of a long prompt that goes on and on.")
    assert short == "suite jsonl 1, options scorer=exact system_prompt=One.\\nTwo."
    assert "\n" not in long and long.startswith(
        "suite jsonl 1, options scorer=exact system_prompt=Line one.\\nLine two."
    )
