"""Mutation score per module: mutmut plants small bugs one at a time in the core and in the built-in plugins' logic,
runs the tests that call the mutated function, and counts the bugs no test noticed.

What is mutated and which tests may kill a mutant is configured in pyproject.toml's `[tool.mutmut]`. mutmut names a
mutant after the module path of its file, which must also be its import path, so this script stages the two packages
in a src/ layout under `.mutation/` (ignored by git) and runs mutmut there; mutmut's own results and log stay there.

Run (it takes a while; the README's "Mutation testing" section gives the last figures and how long they took):

    .venv/bin/pip install -q -c constraints.txt -e '.[test,mutation]'
    .venv/bin/python benchmarks/mutation.py              # a fresh run of every mutant
    .venv/bin/python benchmarks/mutation.py --survivors  # re-test only the last run's survivors (after adding tests)
    .venv/bin/python benchmarks/mutation.py --report     # print the last run's table again

It prints one row per mutated module: mutants tried, killed, survived, of those the ones docs/mutation.md explains
(equivalent mutants, each with its reason), timed out (a hang counts as caught), with no covering test, and the share
caught, of all and of those not explained ("net"); then the survivors docs/mutation.md does not explain
(`mutmut show NAME`, run in `.mutation/`, prints a mutant's diff).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".mutation"
PACKAGES = {
    "fleetbench": ROOT / "framework" / "fleetbench",
    "fleetbench_plugins": ROOT / "plugins" / "fleetbench_plugins",
}
EQUIVALENTS = ROOT / "docs" / "mutation.md"
MUTMUT = Path(sys.executable).with_name("mutmut")
CAUGHT = ("killed", "timeout")
COLUMNS = ("killed", "survived", "timeout", "no tests")


def stage(fresh: bool) -> None:
    """Copy the packages (as src/<package>), the tests and pyproject.toml into the staging directory.

    Re-testing survivors copies the tests only: a changed `[tool.mutmut]` (a new test file in the selection) makes
    mutmut discard every result, which needs a fresh run anyway."""
    if fresh:
        shutil.rmtree(STAGE, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis")
    shutil.copytree(ROOT / "tests", STAGE / "tests", dirs_exist_ok=True, ignore=ignore)
    if fresh:
        for name, source in PACKAGES.items():
            shutil.copytree(source, STAGE / "src" / name, ignore=ignore)
        shutil.copy2(ROOT / "pyproject.toml", STAGE / "pyproject.toml")


def mutmut(*args: str, log: Path | None = None) -> str:
    """Run a mutmut command in the staging directory; its output (or, with `log`, nothing: it goes to the file)."""
    if log is None:
        return subprocess.run([str(MUTMUT), *args], cwd=STAGE, check=True, capture_output=True, text=True).stdout
    with log.open("w") as out:
        subprocess.run([str(MUTMUT), *args], cwd=STAGE, check=True, stdout=out, stderr=subprocess.STDOUT)
    return ""


def verdicts() -> dict[str, str]:
    """Every mutant of the last run with its status (killed, survived, timeout, no tests, ...)."""
    found = {}
    for line in mutmut("results", "--all", "true").splitlines():
        name, _, status = line.strip().rpartition(": ")
        if "__mutmut_" in name:
            found[name] = status
    return found


def module_of(mutant: str) -> str:
    """`fleetbench.plan.xǁMissingUnitsǁstream__mutmut_5` → `fleetbench.plan`."""
    parts = mutant.split(".")
    cut = next(i for i, part in enumerate(parts) if part.startswith(("x_", "xǁ")))
    return ".".join(parts[:cut])


def equivalents() -> set[str]:
    """Mutant names that docs/mutation.md explains (each in backquotes)."""
    text = EQUIVALENTS.read_text() if EQUIVALENTS.exists() else ""
    return set(re.findall(r"`([\w.ǁ]+__mutmut_\d+)`", text))


def table(found: dict[str, str]) -> list[str]:
    """The per-module table (markdown), the total last."""
    explained = equivalents()
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for mutant, status in found.items():
        counts = by_module[module_of(mutant)]
        counts["tried"] += 1
        counts[status if status in COLUMNS else "other"] += 1
        counts["explained"] += status == "survived" and mutant in explained
    total: Counter[str] = sum(by_module.values(), Counter())
    head = "| module | tried | killed | survived | explained | timeout | no tests | other | caught | caught, net |"
    lines = [head, "|---|" + "---:|" * 9]
    for module, counts in [*sorted(by_module.items()), ("total", total)]:
        lines.append(_row(module, counts))
    return lines


def _row(module: str, counts: Counter[str]) -> str:
    caught = sum(counts[status] for status in CAUGHT)
    cells = [counts["tried"], counts["killed"], counts["survived"], counts["explained"], counts["timeout"]]
    cells += [counts["no tests"], counts["other"]]
    share = f"{100.0 * caught / counts['tried']:.1f}%" if counts["tried"] else "-"
    real = counts["tried"] - counts["explained"]
    share_real = f"{100.0 * caught / real:.1f}%" if real else "-"
    return f"| {module} | " + " | ".join(str(c) for c in cells) + f" | {share} | {share_real} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()) if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--survivors", action="store_true", help="re-test the last run's survivors only")
    mode.add_argument("--report", action="store_true", help="print the last run's table; run nothing")
    args = parser.parse_args()
    started = time.monotonic()
    if not args.report:
        stage(fresh=not args.survivors)
        retest = [m for m, s in verdicts().items() if s not in CAUGHT] if args.survivors else []
        if args.survivors and not retest:
            print("no survivors to re-test")
        else:
            log = STAGE / "mutmut.log"
            print(f"running mutmut in {STAGE} (log: {log}) ...", flush=True)
            mutmut("run", *retest, log=log)
        print(f"wall time: {time.monotonic() - started:.0f} s")
    found = verdicts()
    print("\n".join(table(found)))
    unexplained = sorted(m for m, s in found.items() if s not in CAUGHT and m not in equivalents())
    print(f"\n{len(unexplained)} not caught and not explained in docs/mutation.md:")
    print("\n".join(f"  {m}: {found[m]}" for m in unexplained))
    return 0


if __name__ == "__main__":
    sys.exit(main())
