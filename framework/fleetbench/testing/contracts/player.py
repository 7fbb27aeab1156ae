"""The simulated-player kit: what every `SimulatedPlayer` must do, as tests an author inherits.

A player speaks one suite's protocol, so the kit plays that suite's own episodes through it, with every profile the
player knows. Subclass `PlayerContract` (as `TestMyPlayer`) and define `player` and `suite`::

    class TestCapitalsPlayer(PlayerContract):
        @pytest.fixture
        def player(self) -> SimulatedPlayer:
            return CapitalsPlayer(NoOptions())

        @pytest.fixture
        def suite(self) -> Suite:
            return CapitalsSuite(CapitalsOptions())
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import random
from collections.abc import Mapping
from typing import Any

import pytest

from fleetbench.contracts import contract_problem
from fleetbench.interfaces import EpisodeContext, SimulatedPlayer, Suite
from fleetbench.testing.contracts.suite import KIT_MODEL
from fleetbench.testing.units import plan_units
from fleetbench.types import Completion, Episode, Outcome, Request, Unit

PLAYERS_GROUP = "fleetbench.simulators"


def conversation_rng(profile: str, request: Request) -> random.Random:
    """A generator fixed by the profile and the conversation (as the simulated provider seeds one per request)."""
    text = "\x1e".join(f"{m.role.value}:{m.content}" for m in request.messages)
    return random.Random(hashlib.blake2b(f"{profile}\x1f{text}".encode(), digest_size=8).digest())


class PlayerChat:
    """A `Chat` answered by the player, as the simulated provider would: one generator per conversation point."""

    def __init__(self, player: SimulatedPlayer, profile: str, params: Mapping[str, Any]) -> None:
        self._player, self._profile, self._params = player, profile, params
        self.requests: list[Request] = []

    async def __call__(self, request: Request) -> Completion:
        self.requests.append(request)
        rng = conversation_rng(self._profile, request)
        return self._player.respond(request, self._profile, self._params, rng)


def played_episode(suite: Suite, unit: Unit, chat: PlayerChat) -> Episode:
    """Run one unit of the suite with the player answering (and judging, when the suite asks for a judge)."""
    context = EpisodeContext(KIT_MODEL, "Kit-Model#key0", "Kit-Model", chat if suite.needs_judge else None)
    return asyncio.run(suite.run_episode(unit, chat, context))


class PlayerContract:
    """Inherited tests proving a player answers its suite's requests, deterministically, with every profile."""

    @pytest.fixture
    def player(self) -> SimulatedPlayer:
        """The player under test. Override this."""
        raise NotImplementedError("define the `player` fixture in your PlayerContract subclass")

    @pytest.fixture
    def suite(self) -> Suite:
        """The suite whose protocol the player speaks. Override this."""
        raise NotImplementedError("define the `suite` fixture in your PlayerContract subclass")

    @pytest.fixture
    def params(self) -> Mapping[str, Any]:
        """The simulated model's params the player receives (beyond its profile)."""
        return {}

    @pytest.fixture
    def units(self, suite: Suite) -> list[Unit]:
        """Two units of each of the suite's first three cells."""
        cells = [u.cell for u in plan_units(suite, suite.options, KIT_MODEL.name, 1)][:3]
        return [u for u in plan_units(suite, suite.options, KIT_MODEL.name, 2) if u.cell in cells]

    def test_passes_the_load_time_contract_check(self, player: SimulatedPlayer) -> None:
        assert contract_problem(SimulatedPlayer, type(player)) is None
        assert player.profiles and all(isinstance(p, str) and p for p in player.profiles)

    def test_it_is_registered_under_its_suites_protocol(self, player: SimulatedPlayer, suite: Suite) -> None:
        targets = {ep.name: ep for ep in importlib.metadata.entry_points(group=PLAYERS_GROUP)}
        assert suite.name in targets, f"register the player as `{suite.name}` under {PLAYERS_GROUP}"
        assert targets[suite.name].load() is type(player)

    def test_it_plays_its_suites_episodes_with_every_profile(
        self, player: SimulatedPlayer, suite: Suite, params: Mapping[str, Any], units: list[Unit]
    ) -> None:
        for profile in player.profiles:
            for unit in units:
                chat = PlayerChat(player, profile, {"profile": profile, **params})
                result = played_episode(suite, unit, chat)
                assert result.outcome is not Outcome.INFRA_ERROR, f"{profile}: {result}"
                assert chat.requests and all(r.protocol == suite.name for r in chat.requests)

    def test_it_answers_deterministically(
        self, player: SimulatedPlayer, suite: Suite, params: Mapping[str, Any], units: list[Unit]
    ) -> None:
        for profile in player.profiles:
            first = played_episode(suite, units[0], PlayerChat(player, profile, {"profile": profile, **params}))
            again = played_episode(suite, units[0], PlayerChat(player, profile, {"profile": profile, **params}))
            assert first == again, profile

    def test_its_replies_are_completions(
        self, player: SimulatedPlayer, suite: Suite, params: Mapping[str, Any], units: list[Unit]
    ) -> None:
        profile = player.profiles[0]
        chat = PlayerChat(player, profile, {"profile": profile, **params})
        played_episode(suite, units[0], chat)
        for request in chat.requests:
            reply = player.respond(request, profile, {"profile": profile, **params}, random.Random(0))
            assert isinstance(reply, Completion)
            assert reply.text.strip() or reply.tool_calls
            assert reply.prompt_tokens >= 0 and reply.completion_tokens >= 0
