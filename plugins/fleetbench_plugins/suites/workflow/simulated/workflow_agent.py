"""The simulated model's side of the workflow protocol: reads the conversation, decides, and replies like a model.

`respond` is stateless and deterministic: everything is rebuilt from `messages` (the prompt, the agent's own earlier
replies and the executor's feedback) and every random choice comes from `rng`, which the provider seeds from the
conversation. Its only outside knowledge is the shipped tool vocabulary, as a pretrained model's would be; a task's
required tools are known only as far as the prompt states them.

Modules: `agent_knowledge` (vocabulary), `agent_task` (reading the prompt), `agent_history` (reading earlier turns),
`agent_policy` (deciding), `agent_render` (wording the reply). Behaviour per profile is described in `profiles`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from fleetbench.types import ChatMessage, Completion, Role, ToolCall, ToolSpec
from fleetbench_plugins.suites.workflow.protocol import INFO_FUNCTION, SEARCH_FUNCTION
from fleetbench_plugins.suites.workflow.simulated.agent_history import read_history
from fleetbench_plugins.suites.workflow.simulated.agent_policy import build_state, decide
from fleetbench_plugins.suites.workflow.simulated.agent_render import render
from fleetbench_plugins.suites.workflow.simulated.agent_task import read_task
from fleetbench_plugins.suites.workflow.simulated.profiles import Profile


def respond(
    messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], profile: Profile, rng: random.Random
) -> Completion:
    """The agent's next reply to a workflow conversation (text tags, or native tool calls when `tools` are given)."""
    user = next((m.content for m in messages if m.role is Role.USER), "")
    native = bool(tools)
    offered = frozenset(tool.name for tool in tools)
    helpers = (SEARCH_FUNCTION in offered, INFO_FUNCTION in offered) if native else (True, True)
    state = build_state(read_task(user), read_history(messages), profile, rng, native, helpers)
    reply = render(decide(state), state, rng)
    calls: tuple[ToolCall, ...] = ()
    if reply.call is not None:
        name, arguments = reply.call
        calls = (ToolCall(name, arguments, f"call_{len(state.history) + 1}"),)
    return Completion(
        text=reply.text,
        tool_calls=calls,
        prompt_tokens=sum(_words(m.content) for m in messages),
        completion_tokens=_words(reply.text) + sum(_words(c.arguments) for c in calls),
        finish_reason="tool_calls" if calls else "stop",
    )


def _words(content: Any) -> int:
    """A rough token count: spaces + 1 (counting is C-speed; splitting long search results is not)."""
    if not content:
        return 0
    text = content if isinstance(content, str) else str(content)
    return text.count(" ") + 1
