"""The `catalog` naming policy: every spelling of a model resolves to its canonical base model.

Resolution order: an exact declared spelling (base name, alias, deployment name); the same ignoring case; a known
spelling followed by a deployment suffix `-N`. API calls never go through this: lanes carry exact deployment names.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from fleetbench.errors import ConfigError, UnknownNameError, choices_text
from fleetbench.interfaces import NamingPolicy, option
from fleetbench.types import Catalog

UNKNOWN_RULES = ("error", "passthrough")


@dataclasses.dataclass
class CatalogNamingOptions:
    """`unknown`: what an undeclared spelling does (`error` or `passthrough`); `suffix_pattern`: deployment suffix."""

    unknown: str = option("error", affects_result=False)
    suffix_pattern: str = option(r"-(\d{1,2})$", affects_result=False)

    def __post_init__(self) -> None:
        if self.unknown not in UNKNOWN_RULES:
            raise ValueError(f"unknown: {self.unknown!r} is not valid; choices: {choices_text(UNKNOWN_RULES)}")
        try:
            re.compile(self.suffix_pattern)
        except re.error as exc:
            raise ValueError(f"suffix_pattern: not a regular expression ({exc})") from None


class CatalogNaming(NamingPolicy):
    """Resolves spellings from the catalog's base names, aliases and deployment names."""

    Options = CatalogNamingOptions

    def __init__(self, options: CatalogNamingOptions, *, catalog: Catalog) -> None:
        self._options = options
        self._catalog = catalog
        self._suffix = re.compile(options.suffix_pattern)
        self._declared: dict[str, tuple[str, str]] = {}
        self._folded: dict[str, tuple[str, str]] = {}
        for model in catalog.models:
            self._claim(model.name, model.name, "base name")
        for model in catalog.models:
            for deployment in model.deployment_names:
                self._claim(deployment, model.name, "deployment")
            for alias in model.aliases:
                self._claim(alias, model.name, "alias")

    def _claim(self, spelling: str, base: str, how: str) -> None:
        folded = spelling.casefold()
        previous = self._folded.get(folded)
        if previous is not None and previous[0] != base:
            other_base, other_how = previous
            raise ConfigError(
                f"models: {spelling!r} ({how} of {base!r}) is also the {other_how} of {other_base!r}; "
                "one spelling may name only one base model"
            )
        self._folded.setdefault(folded, (base, how))
        self._declared.setdefault(spelling, (base, how))

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def base_name(self, spelling: str) -> str:
        resolved = self._resolve(spelling.strip())
        if resolved is not None:
            return resolved[0]
        if self._options.unknown == "passthrough":
            return spelling.strip()
        raise UnknownNameError(f"unknown model {spelling!r}; known base models: {choices_text(self._catalog.names)}")

    def how(self, spelling: str) -> str | None:
        resolved = self._resolve(spelling.strip())
        return None if resolved is None else resolved[1]

    def _resolve(self, spelling: str) -> tuple[str, str] | None:
        if spelling in self._declared:
            return self._declared[spelling]
        folded = self._folded.get(spelling.casefold())
        if folded is not None:
            return folded[0], f"case variant of {folded[1]}"
        match = self._suffix.search(spelling)
        if match:
            stem = self._folded.get(spelling[: match.start()].casefold())
            if stem is not None:
                return stem[0], f"suffix {match.group(0)} of {stem[1]}"
        return None

    def resolutions(self) -> Sequence[tuple[str, str, str]]:
        return [(spelling, base, how) for spelling, (base, how) in self._declared.items()]
