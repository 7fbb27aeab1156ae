"""What `fleetbench --help` and `fleetbench COMMAND --help` print: a usage line and one paragraph per command."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandHelp:
    usage: str
    summary: str
    description: str


COMMAND_HELP: dict[str, CommandHelp] = {
    "run": CommandHelp(
        "fleetbench run [HYDRA FLAGS] [OVERRIDES]",
        "run the configured experiment (exactly the units storage does not hold yet)",
        "Plans the configured grid, diffs it against what storage holds, and executes exactly the missing units on "
        "every selected model's deployments; results are written one row per unit and counted under the base model. "
        "Every job of a sweep (-m) is validated before any starts; hydra/launcher=joblib|ray|submitit_slurm runs the "
        "jobs in parallel processes or on a cluster (the cluster extra). Hydra's flags work in both spellings "
        "(--cfg job, -c job, --config-dir DIR, -cd DIR, -m, --info); overrides are key=value (run.instances=5, "
        "suite=workflow). Ctrl-C once stops taking units and lets those in flight finish; twice stops at once; "
        "exit code 130.",
    ),
    "report": CommandHelp(
        "fleetbench report [OVERRIDES]",
        "aggregate stored results per base model, with each deployment's share beneath",
        "Aggregates exactly the units the composed configuration plans (its suite scope, model scopes, seed, cells "
        "and instance counts: give the overrides you ran with, e.g. experiment=phase5_3): per base model (and any "
        "report.by factor, seed, dataset or suite.<option>) the units, outcomes, full % and the suite's headline "
        "metrics, with each deployment's share of units and calls beneath. report.scope=all covers every scope, one "
        "row per scope and seed. report.tables=[5.1,...,5.5] prints the original's research tables with Wilson "
        "intervals and McNemar paired comparisons. report.format=table|markdown|csv|json|html, report.output=FILE, "
        "report.models=[...], report.run_id=PREFIX, report.label=.... report.format=html writes one self-contained "
        "file (report.output required) with plots of success by model and by each factor, Wilson intervals drawn, "
        "and a per-deployment panel: units, calls, latency percentiles, 429 and error shares, drift flags.",
    ),
    "runs": CommandHelp(
        "fleetbench runs [OVERRIDES]",
        "list recorded runs; a run whose process died is shown as dead",
        "Lists every run recorded in the configured storage, newest first: its state (running, completed, "
        "interrupted, failed, deadline (stopped by scheduler.deadline_s), or dead when its process is gone or its "
        "heartbeat stopped), start, last heartbeat, "
        "host and pid, suite, models, planned and executed units, and label.",
    ),
    "status": CommandHelp(
        "fleetbench status [OVERRIDES]",
        "where a plan stands: its workers, done / claimed / planned, deployment health",
        "Takes the same overrides as run (run.models, run.instances, suite..., storage...) and reads the configured "
        "database only: the runs of that plan (state, run.worker, host:pid), units done / claimed by a live worker / "
        "planned per base model and per cell, and per deployment the units done there and, over the last "
        "status.window_s seconds (default 300), its calls, p50/p95 latency, 429 share and error share. "
        "status.watch=true redraws every status.every_s seconds until Ctrl-C.",
    ),
    "names": CommandHelp(
        "fleetbench names [SPELLING ...] [OVERRIDES]",
        "how model spellings resolve to canonical base models",
        "Without spellings, lists every spelling the catalog declares (base names, aliases, deployment names) and "
        "the base model each resolves to. With spellings, resolves each one given (case variants and -N deployment "
        "suffixes included), marks unknown ones with the closest known names, and exits 1 if any was unknown.",
    ),
    "show": CommandHelp(
        "fleetbench show [UNIT_KEY_PREFIX | units] [OVERRIDES]",
        "print the stored transcript of one unit, or list unit keys",
        "Prints the stored transcript of the unit whose key starts with the given prefix, rendered by the suite "
        "that produced it. A prefix matching several units is refused with the first matches. Without a prefix "
        "(or with `units`) lists the first stored units with their key, suite, model, outcome and cell.",
    ),
    "plugins": CommandHelp(
        "fleetbench plugins",
        "list installed plugins by kind, with their distribution, version and options",
        "Lists every plugin registered under the fleetbench entry-point groups (providers, storage, suites, "
        "sharding, naming, simulators), built-in or third-party alike, with the distribution and version that "
        "installed it and its options (name, type, default, whether it changes results). A plugin that fails to "
        "load or breaks its contract is listed with the reason; the exit code is then 1.",
    ),
    "serve": CommandHelp(
        "fleetbench serve [--host H] [--port P] [--config FILE] [--log FILE] [--latency-s S] [--max-concurrency N] "
        "[--retry-after-s S] [--seed N] [--print-env] [OVERRIDES]",
        "serve the simulated models over HTTP as OpenAI / Azure deployments (tests, benchmarks, demos)",
        "An OpenAI- and Azure-compatible HTTP server (127.0.0.1:8765 by default; --port 0 picks a free port) that "
        "answers as the simulated models under every deployment name of the catalog (overrides select the catalog "
        "like any command's) plus those a --config file adds: POST /v1/chat/completions and /chat/completions "
        "(model = deployment name), /openai/deployments/NAME/chat/completions?api-version=... (Azure OpenAI) and "
        "/models/chat/completions (Azure AI Foundry), tools included. The config file (YAML or JSON) has `defaults` "
        "and `deployments: {NAME: {...}}` with model, profile, protocol, latency {mean_s, spread_s, distribution}, "
        "max_concurrency (beyond it: 429 with Retry-After retry_after_s), faults {error_500, rate_limited, reset, "
        "hang, empty, malformed_json, truncated} (probabilities per request) and reject_keys (401). --log FILE "
        "appends one JSON line per request: deployment, key fingerprint (never the key), times, status, fault. "
        "--print-env prints the environment that points the catalog's real-model entries at the server, then exits.",
    ),
    "drift": CommandHelp(
        "fleetbench drift [OVERRIDES]",
        "audit each base model's deployments: does any behave like a different model?",
        "Compares, per base model, the outcomes of every pair of its deployments over the cells both ran: a "
        "Cochran-Mantel-Haenszel test of full success stratified by cell, Holm-adjusted over every pair. A "
        "deployment that differs significantly from more than half of its siblings is flagged (with two "
        "deployments, both), with its full-success rate, its siblings', the Mantel-Haenszel rate difference and odds "
        "ratio and the adjusted p-value. drift.alpha=0.01, drift.min_units=20, drift.format=table|json, "
        "drift.output=FILE; units are selected as by report (report.models, report.run_id, report.label).",
    ),
    "export": CommandHelp(
        "fleetbench export export.format=FORMAT export.output=DIR [OVERRIDES]",
        "write stored results as CSV/JSON/Markdown tables, Parquet, the original's layouts or Inspect logs",
        "Writes into the existing directory DIR: csv|json|markdown (report.csv/.json/.md, the report's table with "
        "its column names), parquet (units.parquet and calls.parquet), master_json (master_database.json, the "
        "original WorkflowBench layout), csv50 (test_results_complete.csv, its 50-column CSV) or inspect (one "
        "Inspect AI log per base model (JSON), for `inspect view`). Each file is written whole or not at all; "
        "units are selected as by report (report.models, report.run_id, report.label, report.by for the tables).",
    ),
}


def overview(width: int = 100) -> str:
    """The text of `fleetbench --help`."""
    lines = ["usage: fleetbench COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<9} {help_.summary}" for name, help_ in COMMAND_HELP.items()]
    lines += ["", "`fleetbench COMMAND --help` describes one command."]
    return "\n".join(lines) + "\n"


def command_help(name: str, width: int = 100) -> str:
    """The text of `fleetbench NAME --help`."""
    entry = COMMAND_HELP[name]
    return f"usage: {entry.usage}\n\n" + textwrap.fill(entry.description, width) + "\n"
