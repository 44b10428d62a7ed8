"""The dashboard page in a real browser: headless Chromium draws every chart and logs no console error.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); without it the test is skipped and says why.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dashboard import template_dashboard, write_page

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")
# Flags that work on a machine without a display, a GPU or a network (and as root, hence --no-sandbox).
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Runs after the page's own scripts: records every error and console.error, and how many charts plotly drew.
PROBE = """
<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message)));
const original = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); original(...args); };
window.addEventListener("load", () => setTimeout(() => {
  const report = document.createElement("pre");
  report.id = "probe";
  const drawn = [...document.querySelectorAll(".plotly-graph-div .main-svg")]
    .map(svg => svg.closest(".plotly-graph-div").id);
  report.textContent = JSON.stringify({errors: window.__errors, drawn: new Set(drawn).size});
  document.body.appendChild(report);
}, 500));
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (apt-get install -y chromium): the page is not opened in a browser"
        print(f"SKIPPED: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return CHROMIUM


def test_chromium_draws_every_chart_with_no_console_error(
    chromium: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Given the page of the template's dashboard, the probe first in <head> so that it sees the page's scripts run
    page, _ = write_page(tmp_path, template_dashboard())
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    charts = len(re.findall(r'class="plotly-graph-div"', page))

    # When headless Chromium loads it and dumps the DOM after the scripts ran
    profile = tmp_path_factory.mktemp("chromium-profile")
    done = subprocess.run(
        [
            str(chromium),
            *HEADLESS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then the probe reports no error and every chart drawn (an SVG per plot)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found is not None, done.stderr[-2000:]
    report = json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))
    assert report["errors"] == []
    assert report["drawn"] == charts


def test_a_screenshot_shows_the_page(chromium: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    page, _ = write_page(tmp_path, template_dashboard())
    html_file = tmp_path / "page.html"
    html_file.write_text(page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    profile = tmp_path_factory.mktemp("chromium-profile")

    done = subprocess.run(
        [
            str(chromium),
            *HEADLESS,
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            "--virtual-time-budget=10000",
            f"--screenshot={shot}",
            html_file.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
