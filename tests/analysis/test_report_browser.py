"""Render a report in headless Chromium: it must load with no errors, show every section
title, draw its embedded image, and make no network request of its own.

Chromium: see tests/chromium.py (skipped without it, unless SCRATCHRNN_INSTALL_CHROMIUM=1).
"""
import re

import pytest

from chromium import chromium, page_problems, page_requests, run_chromium  # noqa: F401
from scratchrnn.analysis import heatmap, html_report, plots

MAGENTA = (255, 0, 255)


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


def test_report_renders_without_errors_or_requests(chromium, report_file, tmp_path):  # noqa: F811
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


def test_report_screenshot_shows_embedded_image(chromium, report_file, tmp_path):  # noqa: F811
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


def test_checks_can_fail(chromium, tmp_path):  # noqa: F811
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
