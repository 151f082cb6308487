"""The report opened in headless Chromium (Debian's ``chromium``): every figure renders, no error.

Needs ``chromium`` on the PATH (``apt-get update && apt-get install -y chromium chromium-driver``
as root; ``make test`` installs it). Without it this test fails, it does not skip.

Two runs of the browser: one on a copy of the report with a small script prepended that
records ``console.error``, uncaught exceptions, rejected promises and failed resource loads
into an attribute of ``<html>``, whose DOM is dumped after the page settled
(``--dump-dom --virtual-time-budget``); one on the report itself for a screenshot, saved in the
test's tmp dir. Chromium's own log (``--enable-logging=stderr``) is also searched for console
messages of uncaught errors and failed loads.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mlipspace.report import build_report

INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"

#: records every console error, uncaught exception and failed load in <html data-console-errors>
HOOK = """<script>
(function () {
  var errors = [];
  function keep(text) {
    errors.push(String(text));
    document.documentElement.setAttribute("data-console-errors", JSON.stringify(errors));
  }
  var original = console.error;
  console.error = function () {
    keep(Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    if (e.target && e.target !== window) {
      keep("failed to load " + (e.target.src || e.target.href || e.target.tagName));
    } else {
      keep("uncaught: " + e.message + " at " + e.lineno);
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) { keep("rejection: " + e.reason); });
  window.addEventListener("load", function () {
    setTimeout(function () { document.documentElement.setAttribute("data-loaded", "1"); }, 0);
  });
})();
</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(f"chromium is not installed: run `{INSTALL}` as root", pytrace=False)
    return path


def run_chromium(args: list[str], profile: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        # the 3D views need WebGL: software rendering, opted into explicitly (a local file)
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
    ]
    return subprocess.run(
        [chromium(), *flags, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


class _Dom(HTMLParser):
    """Each plotly div with what it rendered; the root's attributes; visible text."""

    def __init__(self):
        super().__init__()
        self.figures: dict[str, dict[str, int]] = {}
        self.root: dict[str, str] = {}
        self.text: list[str] = []
        self._current: str | None = None
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "html":
            self.root = {k: v or "" for k, v in a.items()}
        if tag == "script":
            self._in_script = True
        if tag == "div" and "plotly-graph-div" in classes:
            self._current = a["id"]
            self.figures[self._current] = {"main-svg": 0, "marks": 0}
        if self._current is None:
            return
        entry = self.figures[self._current]
        if tag == "svg" and "main-svg" in classes:
            entry["main-svg"] += 1
        # heatmaps draw an <image>, scatter plots <path class="point">, 3D views a <canvas>
        if tag in ("image", "canvas") or (tag == "path" and "point" in classes):
            entry["marks"] += 1

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if not self._in_script:
            self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from test_report import make_results

    results = make_results(tmp_path_factory.mktemp("results") / "res", n_structures=40)
    return build_report(results, tmp_path_factory.mktemp("report") / "report.html", strict=True)


def test_report_renders_in_chromium_without_errors(report, tmp_path):
    chromium()
    html = report.read_text(encoding="utf-8")
    expected = set(re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', html))
    assert len(expected) >= 15
    instrumented = report.with_name("instrumented.html")
    instrumented.write_text(html.replace("<head>", "<head>\n" + HOOK, 1), encoding="utf-8")

    run = run_chromium(
        ["--enable-logging=stderr", "--v=0", "--dump-dom", instrumented.as_uri()],
        tmp_path / "profile-dom",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    dom = _Dom()
    dom.feed(run.stdout)
    assert dom.root.get("data-loaded") == "1", "the page did not finish loading"
    errors = json.loads(dom.root.get("data-console-errors") or "[]")
    assert errors == [], errors
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    bad = [
        line
        for line in console
        if re.search(r"Uncaught|Failed to load|ERR_|is not defined|TypeError", line)
    ]
    assert bad == [], bad
    assert set(dom.figures) == expected
    blank = {k: v for k, v in dom.figures.items() if v["main-svg"] == 0 or v["marks"] == 0}
    assert blank == {}, f"figures that did not render: {blank}"
    assert "WebGL is not supported" not in " ".join(dom.text)

    shot = tmp_path / "report.png"
    run = run_chromium(
        ["--window-size=1400,4000", f"--screenshot={shot}", report.as_uri()],
        tmp_path / "profile-shot",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 100_000  # a blank page compresses to a few kB
    print(f"screenshot: {shot}")


def test_missing_chromium_fails_with_the_install_command(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=re.escape(INSTALL)):
        chromium()
