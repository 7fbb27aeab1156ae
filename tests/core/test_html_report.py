"""`fleetbench report report.format=html`: one self-contained file, opened in a real headless Chromium (Debian's
`chromium` and `chromium-driver` packages, driven by selenium): it loads without console errors and every plot is
rendered with a size. Skipped only where chromium or its driver is not installed."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.core.exported import WORKFLOW, cli, database

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WEAK = "models.sim_agent.deployments.2.params.profile=weak"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM or not DRIVER:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict, str]]:  # type: ignore[type-arg]
    """The HTML report of a small workflow run, the drift audit's JSON, and the markdown report's scope line."""
    folder = tmp_path_factory.mktemp(f"html-{request.param}")
    with database(request.param, folder) as url:
        process = cli(folder, "run", *WORKFLOW, WEAK, f"storage.url={url}", "run.instances=4", "run.progress=off")
        assert process.returncode == 0, process.stderr
        written = cli(folder, "report", *WORKFLOW, f"storage.url={url}", "report.format=html",
                      "report.output=report.html")  # fmt: skip
        assert written.returncode == 0, written.stderr
        assert written.stdout == "wrote report.html\n"
        drift = cli(folder, "drift", *WORKFLOW, f"storage.url={url}", "drift.format=json")
        assert drift.returncode == 0, drift.stderr
        markdown = cli(folder, "report", *WORKFLOW, f"storage.url={url}", "report.format=markdown")
        assert markdown.returncode == 0, markdown.stderr
        yield folder / "report.html", json.loads(drift.stdout), markdown.stdout.splitlines()[0]


def test_the_report_loads_without_console_errors_and_every_plot_is_rendered(
    browser: Any,
    report: tuple[Path, dict, str],  # type: ignore[type-arg]
) -> None:
    path, _, _ = report
    browser.get(path.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    sizes = browser.execute_script(
        "return Array.from(document.querySelectorAll('figure.plot svg'))"
        ".map(svg => { const box = svg.getBoundingClientRect(); return [box.width, box.height]; })"
    )
    # by model, by each of the four factors, by flaw type, and call latency by deployment
    assert len(sizes) == 7
    assert all(width > 100 and height > 100 for width, height in sizes), sizes
    bars = browser.execute_script("return document.querySelectorAll('figure.plot svg path').length")
    assert bars > 7 * 2, "every plot draws bars and error bars"
    captions = browser.execute_script(
        "return Array.from(document.querySelectorAll('figcaption')).map(c => c.textContent)"
    )
    assert "Success (full or partial) by flaw type" in captions
    assert "Success (full or partial) by tool_success_rate" in captions


def test_the_report_is_self_contained_and_its_deployment_panel_agrees_with_the_audit(
    report: tuple[Path, dict, str],  # type: ignore[type-arg]
) -> None:
    path, drift, scope_line = report
    text = path.read_text()
    # Headed by the scope line the other formats print for the same configuration.
    (scope,) = re.findall(r'<p class="scope">(.*?)</p>', text)
    assert scope == html.escape(scope_line) and "suite workflow" in scope, scope
    assert "<script" not in text
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text), "no external resource"
    panel = text.split("<h2>Deployments</h2>")[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>Sim-Agent</td><td>(Sim-Agent[-0-9]*)</td>(.*?)</tr>", panel)
    assert [name for name, _ in rows] == ["Sim-Agent", "Sim-Agent-2", "Sim-Agent-3"]
    verdicts = {d["deployment"]: d for d in drift["deployments"]}
    for name, cells in rows:
        values = re.findall(r"<td>(.*?)</td>", cells)
        units, calls, p50, p90, p99 = values[:5]
        assert int(units) == verdicts[name]["units"]
        assert int(calls) >= int(units)
        assert 0 <= float(p50) <= float(p90) <= float(p99)
        assert values[-1].startswith("DRIFT") == verdicts[name]["flagged"]
    rate_limited = re.findall(r"<td>Sim-Agent</td><td>Sim-Agent</td>(?:<td>.*?</td>){5}<td>([0-9.]+)%</td>", panel)
    assert rate_limited and float(rate_limited[0]) > 0, "deployment 0 answers 20% of requests 429"


def test_html_without_an_output_file_is_one_line(tmp_path: Path) -> None:
    process = cli(tmp_path, "report", "report.format=html")
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        "error: report.output: report.format=html writes a file; give its path (report.output=report.html)"
    ]
