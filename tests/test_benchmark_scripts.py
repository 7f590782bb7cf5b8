"""Every script in benchmarks/ still starts and still fits today's library (nothing else runs them).

Three checks, all without training and without the git-ignored results: each script answers ``--help`` with its
usage (run as ``python benchmarks/X.py --help`` is, in this process); every ``tunelab`` name a script imports or
reaches through an imported module exists, and every call of one binds to its signature (a rename or a dropped
argument fails here, not months later in a function ``--help`` never runs: session 41 moved Holm's adjustment and
``after_training_rules.py`` patched ``verdict.holm`` for five sessions); and the pure functions that read run
records, on a handful of synthetic records.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import json
import runpy
import signal
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
sys.path.insert(0, str(BENCHMARKS))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@contextlib.contextmanager
def _deadline(seconds: int, what: str):
    """Fail instead of hanging when a script ignores ``--help`` and starts its real work (generous: the first
    script to import transformers pays for it, on a loaded machine 15 s and more)."""

    def stop(*_):
        raise TimeoutError(f"{what} did not stop within {seconds} s: does it ignore --help?")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_every_script_is_checked() -> None:
    assert len(SCRIPTS) >= 20 and BENCHMARKS / "after_training_rules.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_help_prints_the_usage_and_exits_0(script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # a script that took --help for a path writes here, and is caught below
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with _deadline(120, script.name), pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(script), run_name="__main__")
    assert stopped.value.code in (0, None)
    assert capsys.readouterr().out.startswith("usage:")
    assert not list(tmp_path.iterdir())


def _tunelab_uses(tree: ast.AST) -> tuple[dict[str, object], list[tuple[int, str, object]]]:
    """The tunelab objects a script imports (by local name) and each ``module.attr`` it reads from a tunelab module."""
    names: dict[str, object] = {}
    missing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tunelab":
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    names[alias.asname or alias.name] = getattr(module, alias.name)
                else:
                    try:
                        names[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append((node.lineno, f"{node.module}.{alias.name}", None))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tunelab":
                    names[alias.asname or alias.name] = importlib.import_module(alias.name)
    return names, missing


def _resolve(node: ast.expr, names: dict[str, object]) -> tuple[object | None, str]:
    """What ``name`` or ``name.attr`` stands for when ``name`` is an imported tunelab object ((None, text) if not)."""
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id], node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
        base = names[node.value.id]
        if inspect.ismodule(base) or inspect.isclass(base):
            return getattr(base, node.attr, AttributeError), ast.unparse(node)
    return None, ""


def check_script_against_library(source: str) -> list[str]:
    """Each tunelab name the script uses that does not exist, and each call of one whose arguments do not bind."""
    tree = ast.parse(source)
    names, missing = _tunelab_uses(tree)
    problems = [f"line {line}: no {what}" for line, what, _ in missing]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Store):
            target, text = _resolve(node, names)
            if target is AttributeError:
                problems.append(f"line {node.lineno}: {text} does not exist")
        if not isinstance(node, ast.Call):
            continue
        target, text = _resolve(node.func, names)
        if target in (None, AttributeError) or not callable(target):
            continue
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            continue
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as e:
            problems.append(f"line {node.lineno}: {text}(...): {e}")
    return problems


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_every_tunelab_name_a_script_uses_exists_and_its_calls_bind(script: Path) -> None:
    assert check_script_against_library(script.read_text()) == []


def test_the_library_check_sees_a_renamed_function_and_a_dropped_argument() -> None:
    source = ("import tunelab.advice.verdict as verdict\nfrom tunelab.advice.choose import recommend_from_results\n"
              "def f(records):\n    holm = verdict.holm\n    return recommend_from_results(records, no_such_argument=1)\n")
    problems = check_script_against_library(source)
    assert len(problems) == 2 and "verdict.holm does not exist" in problems[0] and "no_such_argument" in problems[1]


def _runs(values: dict[str, list[float]], times: dict[str, float]) -> list[dict]:
    from test_choose import make_run

    return [make_run(s, x, seed=i, train_time=times[s]) for s, v in values.items() for i, x in enumerate(v)]


def test_after_training_rules_picks_with_and_without_holm() -> None:
    import after_training_rules

    # two cheaper strategies each about 3.7 points behind the best over 3 seeds: raw p 0.02-0.03, Holm-adjusted 0.07
    runs = _runs({"full": [0.850, 0.860, 0.855], "lora": [0.815, 0.835, 0.800], "bitfit": [0.820, 0.800, 0.835]},
                 {"full": 100.0, "lora": 40.0, "bitfit": 20.0})
    picks = after_training_rules.picks(runs)
    assert picks["now"] == "bitfit" and picks["unadjusted"] == "full"  # the patch reaches the verdict's Holm
    assert picks["equivalence-1"] == picks["equivalence-5"] == "full"  # the gap's interval reaches 6.6 points


def test_epoch_rung_reads_each_seeds_accuracy_at_a_third_and_at_the_end(tmp_path: Path) -> None:
    import epoch_rung

    for strategy, (third, end) in {"head": (0.6, 0.62), "last-n": (0.7, 0.71), "bitfit": (0.5, 0.75),
                                   "lora": (0.65, 0.7), "full": (0.72, 0.73)}.items():
        run = tmp_path / "task" / "runs" / "runs" / f"{strategy}-s42"
        run.mkdir(parents=True)
        record = {"run_info": {"seed": 42, "strategy": strategy}, "metrics": {"validation": {"accuracy": end}},
                  "train_info": {"num_epochs": 3, "epochs": [{"epoch": e, "val_accuracy": third if e == 1 else end}
                                                             for e in (1, 2, 3)]}}
        (run / "metrics.json").write_text(json.dumps(record))
    (row,) = epoch_rung.seed_rows(tmp_path / "task")
    assert (row["leads_at_third"], row["leads_at_end"], row["end_leader_rank_at_third"]) == ("full", "bitfit", 5)
    assert row["gain"]["bitfit"] == pytest.approx(25.0)


def test_recorded_separation_writes_each_tasks_pick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import recorded_separation

    runs = _runs({"full": [0.90, 0.91, 0.90], "head": [0.60, 0.61, 0.62]}, {"full": 100.0, "head": 1.0})
    (tmp_path / "t.json").write_text(json.dumps({"task": "t"}))
    for i, run in enumerate(runs):
        (tmp_path / "t" / "runs" / "runs" / str(i)).mkdir(parents=True)
        (tmp_path / "t" / "runs" / "runs" / str(i) / "metrics.json").write_text(json.dumps(run))
    recorded_separation.main([str(tmp_path / "out.json"), "--results", str(tmp_path)])
    assert json.loads((tmp_path / "out.json").read_text())["t"]["pick"] == "full"
    assert capsys.readouterr().out.startswith("t full")


def test_document_mask_with_one_step_in_all_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import document_mask

    monkeypatch.setattr(sys, "argv", ["document_mask.py", "--steps", "1", "--repeats", "1"])
    with pytest.raises(SystemExit) as stopped:
        document_mask.main()  # before: smollm2 prepared, one step timed, then StatisticsError: no median for empty data
    assert stopped.value.code == 2 and "give at least 2 steps in all" in capsys.readouterr().err.splitlines()[-1]
