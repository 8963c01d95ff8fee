"""Model-independent analysis blocks: text features, the n-gram baseline and its error
breakdown, text heatmaps, plots and the self-contained HTML report. Known answers only."""
import math
import random
import re
from collections import Counter

import numpy as np
import pytest

from scratchrnn.analysis import features, heatmap, html_report, plots
from scratchrnn.analysis.ngram import CATEGORIES, NGramModel, error_breakdown
from scratchrnn.core.errors import ConfigError, DataError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def bits(a):
    return [int(v) for v in a]


# ------------------------------------------------------------------ features
def test_in_string_covers_quotes_escapes_and_hash():
    text = "x = 'a#b' + \"c\\\"d\"\n"
    #       x_=_'a#b'_+_"c\"d"\n
    assert bits(features.in_string(text)) == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0,
                                              1, 1, 1, 1, 1, 1, 0]
    assert bits(features.in_comment(text)) == [0] * len(text)


def test_triple_quoted_string_spans_lines_and_hides_brackets():
    text = 'd = """x\n(y"""\nz'
    assert bits(features.in_string(text)) == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert bits(features.bracket_depth(text)) == [0] * len(text)


def test_single_quote_string_ends_at_unescaped_newline():
    text = "it's\nx"
    assert bits(features.in_string(text)) == [0, 0, 1, 1, 0, 0]


def test_comment_runs_to_end_of_line_outside_strings():
    text = "a = '#' # hi (\nb"
    assert bits(features.in_comment(text)) == [0] * 8 + [1] * 6 + [0, 0]
    assert bits(features.in_string(text)) == [0, 0, 0, 0, 1, 1, 1] + [0] * 9
    assert bits(features.bracket_depth(text)) == [0] * len(text)  # "(" in a comment


def test_bracket_depth_counts_opener_and_closer():
    text = "f(a[1], {2})\nx"
    assert bits(features.bracket_depth(text)) == [0, 1, 1, 2, 2, 2, 1, 1, 2, 2, 2, 1, 0, 0]
    assert bits(features.bracket_depth("(]x)")) == [1, 1, 1, 1]  # a closer with no partner is ignored
    assert bits(features.bracket_depth("([)x")) == [1, 2, 1, 0]  # ")" abandons the open "["


def test_opener_distance_for_brackets_and_closing_quotes():
    lex = features.python_lex("(a'b')")
    assert lex.opener_distance == (0, 0, 0, 0, 2, 5)
    assert features.python_lex('"""a"""').opener_distance == (0, 0, 0, 0, 0, 0, 0)[:4] + (4, 0, 0)


def test_prefix_carries_lexer_state_column_and_indent():
    prefix = 'def f():\n    """doc (\n  '
    text = 'x"""\n    y = (1,\n'
    assert bits(features.in_string(text)) == [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert bits(features.in_string(text, prefix)) == [1, 1, 1, 1] + [0] * 13
    assert bits(features.bracket_depth(text, prefix)) == [0] * 13 + [1, 1, 1, 1]
    assert bits(features.column(text, prefix)) == [2, 3, 4, 5, 6] + list(range(12))
    assert bits(features.indentation(text, prefix)) == [2] * 5 + [4] * 12
    assert features.python_lex(text, prefix).opener_distance[1] == len("\"\"\"doc (\n  x")


def test_column_and_indentation():
    text = "ab\n  cd\n\tx\n"
    assert bits(features.column(text)) == [0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2]
    assert bits(features.indentation(text)) == [0, 0, 0, 2, 2, 2, 2, 2, 8, 8, 8]


def test_all_features_aligned_float_arrays():
    text = "def f(x):\n    return 'y'  # z\n"
    for name, fn in features.ALL_FEATURES.items():
        out = fn(text)
        assert out.shape == (len(text),) and out.dtype == np.float64, name


def test_char_class():
    names = features.CHAR_CLASSES
    got = [names[c] for c in features.char_class("a1 (\n'_")]
    assert got == ["letter", "digit", "space", "bracket", "newline", "quote", "other"]


# ------------------------------------------------------------------ n-gram
def test_ngram_periodic_text_known_losses():
    train, held_out = "abc" * 1000, "abc" * 50
    assert NGramModel(1, "abc").fit(train).loss(held_out) == pytest.approx(math.log(3), abs=1e-3)
    assert NGramModel(3, "abc").fit(train).loss(held_out) < 0.02


def test_ngram_distributions_sum_to_one_and_never_zero():
    model = NGramModel(4, "abcd\n").fit("abcab\nbca" * 50)  # 'd' never seen in training
    for ctx in ["", "a", "ab", "abc", "dd", "d\nd", "ccccccc"]:
        p = model.prob_dist(ctx)
        assert p.shape == (5,)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(p > 0)
    lp = model.log_probs("abdd\nda")
    assert lp.shape == (6,) and np.all(np.isfinite(lp))


def _reference_kneser_ney(train, order, vocab):
    """Slow dictionary version of the smoothing documented in ngram.py."""
    tables = []
    for m in range(order):
        a = Counter()
        if m == order - 1:
            for t in range(m, len(train)):
                a[(train[t - m:t], train[t])] += 1
        else:
            for h, c in {(train[t - m - 1:t], train[t]) for t in range(m + 1, len(train))}:
                a[(h[1:], c)] += 1
        total, types = Counter(), Counter()
        for (h, _), v in a.items():
            total[h] += v
            types[h] += 1
        n1 = sum(v == 1 for v in a.values())
        n2 = sum(v == 2 for v in a.values())
        d = min(max(n1 / (n1 + 2 * n2) if n1 + n2 else 0.1, 0.1), 0.9)
        tables.append((a, total, types, d))

    def logp(ctx, c):
        p = 1.0 / len(vocab)
        for m in range(min(order, len(ctx) + 1)):
            h = ctx[len(ctx) - m:]
            a, total, types, d = tables[m]
            if total[h] > 0:
                p = (max(a[(h, c)] - d, 0) + d * types[h] * p) / total[h]
        return math.log(p)

    return logp


@pytest.mark.parametrize("order", [1, 2, 4, 6])
def test_ngram_matches_slow_reference(order):
    rng = random.Random(order)
    vocab = "abcd \n"
    train = "".join(rng.choice("aabbcd \n") for _ in range(1500))
    test = "".join(rng.choice(vocab) for _ in range(200))
    ref = _reference_kneser_ney(train, order, vocab)
    want = [ref(test[:t], test[t]) for t in range(1, len(test))]
    got = NGramModel(order, vocab).fit(train).log_probs(test)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_ngram_rejects_bad_input():
    with pytest.raises(ConfigError):
        NGramModel(0, "ab")
    model = NGramModel(2, "ab")
    with pytest.raises(DataError):
        model.log_probs("ab")  # not fitted
    model.fit("abab")
    with pytest.raises(DataError):
        model.log_probs("abz")


def test_error_breakdown_categories_on_crafted_text():
    text = "(abc)\n  d e_f='xy'"
    closers = {4, 17}
    rnn = np.array([-0.1 if t in closers else -1.0 for t in range(1, len(text))])
    ngr = np.array([-2.0 if t in closers else -0.5 for t in range(1, len(text))])
    out = error_breakdown(text, rnn, ngr)
    rows = {r["category"]: r for r in out["by_category"]}
    assert list(rows) == list(CATEGORIES)
    counts = {k: r["count"] for k, r in rows.items()}
    assert counts == {"closing bracket/quote": 2, "newline": 1, "indent / line start": 3,
                      "space": 1, "word start": 3, "in-word": 5, "other": 2}
    close = rows["closing bracket/quote"]
    assert close["rnn_loss"] == pytest.approx(0.1) and close["ngram_loss"] == pytest.approx(2.0)
    assert close["rnn_better"] == 1.0 and rows["in-word"]["rnn_better"] == 0.0
    dist = {r["distance"]: r["count"] for r in out["by_distance"]}
    assert dist["1-9"] == 2 and sum(dist.values()) == 2


def test_error_breakdown_distance_buckets():
    text = "(" + "a" * 30 + ")"
    zeros = np.zeros(len(text) - 1)
    out = error_breakdown(text, zeros, zeros)
    dist = {r["distance"]: r["count"] for r in out["by_distance"]}
    assert dist["20-39"] == 1 and sum(dist.values()) == 1
    with pytest.raises(ValueError):
        error_breakdown(text, zeros[:-1], zeros)


# ------------------------------------------------------------------ heatmaps
def _span_colours(fragment):
    return [tuple(int(v) for v in m) for m in
            re.findall(r'<span class="hc"[^>]*background:rgb\((\d+),(\d+),(\d+)\)', fragment)]


def test_heatmap_html_escapes_and_colours_by_sign():
    text = "a<b&c>\n"
    values = [1.0, -1.0, 0.5, -0.5, 0.0, 0.2, -0.3]
    frag = heatmap.text_heatmap_html(text, values, title="cell <7>")
    assert "&lt;" in frag and "&amp;" in frag and "&gt;" in frag and "cell &lt;7&gt;" in frag
    assert "<b" not in frag.replace("<br", "")  # the text's "<b" was escaped
    colours = _span_colours(frag)
    assert len(colours) == len(text)
    for (r, g, b), v in zip(colours, values):
        if v > 0:
            assert r > b
        elif v < 0:
            assert b > r
        else:
            assert (r, g, b) == (255, 255, 255)
    assert heatmap.NEWLINE_MARK in frag and frag.count("\n") >= 1


def test_heatmap_html_magnitude_and_highlight():
    frag = heatmap.text_heatmap_html("abc", [0.0, 1.0, 2.0], mode="magnitude", highlight=1)
    colours = _span_colours(frag)
    assert colours[0] == (255, 255, 255)
    assert sum(colours[2]) < sum(colours[1]) < sum(colours[0])  # darker with the value
    assert frag.count("outline") == 1
    with pytest.raises(ValueError):
        heatmap.text_heatmap_html("abc", [0.0, 1.0])


def _assert_png(path):
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    img = matplotlib.image.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 10 and img.shape[1] > 10


def test_heatmap_png(tmp_path):
    text = "def f(x):\n\treturn x  # long line " + "y" * 50 + "\n"
    values = np.tanh(np.linspace(-2, 2, len(text)))
    path = heatmap.text_heatmap_png(text, values, tmp_path / "sub" / "h.png", wrap_at=40,
                                    title="cell 3", highlight=5)
    _assert_png(path)
    rows = heatmap.wrap_lines(text, 40)
    assert [len(r) for r in rows] == [10, 40, 34]
    assert heatmap.wrap_lines(text, 40, max_lines=2) == rows[:2]


# ------------------------------------------------------------------ plots
def test_plots_write_valid_pngs(tmp_path):
    rng = np.random.default_rng(0)
    left = rng.uniform(0, 0.5, 20)
    sat = {g: (left, rng.uniform(0, 0.5, 20), np.repeat([0, 1], 10)) for g in ("input", "forget")}
    _assert_png(plots.gate_saturation_scatter(sat, tmp_path / "sat.png"))
    curves = {"LSTM": (np.arange(1, 11), np.exp(-np.arange(10.0))),
              "RNN": (np.arange(1, 6), np.array([1.0, 0.1, 0.0, 1e-3, 1e-4]))}
    _assert_png(plots.gradient_flow_plot(curves, tmp_path / "grad.png"))
    text = "ab 1(\n'"
    pts = rng.normal(size=(len(text), 2))
    _assert_png(plots.pca_plot(pts, features.char_class(text), tmp_path / "pca.png",
                               class_names=features.CHAR_CLASSES))
    _assert_png(plots.pca_plot(pts, list("xxyyzzx"), tmp_path / "pca2.png"))
    breakdown = error_breakdown("(abc)\n  d e_f='xy'", -np.ones(17), -np.ones(17) * 2)
    _assert_png(plots.ngram_vs_rnn_bar(breakdown, tmp_path / "bar.png"))


# ------------------------------------------------------------------ report
def _small_png(path):
    fig = plots.new_figure(1.0, 1.0)
    fig.subplots().plot([0, 1], [1, 0])
    return plots.save_png(fig, path)


def test_report_is_self_contained(tmp_path):
    png = _small_png(tmp_path / "a.png")
    sections = [
        html_report.Section("cells", "Interpretable cells", "A quote cell.\n\nSecond <para>.",
                            [html_report.Image(png, "a line"),
                             html_report.Html(heatmap.text_heatmap_html("x'y'", [0, 1, 1, 1]))]),
        html_report.Section("ngram", "N-gram comparison", "",
                            [html_report.Table([{"category": "space", "count": 3, "loss": 0.123456}],
                                               caption="by category")]),
    ]
    doc = html_report.build_report(sections, "Report <1>")
    for s in sections:
        assert f'id="{s.id}"' in doc and s.title in doc
    assert "http://" not in doc and "https://" not in doc
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:|#)\w+:""", doc)
    assert "data:image/png;base64," in doc and "Report &lt;1&gt;" in doc
    assert "Second &lt;para&gt;." in doc and "0.1235" in doc
    assert html_report.external_references(doc) == []
    out = html_report.write_report(tmp_path / "out" / "report.html", doc)
    assert open(out, encoding="utf-8").read() == doc
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.html"]


def test_report_refuses_outside_resources_and_bad_ids(tmp_path):
    with pytest.raises(ValueError):
        html_report.build_report([html_report.Section(
            "a", "A", items=[html_report.Html('<img src="https://example.org/x.png">')])], "t")
    with pytest.raises(ValueError):
        html_report.build_report([html_report.Section("a", "A"), html_report.Section("a", "B")], "t")
    with pytest.raises(ValueError):
        html_report.build_report([html_report.Section("1 bad", "A")], "t")
    not_png = tmp_path / "x.png"
    not_png.write_bytes(b"GIF89a")
    with pytest.raises(ValueError):
        html_report.build_report([html_report.Section("a", "A", items=[html_report.Image(not_png)])], "t")
