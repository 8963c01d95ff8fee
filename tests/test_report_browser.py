"""Render a report in headless Chromium: it must load with no errors, show every section
title, draw its embedded image, and make no network request of its own.

Chromium is found at $SCRATCHRNN_CHROMIUM, /usr/bin/chromium, or as chromium /
chromium-browser on PATH. If there is none, the test is skipped, unless
SCRATCHRNN_INSTALL_CHROMIUM=1, in which case it first runs
``apt-get update && apt-get install -y chromium`` (Debian's package).
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from scratchrnn.analysis import heatmap, html_report, plots

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--window-size=1000,1400"]
MAGENTA = (255, 0, 255)


def find_chromium():
    """Path of a Chromium binary, or None."""
    explicit = os.environ.get("SCRATCHRNN_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def install_chromium():
    """apt-get Debian's chromium; returns None or the reason it failed."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(cmd)} failed: {exc}"
        if done.returncode != 0:
            return f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None and os.environ.get("SCRATCHRNN_INSTALL_CHROMIUM") == "1":
        reason = install_chromium()
        path = find_chromium()
        if path is None:
            pytest.skip(f"Chromium could not be installed ({reason or 'apt-get succeeded but no binary was found'}).")
    if path is None:
        pytest.skip("Chromium not found (looked at $SCRATCHRNN_CHROMIUM, /usr/bin/chromium, PATH); "
                    "install it with `apt-get install chromium` or set SCRATCHRNN_INSTALL_CHROMIUM=1.")
    return path


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    fig = plots.new_figure(2.0, 2.0)
    fig.set_facecolor("#ff00ff")  # a solid block the screenshot can find
    png = plots.save_png(fig, folder / "magenta.png")
    sections = [
        html_report.Section("cells", "Interpretable cells", "A cell that is on inside quotes.",
                            [html_report.Image(png, "a magenta square"),
                             html_report.Html(heatmap.text_heatmap_html("s = 'q'\n", [0, 0, 0, 0, 1, 1, 1, 0]))]),
        html_report.Section("baseline", "N-gram baseline", "Where the RNN wins.",
                            [html_report.Table([{"category": "space", "count": 3, "rnn_loss": 0.5}])]),
    ]
    doc = html_report.build_report(sections, "Browser check")
    return html_report.write_report(folder / "report.html", doc), [s.title for s in sections]


def run_chromium(binary, tmp_path, *args):
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def page_problems(stderr: str) -> list:
    """Log lines that mean the page had an error: console messages (the report has no
    scripts, so any is a blocked load or an error) and failed resource loads."""
    return [line for line in stderr.splitlines()
            if ":CONSOLE" in line or "Failed to load resource" in line or "net::ERR_" in line]


def page_requests(netlog_path) -> list:
    """URLs of network requests that the file:// page itself started (the browser's own
    background traffic has another isolation key and is not counted)."""
    with open(netlog_path, encoding="utf-8") as f:
        log = json.load(f)
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        url = params.get("url", "")
        if url and "file://" in str(params.get("network_isolation_key", "")) \
                and not url.startswith(("file:", "data:")):
            urls.append(url)
    return urls


def test_report_renders_without_errors_or_requests(chromium, report_file, tmp_path):
    path, titles = report_file
    netlog = tmp_path / "netlog.json"
    done = run_chromium(chromium, tmp_path, f"--log-net-log={netlog}", "--dump-dom", f"file://{path}")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<section" in dom
    for title in titles:
        assert re.search(rf"<h2>{re.escape(title)}</h2>", dom), title
    assert 'src="data:image/png;base64,' in dom
    assert page_problems(done.stderr) == []
    assert page_requests(netlog) == []


def test_report_screenshot_shows_embedded_image(chromium, report_file, tmp_path):
    import matplotlib.image
    import numpy as np

    path, _ = report_file
    shot = tmp_path / "shot.png"
    done = run_chromium(chromium, tmp_path, f"--screenshot={shot}", f"file://{path}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert page_problems(done.stderr) == []
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    pixels = (matplotlib.image.imread(str(shot))[..., :3] * 255).round().astype(int)
    magenta = np.all(pixels == MAGENTA, axis=-1).sum()
    assert magenta > 100 * 100  # the 200x200 px data-URI image was decoded and drawn


def test_checks_can_fail(chromium, tmp_path):
    """Both checks trip on a page that fetches a remote image: without a CSP the netlog shows
    the request; with the report's CSP the request is blocked and the console says so."""
    img = '<img src="http://127.0.0.1:9/x.png">'
    csp = f'<meta http-equiv="Content-Security-Policy" content="{html_report.CSP}">'
    for name, head in (("open.html", ""), ("csp.html", csp)):
        page = tmp_path / name
        page.write_text(f"<!DOCTYPE html><html><head>{head}</head><body>{img}</body></html>",
                        encoding="utf-8")
        netlog = tmp_path / f"{name}.json"
        done = run_chromium(chromium, tmp_path, f"--log-net-log={netlog}", "--dump-dom", f"file://{page}")
        assert done.returncode == 0, done.stderr[-2000:]
        if head:
            assert page_requests(netlog) == [] and page_problems(done.stderr)
        else:
            assert "http://127.0.0.1:9/x.png" in page_requests(netlog)
