"""The `fleetbench` command: run | report | runs | plugins | names | show | serve | drift | export.

`run` goes through Hydra's app entry (so `-m` sweeps and launchers work); every other command composes the same
configuration with Hydra's compose API. Before any job starts, literal secrets are moved out of the overrides, every
configuration of the sweep is composed and validated, and the output directory and every storage are checked, so bad
input fails with one line, a non-zero exit code (2 for configuration), and nothing written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import io
import itertools
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobRuntime
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.text import Text

from fleetbench import interrupts, launched, registry
from fleetbench.cli_help import command_help, overview
from fleetbench.config import NamingSpec, compose_config, resolve_common, resolve_run, translate
from fleetbench.config.compose import (
    CONFIG_NAME,
    compose_normalized,
    hydra_context,
    normalize_overrides,
    without_hydra,
)
from fleetbench.config.schema import ReportConf, StatusConf
from fleetbench.config.secret_overrides import hide_secrets
from fleetbench.config.spec import resolve_plan
from fleetbench.errors import DEADLINE_EXIT, ConfigError, FleetbenchError, Interrupted, UnknownNameError, UserError
from fleetbench.interfaces import NamingPolicy, Storage, Suite
from fleetbench.limits import text_problem
from fleetbench.pipes import reader_gone
from fleetbench.preflight import check_output_dir, check_storages
from fleetbench.progress import make_progress
from fleetbench.signals import quiet_signals
from fleetbench.terminal import PlainTable, for_terminal, printable
from fleetbench.types import ReportFilter

if TYPE_CHECKING:
    from fleetbench.report import Report
    from fleetbench.report.scope import ReportScope
    from fleetbench.runner import RunSummary


class _PipedConsole(Console):
    """A rich console whose broken pipe is the same `BrokenPipeError` as a print's: rich exits 1 on its own, where
    every other command's output piped into a reader that left (`| head`) exits 141 (`fleetbench.pipes`)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def _console(stderr: bool = False) -> Console:
    """Rich output; when piped, wide enough that tables are not squeezed to 80 columns."""
    probe = Console(stderr=stderr)
    return _PipedConsole(stderr=stderr, soft_wrap=True, width=None if probe.is_terminal else 200)


console = _console()
err_console = _console(stderr=True)
summary_log = logging.getLogger("fleetbench.summary")
"""The end-of-run summary in the run's log file (`conf/config.yaml` sends this logger to the file only)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(overview())
        return 0 if args else 2
    if args[0] not in COMMANDS:
        _error(f"error: unknown command {args[0]!r}; valid choices: {', '.join(sorted(COMMANDS))}")
        return 2
    if any(a in ("-h", "--help") for a in args[1:]):
        sys.stdout.write(command_help(args[0]))
        if args[0] != "run":
            return 0
        sys.stdout.write("\n")  # then Hydra's own help: the config groups and the composed configuration
    if args[0] != "run":  # a run's logging is Hydra's (`conf/config.yaml`: hydra.job_logging)
        warnings_to_stderr()
    try:
        return COMMANDS[args[0]](args[1:])
    except UserError as exc:
        if interrupts.received():  # a Ctrl-C inside composition can surface as a bogus configuration error
            _error("interrupted: nothing was run")
            return Interrupted.exit_code
        _error(f"error: {exc}")
        return exc.exit_code
    except Interrupted as exc:
        _error(str(exc))
        return exc.exit_code
    except OmegaConfBaseException as exc:  # a value that fails only when read (an interpolation): one line too
        translated = translate(exc)
        if interrupts.received() or not isinstance(translated, ConfigError):
            raise
        _error(f"error: {translated}")
        return translated.exit_code
    except Exception:
        # A Ctrl-C can land inside a library (OmegaConf, Hydra) that turns it into an unrelated error; after a
        # stop signal that error is the interruption, not a bug to report.
        if not interrupts.received():
            raise
        _error(interrupts.LATE_INTERRUPTED)
        return Interrupted.exit_code


WARNING_LOGGERS = ("fleetbench", "fleetbench_plugins")


def warnings_to_stderr() -> None:
    """The warnings of fleetbench and its built-in plugins on stderr as `warning: …` lines, as a run shows them (a
    reading command retrying a lost connection); without it they came as bare lines through logging's last resort."""
    for name in WARNING_LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("warning: %(message)s"))
            handler.setLevel(logging.WARNING)
            logger.addHandler(handler)


def _error(message: str) -> None:
    """One line on stderr, never wrapped (scripts and tests read it); text it quotes (a label, an override) has its
    control and format characters escaped, as in the tables."""
    # One write, line break included: the jobs of a sweep share this stderr, and print's two writes (text, then the
    # line break) let another job's line land between them.
    sys.stderr.write(printable(" ".join(message.split())) + "\n")
    sys.stderr.flush()
    if message.startswith("interrupted"):
        interrupts.reported()


CONFIG_DIR_FLAGS = ("-cd", "--config-dir")


def _overrides(args: Sequence[str]) -> list[str]:
    """A reading command's `args` (report, drift, export, status, names, show, runs) with `-cd DIR` /
    `--config-dir DIR` (or `=DIR`) turned into `hydra.searchpath=[file://DIR]` (absolute), as `run` reads it, so
    that a catalog or preset of one's own is reported the way it ran; any other flag is refused in one line (it would
    otherwise be dropped unseen)."""
    search, rest = _config_dir_overrides(args)
    for arg in rest:
        if arg.startswith("-") and "=" not in arg:
            raise UserError(f"{arg}: not an option of this command; its only option is -cd/--config-dir DIR")
    return [*search, *rest]


def _config_dir_overrides(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """`-cd DIR` / `--config-dir DIR` (or `=DIR`) of `args` as `hydra.searchpath=[file://DIR]` overrides (absolute),
    and the other arguments as given."""
    search: list[str] = []
    out: list[str] = []
    rest = iter(args)
    for arg in rest:
        flag, equals, value = arg.partition("=")
        if flag in CONFIG_DIR_FLAGS:
            folder = value if equals else next(rest, None)
            if not folder:
                raise UserError(f"{flag}: needs a directory, e.g. {flag} myconf")
            search.append(f"hydra.searchpath=[file://{_config_dir(flag, folder)}]")
        else:
            out.append(arg)
    return search, out


# --- run -------------------------------------------------------------------------------------------------------------


def cmd_run(args: Sequence[str]) -> int:
    """Hide literal secrets, validate every job of the (possibly swept) configuration, check where the run will
    write, then hand over to Hydra. A stop signal is held while a configuration composes (see `interrupts.hold`)."""
    try:
        return _validate_and_run(hide_secrets(args))
    finally:
        interrupts.release()


@contextlib.contextmanager
def _composing() -> Iterator[None]:
    """Hold stop signals for one composition; one that arrived meanwhile is taken as it ends: nothing was run."""
    interrupts.hold()
    try:
        yield
    finally:
        try:
            interrupts.release()
        except KeyboardInterrupt:
            raise Interrupted("interrupted: nothing was run") from None


def _validate_and_run(args: list[str]) -> int:
    parsed = _hydra_arguments(args)
    _check_hydra_flags(parsed)
    if parsed.resolve and not _holds_no_secret(parsed.package):  # Hydra would print every secret in clear
        raise UserError(
            "run: --resolve would print the API keys and other secrets the configuration reads from the environment; "
            "drop it (--cfg job shows their ${oc.env:...} references, and fleetbench run checks that they resolve) or "
            f"pick a section that holds none with -p: {', '.join(RESOLVABLE)}"
        )
    search = _search_dir(parsed)
    given = [*search, *parsed.overrides]
    multirun = parsed.multirun or _asks_for_multirun(parsed.overrides)
    with _composing(), hydra_context():
        try:
            # A single job is validated from the composition its normalized overrides make (see compose_normalized).
            composed: DictConfig | None = None
            if not multirun:
                composed, overrides = compose_normalized(given, parsed.config_name, with_hydra=True)
                if str(composed.hydra.mode) == "RunMode.MULTIRUN":  # set by a config file
                    composed, multirun = None, True
            if composed is None:
                overrides = normalize_overrides(given)
            composed_job_name = JobRuntime.instance().get("name")  # see `_KnownComposition.take`
        except Exception as exc:  # Hydra wraps everything; translate() re-raises what it cannot explain
            raise translate(exc, given) from None
    with_hydra, composed = composed, without_hydra(composed) if composed is not None else None
    hydra_args = [*_without(args, parsed.overrides), *overrides[len(search) :]]
    if _inspects_only(parsed) or "--version" in args:  # --cfg, --info, --help...: Hydra answers, nothing runs
        return _hydra_run(hydra_args)
    # A single job's configuration is the composition just made: Hydra's app need not compose it again, neither to
    # read `hydra.mode` nor to run the job (each about a quarter of a second of the run's start-up).
    mode: _KnownComposition | None = None
    if with_hydra is not None:
        known_name = parsed.config_name or CONFIG_NAME
        mode = _KnownComposition(
            with_hydra, with_hydra.hydra.mode, known_name, tuple(overrides), bool(search), composed_job_name
        )
    jobs = _sweep_jobs(overrides, multirun)
    storages: dict[str, NamingSpec] = {}
    for job_overrides in jobs:
        # Validation too: a signal raised inside OmegaConf's merge left a node half-built, and the error its cleanup
        # raised then replaced the interrupt (a traceback and exit 1 for a Ctrl-C while a sweep's jobs were checked).
        with _composing():
            cfg = composed if composed is not None else compose_config(job_overrides, config_name=parsed.config_name)
            common = resolve_run(cfg).common
        storages.setdefault(f"{common.storage.name}:{common.storage.options!r}", common)
    check_output_dir(jobs[0], multirun, with_hydra)
    check_storages(storages.values(), notify=_error)
    if multirun and launched.runs_jobs_elsewhere(jobs[0]):
        with (
            launched.sweep_stop_file() as stop_file,
            launched.patient_signals(notify=_error, stop_file=stop_file),
            launched.one_line_when_a_worker_dies(),
        ):
            return _hydra_run(hydra_args)
    # Every job runs in this process (a single run, or a sweep on Hydra's basic launcher): signals stay held
    # whenever Hydra composes, between and around the jobs.
    interrupts.hold()  # until the job starts: Hydra composes first
    return _hydra_run(hydra_args, None if multirun else mode, hold=True)


RESOLVABLE = (
    "hydra.launcher", "hydra.sweeper", "hydra.run", "hydra.sweep", "hydra.runtime", "hydra.job_logging",
    "hydra.hydra_logging", "run", "scheduler", "suite", "sharding", "naming", "report", "status", "drift", "export",
)  # fmt: skip
"""Sections `--cfg ... --resolve -p SECTION` may print resolved: none holds a key, a database password or the
overrides as typed (`models`, `providers`, `storage`, `hydra.overrides` and `hydra.job` can)."""


def _holds_no_secret(package: str | None) -> bool:
    return package is not None and any(package == safe or package.startswith(f"{safe}.") for safe in RESOLVABLE)


def _hydra_arguments(args: Sequence[str]) -> argparse.Namespace:
    """Hydra's own command line (flags in either spelling, anywhere among the overrides)."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        # Known args only: argparse's own error for the rest prints eight lines of usage and exits, whatever
        # `exit_on_error` says (Python 3.11).
        parsed, unknown = parser.parse_known_intermixed_args(list(args))
    except argparse.ArgumentError as exc:
        raise UserError(f"run: {exc}") from None
    if unknown:
        raise UserError(
            f"run: {unknown[0]}: not an option; Hydra's options: -m/--multirun, -r/--run, -c/--cfg, -p/--package, "
            "--resolve, -cd/--config-dir, -cn/--config-name, -i/--info, --hydra-help, --version (fleetbench run --help)"
        )
    return parsed


_MODES = {"run": "-r/--run", "multirun": "-m/--multirun", "cfg": "-c/--cfg", "info": "--info"}
"""Hydra's flags that each choose what the command does: one at a time (Hydra raised a traceback for two)."""


def _check_hydra_flags(parsed: argparse.Namespace) -> None:
    """One line for Hydra flags fleetbench cannot honour, or that cannot go together."""
    given = [flag for name, flag in _MODES.items() if getattr(parsed, name)]
    if parsed.multirun and len(given) > 1 and not parsed.run:
        raise UserError("run: -m/--multirun cannot be combined with --cfg or --info; drop -m")
    if len(given) > 1:
        raise UserError(f"run: {' and '.join(given)} cannot be combined; give one of {', '.join(_MODES.values())}")
    if parsed.shell_completion:
        raise UserError(
            "run: --shell-completion is not supported: Hydra's completion script would call `fleetbench` without "
            "its command; `fleetbench --help` lists the commands and `fleetbench run --cfg job` the keys"
        )
    if parsed.experimental_rerun is not None:
        raise UserError(
            "run: --experimental-rerun is not supported: runs save no .hydra/ snapshot to rerun from (it would hold "
            "secrets given on the command line); `fleetbench runs` lists runs, and running the same overrides again "
            "runs exactly what is missing"
        )
    if parsed.config_path is not None:
        raise UserError(
            "run: --config-path/-cp is not supported: fleetbench's own configuration is packaged; add your own "
            "config groups (models/, experiment/, ...) with --config-dir DIR"
        )


def _asks_for_multirun(overrides: Sequence[str]) -> bool:
    """`hydra.mode=MULTIRUN` on the command line (`+`/`++`, quoted or not): a sweep, as with `-m`."""
    for override in overrides:
        key, _, value = "".join(override.split()).partition("=")
        if key.lstrip("+") == "hydra.mode" and value.strip("'\"") == "MULTIRUN":
            return True
    return False


def _inspects_only(parsed: argparse.Namespace) -> bool:
    return bool(parsed.help or parsed.hydra_help or parsed.cfg or parsed.info or parsed.shell_completion)


def _search_dir(parsed: argparse.Namespace) -> list[str]:
    """`--config-dir DIR` for validation: the same search path Hydra's app will use."""
    if not parsed.config_dir:
        return []
    return [f"hydra.searchpath=[file://{_config_dir('-cd/--config-dir', parsed.config_dir)}]"]


def _config_dir(flag: str, folder: str) -> Path:
    """The absolute path of a `-cd` / `--config-dir` directory; one line when it is not a directory (Hydra warns,
    prints two lines more and goes on without it, or fails after creating files)."""
    path = Path(folder).resolve()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise ConfigError(f"{flag}: {folder} {what}; give the directory that holds your config groups (models/, ...)")
    return path


def _without(args: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """The flags of a command line: everything but its overrides (which are handed over normalized)."""
    flags = list(args)
    for override in overrides:
        flags.reverse()
        flags.remove(override)
        flags.reverse()
    return flags


def _sweep_jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    if not multirun:
        return [overrides]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # Hydra's parser errors carry the offending override
        raise translate(exc) from None
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


@dataclasses.dataclass
class _KnownComposition:
    """A single job's configuration, composed with Hydra's settings from these very overrides during validation.

    Hydra's app would compose it twice more: once for `get_mode` (only to read `hydra.mode`) and once to run the job;
    each costs about a quarter of a second of `fleetbench run`'s start-up. Both are answered from this composition,
    which is what Hydra's own would be (the same config files, overrides, working directory and environment, in the
    same process), so the job runs the very configuration that was validated."""

    config: DictConfig
    mode: Any
    """Its `hydra.mode` as composed (None: no config file sets it), which Hydra's app asks `get_mode` for."""
    config_name: str
    overrides: tuple[str, ...]
    searched: bool
    """Composed with a `-cd` search-path override, which Hydra's app gets as a flag instead: composed again."""
    job_name: str
    """Hydra's job name while validating (`hydra.job.name` where no config file sets one; the app's differs)."""
    taken: bool = False

    def take(self, config_name: str | None, overrides: Sequence[str], run_mode: Any) -> DictConfig | None:
        """The configuration for the app's composition of the job, once; None (compose it) for any other request.

        Without a `hydra.mode` from a config file the app adds `hydra.mode=RUN` to the overrides; that one is
        applied here as Hydra would (the value, and the override listed under `hydra.overrides.hydra`)."""
        from hydra.types import RunMode

        given, extra = tuple(overrides[: len(self.overrides)]), list(overrides[len(self.overrides) :])
        if (
            self.taken
            or self.searched
            or run_mode != RunMode.RUN
            or config_name != self.config_name
            or given != self.overrides
            or extra not in ([], [RUN_MODE_OVERRIDE] if self.mode is None else [])
            or (self.config.hydra.job.name == self.job_name != JobRuntime.instance().get("name"))
        ):
            return None
        self.taken = True
        # As Hydra's composition leaves it: validation's `HydraConfig.set_config` made the node read-only since.
        OmegaConf.set_readonly(self.config.hydra, False)
        if extra:
            self.config.hydra.mode = RunMode.RUN
            self.config.hydra.overrides.hydra.append(RUN_MODE_OVERRIDE)
        return self.config


RUN_MODE_OVERRIDE = "hydra.mode=RUN"
"""What Hydra's app adds to a single job's overrides when no config file sets `hydra.mode`."""


@contextlib.contextmanager
def _composition_known_to_hydra(known: _KnownComposition | None) -> Iterator[None]:
    """While Hydra's app runs a single job, answer its `get_mode` and its composition of the job from `known`."""
    if known is None:
        yield
        return
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra

    original_mode, original_load = Hydra.get_mode, ConfigLoaderImpl.load_configuration

    def load_configuration(
        self: ConfigLoaderImpl, config_name: str | None, overrides: list[str], run_mode: Any, **kwargs: Any
    ) -> DictConfig:
        cfg = known.take(config_name, overrides, run_mode)
        if cfg is not None:
            return cfg
        return original_load(self, config_name=config_name, overrides=overrides, run_mode=run_mode, **kwargs)

    Hydra.get_mode = lambda self, config_name, overrides: known.mode  # type: ignore[method-assign]
    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Hydra.get_mode = original_mode  # type: ignore[method-assign]
        ConfigLoaderImpl.load_configuration = original_load  # type: ignore[method-assign]


def _hydra_run(args: list[str], mode: _KnownComposition | None = None, hold: bool = False) -> int:
    """Hand the command line over to Hydra's app. With `hold`, stop signals stay held outside `_run_job` (every job
    runs in this process); without it they are released first: a launcher's worker processes would inherit the
    signal mask."""
    import hydra

    from fleetbench.config import register

    register()
    launched.mark_launching_process()
    app: Callable[[], None] = hydra.main(config_path="pkg://fleetbench_conf", config_name="config", version_base="1.3")(
        _run_job
    )
    saved = sys.argv
    sys.argv = ["fleetbench", *args]
    if not hold:
        interrupts.release()
    try:
        with _composition_known_to_hydra(mode):
            app()
        if hold:  # every job has ended and said so: a signal held since changes nothing
            interrupts.ignore_from_now()
    except (KeyboardInterrupt, SystemExit) as exc:
        # A sweep stopped by Ctrl-C: jobs in this process exit 130 themselves; a launcher's jobs end as `JobFailed`
        # (Hydra exits 1 after printing the first) or are left behind by a second Ctrl-C. Either way it is 130.
        multirun = any(a in ("-m", "--multirun") for a in args)
        if not (multirun and interrupts.received()) or (isinstance(exc, SystemExit) and exc.code == 130):
            raise
        raise Interrupted("interrupted: every finished unit is kept; run again to resume") from None
    finally:
        sys.argv = saved
        launched.end_worker_pools()
    return 0


NOT_STARTED = "interrupted: the sweep was asked to stop before this job started; nothing was run"


def _run_job(cfg: DictConfig) -> None:
    """One Hydra job: validate, run, print the summary. Exits 2 on bad input, 1 when the storage or a plugin fails
    and 130 when interrupted, each with one line; 124 after the summary when `scheduler.deadline_s` stopped it.
    In a launcher's worker process the job raises `JobFailed` with that code instead (see `fleetbench.launched`)."""
    interrupts.release()  # Hydra has composed this job's configuration: a held signal is taken now
    if launched.sweep_stopped():  # a launcher's worker, after the sweep was asked to stop
        _end_job(NOT_STARTED, Interrupted.exit_code)
    try:
        with launched.stop_with_the_sweep():
            _run_and_report(cfg)
    except BrokenPipeError:  # the summary's reader left (`fleetbench run | head`): what the run stored stays stored
        if not launched.in_launching_process():
            raise
        sys.exit(reader_gone())  # not Hydra's "Error executing job" traceback
    finally:
        if launched.in_launching_process():  # Hydra composes the next job, or tears down, with signals held again
            interrupts.hold()


def _run_and_report(cfg: DictConfig) -> None:
    # Imported here: the run's machinery (asyncio, lanes, claims) is no start-up cost for the reading commands.
    from fleetbench.runner import RunInterrupted, run

    try:
        spec = dataclasses.replace(resolve_run(cfg), experiment=_experiment_choice())
        summary = run(spec, make_progress(spec.run.progress, err_console), notify=_error, signals_since=0)
    except UserError as exc:
        _end_job(f"error: {exc}", exc.exit_code)
    except Interrupted as exc:
        quiet_signals()  # the run is over: a further Ctrl-C must not interrupt its table, its one line and exit
        if isinstance(exc, RunInterrupted):  # what it finished, per deployment, as a completed run prints it
            print_summary(exc.summary)
        _end_job(str(exc), exc.exit_code)
    except FleetbenchError as exc:  # storage or plugin failures: one line here too, not Hydra's traceback
        _end_job(f"error: {exc}", 1)
    print_summary(summary)
    if summary.status == "deadline":
        _end_job(
            f"deadline: scheduler.deadline_s={spec.scheduler.deadline_s:g} passed; {summary.kept()}; run again to "
            "resume",
            DEADLINE_EXIT,
        )


def _end_job(line: str, exit_code: int) -> NoReturn:
    """Print the job's one line and end it with `exit_code` (in a launcher's worker: raise it back to Hydra)."""
    _error(line)
    if launched.in_launching_process():
        sys.exit(exit_code)
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    job = f"sweep job #{hydra_cfg.job.num} (output {hydra_cfg.runtime.output_dir})"
    # An interrupted job did not fail: it kept what it finished, and running the sweep again resumes it.
    ended = f"failed (exit code {exit_code}): {line}"
    if exit_code == Interrupted.exit_code:
        ended = f"was interrupted: {line.removeprefix('interrupted: ')}"
    raise launched.JobFailed(f"{job} {' '.join(ended.split())}", exit_code)


def _experiment_choice() -> str | None:
    """The `experiment` group option of the running Hydra job (None when none was selected)."""
    from hydra.core.hydra_config import HydraConfig

    choice = HydraConfig.get().runtime.choices.get("experiment")
    return None if choice in (None, "null") else str(choice)


def print_summary(summary: RunSummary) -> None:
    """Per deployment: the units it finished and the calls it served; then the totals."""
    table = PlainTable("base model", "deployment", "units", "calls", title=f"run {summary.run_id[:12]}")
    for deployment in sorted(summary.units_by_deployment.keys() | summary.calls_by_deployment.keys()):
        table.add_row(
            summary.base_model_of.get(deployment, "?"),
            deployment,
            str(summary.units_by_deployment[deployment]),
            str(summary.calls_by_deployment[deployment]),
        )
    if summary.executed:
        console.print(table)
    else:  # no table to title: the run id still names the run that `runs` lists
        console.print(f"run {summary.run_id[:12]}", soft_wrap=True)
    working_s = summary.wall_s - summary.providers_ready_s  # the rate of the work, not of litellm's import
    rate = summary.executed / working_s if working_s > 0 else 0.0
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items())) or "none"
    waited = summary.providers_ready_s
    # Providers with nothing to start still yield to the event loop once, which can take a few hundredths of a second
    # while the run's other tasks go first: only a real wait (litellm's import: seconds) is worth a mention.
    loading = f", of which {waited:.2f}s starting providers" if waited >= 0.1 else ""
    console.print(
        f"planned {summary.planned} units: {summary.already_stored} already stored, {summary.executed} executed "
        f"({outcomes}), {summary.newly_completed} newly stored in {summary.wall_s:.2f}s{loading} ({rate:.0f} units/s)",
        soft_wrap=True,
    )
    if summary.held_elsewhere:  # the units this worker left to the others: where the rest of the plan went
        console.print(f"skipped as held or completed by other workers of the plan: {summary.held_elsewhere}")
    if summary.infra:
        console.print("not done (infrastructure): " + ", ".join(f"{k} {v}" for k, v in summary.infra.items()))
    if summary.restarts:
        console.print(f"episodes started again after losing their lane: {summary.restarts}", soft_wrap=True)
    if summary.moved:
        console.print(f"units run on a lane other than their static one (failover): {summary.moved}", soft_wrap=True)
    problems = summary.lane_problems
    if problems:
        console.print(f"deployments with problems ({len(problems)}):", soft_wrap=True)
    for line in problems:
        console.print(f"  {printable(line)}", soft_wrap=True, markup=False, highlight=False)
        summary_log.warning("deployment with problems: %s", line)


# --- report / names / show / plugins ---------------------------------------------------------------------------------


def _split(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Bare arguments (spellings, a key prefix) apart from Hydra overrides (`key=value`)."""
    given = _overrides(args)
    bare = [a for a in given if "=" not in a]
    for arg in bare:  # bytes that are not UTF-8 reach Python as lone surrogates: no name or key can hold them
        if text_problem(arg) is not None:
            given_bytes = arg.encode(errors="surrogateescape")
            raise UserError(f"{given_bytes!r}: not UTF-8 text; spellings and unit keys are text")
    return bare, [a for a in given if "=" in a]


@contextlib.contextmanager
def _storage(common: NamingSpec) -> Iterator[Storage]:
    """The configured storage, open for reading (a reading command never changes a database file)."""
    storage = common.storage.create(naming=common.naming)
    try:
        yield storage
    finally:
        storage.close()


def cmd_report(args: Sequence[str]) -> int:
    """Aggregate stored units per base model (and `report.by` groups), with deployment shares beneath; or the research
    tables of `report.tables`. Covers the composed configuration's plan unless `report.scope=all` or a run is named."""
    # The report modules load with the reading commands that use them, not with every `fleetbench run`.
    from fleetbench.report import build_report, render
    from fleetbench.report.checks import check_report_by, check_report_output
    from fleetbench.report.research import build_tables, render_tables

    overrides = _overrides(args)
    cfg = compose_config(overrides)
    common = resolve_common(cfg)
    settings = common.report
    check_report_output(settings.output)
    if settings.format == "html":
        return _report_html(cfg, common, overrides)
    suite = registry.load("suites", cfg.suite, "suite").create()
    check_report_by(settings.by, suite)
    with _storage(common) as storage:
        rows_filter, scope = _scoped_filter(cfg, common, overrides, suite, storage)
        if settings.tables:
            tables = build_tables(storage, rows_filter, settings, scope, suite.factor_names())
            report: Report | None = None
        else:
            tables = []
            report = build_report(storage, rows_filter, suite.metrics(), scope.rows_by(settings.by), scope.description)
        if all(not table.rows for table in tables) if report is None else not report.rows:
            _explain_empty(storage, suite.name, scope, rows_filter)
        else:
            _note_missing(storage, rows_filter)
    if report is None:
        return _emit(settings, lambda fmt, out: render_tables(tables, fmt, out, scope.description))
    return _emit(settings, lambda fmt, out: render(report, fmt, out))


def _note_missing(storage: Storage, rows: ReportFilter) -> None:
    """Say on stderr when the configuration's plan is not complete: a report of 200 units of an 800-unit plan looked
    complete (a new user's finding), and only `fleetbench status` told. Not for a report narrowed to a run, a label or
    models, whose rows are a part of the plan by choice."""
    if rows.plans is None or rows.run_id is not None or rows.run_label is not None or rows.base_models:
        return
    planned = sum(sum(plan.cells.values()) for plan in rows.plans)
    done = sum(int(row["total"]) for row in storage.aggregate([], rows, ()))
    if done < planned:
        _error(
            f"note: {done:,} of the {planned:,} units this configuration plans have a result; `fleetbench run` "
            f"with the same settings runs the other {planned - done:,} (`fleetbench status` shows them per cell)"
        )


def _scoped_filter(
    cfg: DictConfig, common: NamingSpec, overrides: Sequence[str], suite: Suite, storage: Storage
) -> tuple[ReportFilter, ReportScope]:
    """The units every reading command covers (report, drift, export, the HTML report): the composed configuration's
    plan, unless `report.scope=all`, a run id (any unique prefix) or a label widens it; `report.models` narrows it."""
    settings = common.report
    run_id = _named_run(overrides, settings, storage.runs)
    if settings.label is not None:
        _labelled(storage.runs(), settings.label)
    scope = _report_scope(cfg, settings, overrides, suite.name, run_id)
    models = tuple(common.naming.base_name(str(m)) for m in settings.models)
    return ReportFilter(suite.name, models, run_id, run_label=settings.label, plans=scope.plans), scope


def _named_run(
    overrides: Sequence[str], settings: ReportConf, runs: Callable[[], Sequence[Mapping[str, Any]]]
) -> str | None:
    """The run `report.run_id` names (any unique prefix), or None when it names none (then `runs`, which reads the
    database, is not called: a command that fails on its settings fails before it looks for a database)."""
    from fleetbench.report.scope import resolve_run_id

    # As typed: Hydra reads a hex prefix such as `123456` or `12e345` as a number (losing zeros, or as inf).
    typed = _typed_value(overrides, "report.run_id")
    wanted = typed if typed is not None else settings.run_id
    return resolve_run_id(str(wanted), runs()) if wanted is not None else None


def _labelled(runs: Sequence[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    """The runs labelled `label`; none is a `UserError` listing the labels there are."""
    chosen = [run for run in runs if run.get("label") == label]
    if not chosen:
        labels = sorted({str(run["label"]) for run in runs if run.get("label")})
        raise UserError(f"report.label: no run has label {label!r}; labels: {', '.join(labels) or '(none)'}")
    return chosen


def _refuse_other_suites(runs: Sequence[Mapping[str, Any]], suite: str, rows: ReportFilter) -> None:
    """A run id or label whose runs all ran another suite than the configured one: one line naming `suite=`."""
    if rows.run_id is not None:
        key, named = "report.run_id", [run for run in runs if run["run_id"] == rows.run_id]
        what = f"run {rows.run_id[:12]}"
    else:
        key, named = "report.label", [run for run in runs if run.get("label") == rows.run_label]
        what = f"the runs labelled {rows.run_label!r}"
    suites = sorted({str(run["suite"]) for run in named})
    if suites and suite not in suites:
        raise UserError(f"{key}: {what} ran suite {', '.join(suites)}, not {suite!r}; add suite={suites[0]}")


def _typed_value(overrides: Sequence[str], key: str) -> str | None:
    """The text given for `key` on the command line (the last one wins, as in Hydra), quotes removed; None when not
    given. Used where Hydra's typing would lose it (a run-id prefix read as a number) or where only the choice made on
    the command line counts (`experiment`)."""
    for override in reversed(overrides):
        name, _, value = override.lstrip("+~").partition("=")
        if name == key and value not in ("", "null"):
            return value.strip("'\"")
    return None


def _report_scope(
    cfg: DictConfig, settings: ReportConf, overrides: Sequence[str], suite: str, run_id: str | None
) -> ReportScope:
    """The composed configuration's plan (`settings` is its `report` section, resolved), unless the report is widened
    (`report.scope=all`, a run id or a label)."""
    from fleetbench.report.scope import SCOPE_MODES, config_scope, widened_scope

    if settings.scope not in SCOPE_MODES:
        raise ConfigError(f"report.scope: {settings.scope!r} is not valid; choices: {', '.join(SCOPE_MODES)}")
    if run_id is not None or settings.label is not None or settings.scope == "all":
        return widened_scope(suite, run_id, settings.label)
    if settings.models:  # the plan of the models asked for, under the composed settings
        cfg = cfg.copy()
        cfg.run.models = list(settings.models)
    try:
        plan = resolve_plan(cfg)
    except ConfigError as error:
        if settings.models and str(error).startswith("run.models["):  # they came from report.models: say so
            raise ConfigError("report.models" + str(error).removeprefix("run.models")) from None
        raise
    return config_scope(dataclasses.replace(plan, experiment=_typed_value(overrides, "experiment")))


def _explain_empty(storage: Storage, suite: str, scope: ReportScope, rows: ReportFilter | None = None) -> None:
    """An empty report says why: nothing stored, only other suites' units (an error), the named run or label ran
    another suite (an error), or nothing in this scope."""
    stored = storage.suites()
    if not stored:
        _error("note: the database holds no units yet (fleetbench run stores them)")
        return
    if rows is not None and (rows.run_id is not None or rows.run_label is not None):
        _refuse_other_suites(storage.runs(), suite, rows)
    if not stored.get(suite):
        others = ", ".join(f"{name} ({count} units)" for name, count in sorted(stored.items()))
        raise UserError(
            f"report: the database holds no units of suite {suite!r}, only of {others}; choose one with suite=NAME"
        )
    if scope.plans is not None:
        _error(
            f"note: none of the {stored[suite]} stored units of suite {suite!r} is in this configuration's scope "
            "(another dataset, option, seed, model or experiment); report.scope=all shows every scope"
        )


def _emit(settings: ReportConf, draw: Callable[[str, Console], str | None]) -> int:
    """Print the report, or write it to `report.output` in the same format (the table as the terminal shows it)."""
    if not settings.output:
        shown = draw(settings.format, console) or ""
        # On a terminal, stored text is shown escaped (`for_terminal`); piped or written to a file it stays as stored.
        sys.stdout.write(for_terminal(shown) if sys.stdout.isatty() else shown)
        return 0
    buffer = io.StringIO()
    text = draw(settings.format, Console(file=buffer, width=250, color_system=None, soft_wrap=True))
    _write_output("report.output", settings.output, buffer.getvalue() if text is None else text)
    return 0


def cmd_runs(args: Sequence[str]) -> int:
    """Every recorded run, newest first; a run whose process died is shown as `dead`. `report.run_id` (a unique
    prefix) or `report.label` narrows the list to that run or those runs."""
    from fleetbench.report.runs import render_runs, stored_by_unfinished_run

    overrides = _overrides(args)  # a bare word is refused by the composition in one line, as `report` refuses it
    common = resolve_common(compose_config(overrides))
    storage = common.storage.create(naming=common.naming)
    try:
        runs = storage.runs()
        run_id = _named_run(overrides, common.report, lambda: runs)
        if run_id is not None:
            runs = [run for run in runs if run["run_id"] == run_id]
        if common.report.label is not None:
            runs = _labelled(runs, common.report.label)
        stored = stored_by_unfinished_run(storage, runs)
    finally:
        storage.close()
    render_runs(runs, console, stored=stored)
    return 0


def cmd_status(args: Sequence[str]) -> int:
    """Where the configured plan stands: its runs, done / claimed / planned per model and cell, deployment health.
    `status.watch=true` redraws every `status.every_s` seconds until Ctrl-C."""
    from fleetbench.report.status import gather, render_status, status_tables

    overrides = _overrides(args)  # a bare word is refused by the composition in one line, as `report` refuses it
    cfg = compose_config(overrides)
    spec = resolve_plan(cfg)  # no lanes: status reads the database only, and needs no API key
    common = spec.common or resolve_common(cfg)
    options = StatusConf(**{str(k): v for k, v in OmegaConf.to_container(cfg.status).items()})  # type: ignore[union-attr]
    if not (math.isfinite(options.window_s) and 0 < options.window_s <= 30 * 86_400):
        raise ConfigError(
            f"status.window_s: must be more than 0 and at most {30 * 86_400} seconds, got {options.window_s}"
        )
    if not (math.isfinite(options.every_s) and 0.1 <= options.every_s <= 3600):
        raise ConfigError(f"status.every_s: must be from 0.1 to 3600 seconds, got {options.every_s}")
    for key, value in (("report.run_id", common.report.run_id), ("report.label", common.report.label)):
        if value is not None:  # it would be ignored: status shows the configured plan, whichever runs ran it
            raise ConfigError(
                f"{key}: status shows the configured plan and all its runs; `fleetbench runs {key}=...` shows that run"
            )
    from fleetbench.claims import plan_digest
    from fleetbench.runner import plans

    model_plans = plans(spec)
    digest = plan_digest(model_plans)
    deployments = {name for model in spec.models for name in model.deployment_names}
    with _storage(common) as storage:
        if not options.watch:
            render_status(gather(storage, model_plans, digest, options.window_s, deployments), console)
            return 0
        from rich.live import Live

        try:
            if not console.is_terminal:  # a pipe or a file: rich's live display would print only the last tables
                while True:
                    console.print(f"status at {time.strftime('%H:%M:%S')}", markup=False, highlight=False)
                    render_status(gather(storage, model_plans, digest, options.window_s, deployments), console)
                    console.file.flush()
                    time.sleep(options.every_s)
            with Live(console=console, auto_refresh=False) as live:
                while True:
                    status = gather(storage, model_plans, digest, options.window_s, deployments)
                    live.update(status_tables(status), refresh=True)
                    time.sleep(options.every_s)
        except KeyboardInterrupt:  # how a watch ends: the last tables stay on screen, nothing was interrupted
            console.line()
            return 0


def cmd_names(args: Sequence[str]) -> int:
    """How each configured spelling resolves; with bare arguments, how each of those resolves.

    Every spelling given is resolved (an unknown one never hides the others); unknown ones are marked with the
    closest known spellings, and the exit code is 1 when any was unknown.
    """
    spellings, overrides = _split(args)
    naming = resolve_common(compose_config(overrides)).naming
    table = PlainTable("spelling", "base model", "how")
    if not spellings:
        for spelling, base, how in naming.resolutions():
            table.add_row(spelling, base, how)
        console.print(table)
        return 0
    known = [spelling for spelling, _, _ in naming.resolutions()]
    unknown = [spelling for spelling in spellings if not _add_resolution(table, naming, spelling, known)]
    console.print(table)
    if unknown:
        _error(
            f"error: names: {len(unknown)} of {len(spellings)} spellings are unknown: {', '.join(map(repr, unknown))}"
        )
        return 1
    return 0


def _add_resolution(table: PlainTable, naming: NamingPolicy, spelling: str, known: Sequence[str]) -> bool:
    """Add the row of one spelling; False when the policy does not resolve it (a run would refuse it)."""
    how = naming.how(spelling)
    if how is not None:
        table.add_row(spelling, naming.base_name(spelling), how)
        return True
    closest = _closest(spelling, known)
    try:
        base = naming.base_name(spelling)  # an unknown spelling the policy passes through (naming.unknown=...)
    except UnknownNameError:
        table.add_row(spelling, "?", f"unknown; {closest}")
        return False
    table.add_row(spelling, base, f"passthrough (not in the catalog; {closest})")
    return True


def _closest(spelling: str, known: Sequence[str]) -> str:
    """The closest known spellings, compared ignoring case (difflib's ratio, at most three)."""
    folded = {k.casefold(): k for k in reversed(known)}  # the first declared spelling of each folded form wins
    matches = difflib.get_close_matches(spelling.strip().casefold(), list(folded), n=3, cutoff=0.6)
    return f"closest: {', '.join(folded[m] for m in matches)}" if matches else "no close known spelling"


def cmd_show(args: Sequence[str]) -> int:
    """Print the stored transcript of the unit whose key starts with the given prefix."""
    prefixes, overrides = _split(args)
    if not prefixes or prefixes == ["units"]:
        return _list_units(overrides)
    if len(prefixes) != 1:
        raise UserError("show: give exactly one unit-key prefix, e.g. `fleetbench show 3fa9c2`")
    cfg = compose_config(overrides)
    with _storage(resolve_common(cfg)) as storage:
        found = storage.transcripts(prefixes[0], limit=2)
    if not found:
        raise UserError(f"show: no stored transcript has a unit key starting with {prefixes[0]!r}")
    if len(found) > 1:
        raise UserError(f"show: prefix {prefixes[0]!r} is ambiguous ({found[0][0]}, {found[1][0]}, ...); give more")
    key, suite_name, transcript = found[0]
    console.print(f"unit {key}", style="bold")
    placement = transcript.get("placement")
    if placement:
        home = f"; its static lane: {placement['home_lane']}" if placement.get("home_lane") else ""
        restarts = placement["restarts"]
        counted = f"{restarts} restart{'' if restarts == 1 else 's'}"
        console.print(f"ran on {' → '.join(placement['lanes'])} ({counted}{home})", markup=False)
    # The transcript holds dataset text and models' replies: never raw terminal controls (`for_terminal`).
    rendered = _suite_named(cfg, suite_name).render_transcript(transcript)
    console.print(for_terminal(rendered), markup=False, highlight=False)
    return 0


SHOW_LISTED = 20
"""Unit keys `fleetbench show` (without a key) lists."""


def _list_units(overrides: Sequence[str]) -> int:
    """The first stored units (by model and key) with their outcome and cell, to pick a key to show."""
    with _storage(resolve_common(compose_config(overrides))) as storage:
        stored = sum(storage.suites().values())
        listed = list(itertools.islice(storage.export_rows(ReportFilter()), SHOW_LISTED))
    table = PlainTable("unit key", "suite", "model", "outcome", "cell", title=f"{len(listed)} of {stored} stored units")
    factors: dict[str, Sequence[str]] = {}
    for unit in listed:
        suite = str(unit["suite"])
        if suite not in factors:
            installed = suite in registry.installed_names("suites")
            factors[suite] = (
                registry.load("suites", {"plugin": suite}, "suite").create().factor_names() if installed else ()
            )
        names = factors[suite]
        cell = " ".join(f"{k}={unit.get(f'factor.{k}', unit.get(k))}" for k in names)
        table.add_row(str(unit["unit_key"]), str(unit["suite"]), str(unit["base_model"]), str(unit["outcome"]), cell)
    console.print(table)
    if not listed:
        _error("note: the database holds no units yet (fleetbench run stores them)")
    else:
        console.print("fleetbench show KEY_PREFIX prints a unit's transcript (any unique prefix of its key)")
    return 0


def _suite_named(cfg: DictConfig, name: str) -> Suite:
    """The suite that stored a unit: the configured one (with its options) when it is that suite, else the installed
    plugin of that name with its default options."""
    configured: registry.PluginRef[Suite] = registry.load("suites", cfg.suite, "suite")
    if configured.cls.name == name:
        return configured.create()
    if name not in registry.installed_names("suites"):
        raise UserError(
            f"show: the unit was stored by suite {name!r}, which is not installed; "
            f"installed: {', '.join(registry.installed_names('suites'))}"
        )
    suite: Suite = registry.load("suites", {"plugin": name}, "suite").create()
    return suite


def cmd_plugins(args: Sequence[str]) -> int:
    """Every installed plugin by kind, with its distribution, version and options; a broken one with its error."""
    if args:
        raise UserError(f"plugins: takes no arguments, got {' '.join(args)!r}")
    columns = ("kind", "name", "distribution", "status", "options (* changes results)")
    table = PlainTable(*columns, title="fleetbench plugins")
    broken = 0
    for info in registry.listing():
        broken += info.error is not None
        # One option per line: a Text cell, whose newlines stay (a str cell's would be escaped).
        options = "\n".join(
            printable(f"{o.name}{'*' if o.affects_result else ''}: {o.type} = {o.default}") for o in info.options
        )
        distribution = f"{info.distribution} {info.version}"
        table.add_row(info.kind, info.name, distribution, info.error or "ok", Text(options or "-"))
    console.print(table)
    return 1 if broken else 0


# --- drift / export / html report (reading stored results beyond the report table) ----------------------------------


def _configured_suite(cfg: DictConfig) -> Suite:
    suite: Suite = registry.load("suites", cfg.suite, "suite").create()
    return suite


def _write_output(key: str, path: str, text: str) -> None:
    """Write a command's output file whole (a temporary file renamed) and say so, or fail with one line naming the
    key."""
    from fleetbench.report.exports.files import write_text

    folder = Path(path).parent
    if not folder.is_dir():
        raise UserError(f"{key}: cannot write {path!r}: directory {str(folder)!r} does not exist")
    try:
        write_text(Path(path), text)
    except OSError as exc:
        raise UserError(f"{key}: cannot write {path!r}: {exc.strerror}") from None
    console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)  # as `export` says what it wrote


def cmd_drift(args: Sequence[str]) -> int:
    """The deployment drift audit: per base model, do its deployments behave alike over the same cells?"""
    from omegaconf import OmegaConf

    from fleetbench.config.outputs import DriftConf, check_drift
    from fleetbench.report.drift import audit
    from fleetbench.report.drift_view import render_drift

    overrides = _overrides(args)
    cfg = compose_config(overrides)
    common = resolve_common(cfg)
    drift: DriftConf = OmegaConf.to_object(cfg.drift)  # type: ignore[assignment]
    check_drift(drift)
    suite = _configured_suite(cfg)
    with _storage(common) as storage:
        rows_filter, _ = _scoped_filter(cfg, common, overrides, suite, storage)
        result = audit(storage, rows_filter, suite.factor_names(), drift.alpha, drift.min_units)
    if drift.output:
        buffer = io.StringIO()
        text = render_drift(result, drift.format, Console(file=buffer, width=200, color_system=None, soft_wrap=True))
        _write_output("drift.output", drift.output, buffer.getvalue() if text is None else text)
    else:
        sys.stdout.write(render_drift(result, drift.format, console) or "")
    return 0


def cmd_export(args: Sequence[str]) -> int:
    """Write stored results in another format (export.format) into an existing directory (export.output)."""
    from omegaconf import OmegaConf

    from fleetbench.config.outputs import ExportConf, check_export
    from fleetbench.report.exports import export
    from fleetbench.report.exports.files import output_dir

    overrides = _overrides(args)
    cfg = compose_config(overrides)
    common = resolve_common(cfg)
    settings: ExportConf = OmegaConf.to_object(cfg.export)  # type: ignore[assignment]
    check_export(settings)
    assert settings.format is not None and settings.output is not None  # check_export refused them missing
    folder = output_dir(settings.output, "export.output")
    suite = _configured_suite(cfg)
    with _storage(common) as storage:
        rows_filter, scope = _scoped_filter(cfg, common, overrides, suite, storage)
        try:
            by = scope.rows_by(common.report.by)
            written = export(settings.format, folder, storage, suite, rows_filter, by, scope.description)
        except OSError as exc:  # a full disk, a directory that refuses files: one line, nothing half-written
            raise UserError(f"export.output: cannot write into {str(folder)!r}: {exc.strerror or exc}") from None
    for path in written:
        console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
    if not written:
        _error(f"export: no stored units of suite {suite.name!r} to write")
    return 0


def _report_html(cfg: DictConfig, common: NamingSpec, overrides: Sequence[str]) -> int:
    """`report.format=html`: one self-contained file at `report.output`."""
    from omegaconf import OmegaConf

    from fleetbench.config.outputs import DriftConf, check_drift
    from fleetbench.report.html import html_report

    if not common.report.output:
        raise UserError("report.output: report.format=html writes a file; give its path (report.output=report.html)")
    drift: DriftConf = OmegaConf.to_object(cfg.drift)  # type: ignore[assignment]
    check_drift(drift)
    suite = _configured_suite(cfg)
    with _storage(common) as storage:
        rows_filter, scope = _scoped_filter(cfg, common, overrides, suite, storage)
        text = html_report(storage, suite, rows_filter, drift.alpha, drift.min_units, scope=scope.description)
    _write_output("report.output", common.report.output, text)
    return 0


# --- serve -----------------------------------------------------------------------------------------------------------


def cmd_serve(args: Sequence[str]) -> int:
    """Serve the catalog's deployments (and the config file's) over HTTP as simulated models, until Ctrl-C."""
    import asyncio

    from fleetbench.testing.server import announce, serve
    from fleetbench.testing.server.cli import parse_serve_args, served_config, served_environment_lines
    from fleetbench.testing.server.log import RequestLog

    search, rest = _config_dir_overrides(args)  # a catalog of one's own (`-cd DIR`), as `run` reads it
    options, overrides = parse_serve_args(rest)
    cfg = compose_config([*search, *overrides])
    if options.print_env:
        sys.stdout.write(served_environment_lines(cfg, options))
        return 0
    config = served_config(cfg, options)
    try:
        log = RequestLog(options.log)
    except OSError as exc:
        raise UserError(f"--log: cannot write {options.log}: {exc.strerror or exc}") from None
    try:
        asyncio.run(serve(config, options.host, options.port, log, lambda url: announce(url, len(config.deployments))))
    except OSError as exc:
        raise UserError(f"serve: cannot listen on {options.host}:{options.port}: {exc.strerror or exc}") from None
    return 0


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "run": cmd_run,
    "report": cmd_report,
    "plugins": cmd_plugins,
    "names": cmd_names,
    "runs": cmd_runs,
    "show": cmd_show,
    "status": cmd_status,
    "serve": cmd_serve,
    "drift": cmd_drift,
    "export": cmd_export,
}


def entry() -> int:
    """Run the command line and return its exit code (`fleetbench.entry` exits with it)."""
    try:
        return main()
    except FleetbenchError as exc:
        _error(f"error: {exc}")
        return 1
    except KeyboardInterrupt:  # Ctrl-C before a run began (start-up, composition): nothing was written
        _error("interrupted: nothing was run")
        return Interrupted.exit_code
