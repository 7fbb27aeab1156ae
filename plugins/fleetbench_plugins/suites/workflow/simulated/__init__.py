"""The simulated model's side of the workflow suite: it plays the tool-use protocol as a model would, and judges runs.

Registered as the `workflow` player of the `simulated` provider (entry-point group `fleetbench.simulators`): the
provider hands it every request whose `protocol` is `workflow`, answers (`Purpose.ANSWER`) and judgements
(`Purpose.JUDGE`) alike. It lives next to the suite because it speaks the suite's protocol; the provider never imports
it. Its only outside knowledge is the shipped tool vocabulary, as a pretrained model's would be; a task's required
tools are known only as far as the prompt states them.

Modules: `agent_knowledge` (vocabulary), `agent_task` (reading the prompt), `agent_history` (reading earlier turns),
`agent_policy` (deciding), `agent_render` (wording the reply), `workflow_agent` (one reply), `judge` (a verdict),
`profiles` (how each competence profile behaves).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

from fleetbench.interfaces import SimulatedPlayer
from fleetbench.types import Completion, Purpose, Request, Role
from fleetbench_plugins.suites.workflow.simulated import judge, workflow_agent
from fleetbench_plugins.suites.workflow.simulated.profiles import PROFILES


class WorkflowPlayer(SimulatedPlayer):
    """Plays the workflow protocol (text tags or native function calls) and answers judge requests."""

    profiles: ClassVar[tuple[str, ...]] = tuple(PROFILES)

    def respond(self, request: Request, profile: str, params: Mapping[str, Any], rng: random.Random) -> Completion:
        behaviour = PROFILES[profile]
        if request.purpose is Purpose.JUDGE:
            asked = next((m.content for m in reversed(request.messages) if m.role is Role.USER), "")
            text = judge.verdict(asked, behaviour, rng)
            words = sum(len(m.content.split()) for m in request.messages)
            return Completion(text=text, prompt_tokens=words, completion_tokens=len(text.split()))
        return workflow_agent.respond(request.messages, request.tools, behaviour, rng)
