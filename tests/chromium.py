"""Headless Chromium for the tests that render a report (tests/analysis/test_report_browser.py,
tests/cli/test_analyze_cli.py): the ``chromium`` fixture, and reading its logs.

Chromium is found at $SCRATCHRNN_CHROMIUM, /usr/bin/chromium, or as chromium /
chromium-browser on PATH. If there is none, a test that takes ``chromium`` is skipped,
unless SCRATCHRNN_INSTALL_CHROMIUM=1, in which case it first runs
``apt-get update && apt-get install -y chromium`` (Debian's package).
"""
import json
import os
import shutil
import subprocess

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--window-size=1000,1400"]
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
