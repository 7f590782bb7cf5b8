"""Jobs in processes of their own (:mod:`tunelab.run.isolate`): forked from the warm server, or started afresh.

Each job here is ``tests/isolate_job.py``; the server is stopped before and after, so that these tests start
it with their own environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tunelab.run import isolate

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the warm server forks: Linux only")


@pytest.fixture
def fresh_server():
    isolate.stop_warm_server()
    yield
    isolate.stop_warm_server()


def _job(tmp_path: Path, name: str, **spec) -> isolate.JobOutcome:
    return isolate.run_job("isolate_job", spec, tmp_path / name, what="the test job")


def test_jobs_fork_from_one_warm_server(fresh_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = _job(tmp_path, "a"), _job(tmp_path, "b")
    assert first.error is None and second.error is None and first.returncode == 0
    assert first.result["ppid"] != os.getpid()  # not a child of this process: of the server
    assert first.result["ppid"] == second.result["ppid"] and first.result["pid"] != second.result["pid"]
    assert first.result["cwd"] == str(tmp_path)
    assert "isolate_job says hello" in first.log.read_text()


def test_a_forked_job_counts_the_libraries_pages_as_a_fresh_process_does(fresh_server, tmp_path):
    """A fork copies the server's anonymous memory into the job's resident set but not its file pages (torch's and
    transformers' code): a forked job started about 140 MB below a fresh process that imported the same, and the
    estimate's peak memory (measured in such a job) came out 8-22 % under the one `tunelab train` records."""
    job = _job(tmp_path, "memory", action="memory")
    assert job.error is None and job.result["parent_rss_file_mb"] > 20  # the server has the libraries' code resident
    # the server is a process that imported the same modules fresh: the job's resident set counts those pages too
    assert job.result["rss_file_mb"] >= 0.9 * job.result["parent_rss_file_mb"]


def test_another_environment_starts_afresh(fresh_server, tmp_path, monkeypatch):
    assert _job(tmp_path, "warm").result["ppid"] != os.getpid()
    monkeypatch.setenv("ISOLATE_JOB_MARK", "changed")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # `python -m isolate_job` must find it
    fresh = _job(tmp_path, "fresh")
    assert fresh.result == {**fresh.result, "ppid": os.getpid(), "mark": "changed"}


def test_switched_off_every_job_starts_afresh(fresh_server, tmp_path, monkeypatch):
    monkeypatch.setenv(isolate.WARM_START_ENV, "0")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    assert _job(tmp_path, "fresh").result["ppid"] == os.getpid()


def test_a_warm_job_killed_or_failing_or_late_is_told_apart(fresh_server, tmp_path):
    killed = _job(tmp_path, "killed", action="kill")
    assert killed.result is None and killed.returncode == -9
    assert "the test job was killed by SIGKILL" in killed.error and "isolate_job says hello" in killed.error
    failed = _job(tmp_path, "failed", action="fail")
    assert failed.returncode == 1 and "the spec asked this job to fail" in failed.child_error["message"]
    late = isolate.run_job("isolate_job", {"action": "sleep", "seconds": 60}, tmp_path / "late", timeout_s=1.0,
                           what="the test job")
    assert late.returncode is None and late.seconds < 30 and "took longer than 1 s" in late.error


def test_a_job_run_again_keeps_the_earlier_attempts_log_and_reports_only_its_own(fresh_server, tmp_path):
    """A resumed run is its job again in the same folder: the log keeps the interrupted attempt's output (it was
    overwritten), marked, and an error quotes only the new attempt's lines."""
    first = _job(tmp_path, "again", action="fail")
    assert first.returncode == 1
    killed = _job(tmp_path, "again", action="kill")
    text = killed.log.read_text()
    assert "the spec asked this job to fail" in text and text.count(isolate.AGAIN_MARK) == 1
    assert text.count("isolate_job says hello") == 2
    assert "the spec asked this job to fail" not in killed.error and "isolate_job says hello" in killed.error


def test_a_script_without_a_main_guard_is_not_run_again_by_its_jobs(tmp_path):
    marks = tmp_path / "marks.txt"
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import os
        from pathlib import Path
        from tunelab.run.isolate import run_job
        with open({str(marks)!r}, "a") as f:
            f.write("ran\\n")
        outcome = run_job("isolate_job", {{}}, Path({str(tmp_path)!r}) / "job")
        assert outcome.result["ppid"] != os.getpid(), outcome
        print("done")
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")] if p)}
    env.pop(isolate.WARM_START_ENV, None)
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert marks.read_text() == "ran\n"


def test_a_comparison_forks_every_run_after_its_advice(fresh_server, tiny_bert_dir, toy_classification_data, tmp_path):
    """The advice before training imports more libraries in this process (scikit-learn sets variables when
    imported) and the shared frozen-layer cache sets oneDNN's: the runs must still fork from the warm server,
    and the advice times no strategy's steps."""
    from tunelab.compare.runner import compare
    from tunelab.config import TrainConfig

    rows = [{"text": t, "label": toy_classification_data.label_names[y]}
            for split in ("train", "validation", "test") for t, y in zip(toy_classification_data.splits()[split]["text"],
                                                                         toy_classification_data.splits()[split]["label"])]
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    base = TrainConfig(model=str(tiny_bert_dir), data=str(data), epochs=1, batch_size=8, forgetting=False)
    result = compare(base, ["head", "last-n", "lora"], out=tmp_path / "cmp", log=None)
    assert [r.run_info.process for r in result.results] == ["forked"] * 3
    assert all(r.succeeded for r in result.results)
    assert result.pre_recommendation["estimates"] == [] and result.pre_recommendation["costs"].startswith("left to")


@pytest.mark.parametrize("ignored", [False, True], ids=["", "sigint-ignored"])
@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "forked"])
def test_a_job_whose_parent_is_killed_outright_stops_instead_of_running_on(tmp_path, warm, ignored):
    """SIGKILL (or the out-of-memory killer) on a comparison leaves it no moment to stop its runs: each job watches the
    process that started it and, once it is gone, interrupts itself as Ctrl-C would (a training run saves a
    checkpoint), instead of training on, orphaned, beside the run that a resume starts. Also when the comparison was
    started with SIGINT ignored, as a shell script's `tunelab compare ... &` is (its jobs inherited that and ran on)."""
    import signal
    import time

    folder = tmp_path / "job"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(TESTS)!r}, {str(SRC)!r}]
        from tunelab.run.isolate import run_job
        run_job("isolate_job", {{"action": "sleep", "seconds": 120}}, {str(folder)!r}, warm={warm})
    """)], env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(SRC)])},
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored else None)
    log = str(folder / isolate.LOG_NAME)

    def job_pid() -> int | None:  # the process whose output goes to the job's log (fresh or forked alike)
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and int(entry.name) != parent.pid and os.readlink(entry / "fd" / "1") == log:
                    return int(entry.name)
            except OSError:
                continue
        return None

    def alive(pid: int) -> bool:
        try:
            return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False

    deadline = time.monotonic() + 90
    while not ((folder / isolate.LOG_NAME).is_file() and "says hello" in (folder / isolate.LOG_NAME).read_text()):
        assert time.monotonic() < deadline and parent.poll() is None, "the job did not start"
        time.sleep(0.2)
    pid = job_pid()
    assert pid is not None and alive(pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 4 * isolate.PARENT_POLL_S + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pid), "the orphaned job is still running"


@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "forked"])
def test_a_comparison_stopped_alone_stops_its_running_job_as_ctrl_c_would(tmp_path, warm):
    """SIGTERM to the comparison's process alone (Kubernetes stops a pod's main process; `kill PID`) reached it and not
    its running job: it waited INTERRUPT_GRACE_S (120 s) for a job that never heard of it, then killed it, losing the
    run's steps since its last checkpoint. It now passes the interrupt on (STOP_SIGNAL): the job stops as Ctrl-C
    would, at once, and the comparison after it."""
    import signal
    import time

    folder = tmp_path / "job"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(TESTS)!r}, {str(SRC)!r}]
        from tunelab.run.isolate import run_job, terminate_as_interrupt
        terminate_as_interrupt()  # as the CLI does
        try:
            run_job("isolate_job", {{"action": "sleep", "seconds": 120}}, {str(folder)!r}, warm={warm})
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
    """)], env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(SRC)])}, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not ((folder / isolate.LOG_NAME).is_file() and "says hello" in (folder / isolate.LOG_NAME).read_text()):
        assert time.monotonic() < deadline and parent.poll() is None, "the job did not start"
        time.sleep(0.2)
    t0 = time.monotonic()
    parent.send_signal(signal.SIGTERM)
    out, _ = parent.communicate(timeout=isolate.INTERRUPT_GRACE_S + 30)
    assert parent.returncode == 130 and "interrupted" in out
    assert time.monotonic() - t0 < 30, "the comparison waited out its grace for a job that was never told to stop"
    assert "KeyboardInterrupt" not in (folder / isolate.LOG_NAME).read_text()  # ended as serve ends on Ctrl-C


def test_a_stop_request_after_an_interrupt_is_the_same_interrupt_not_a_second(monkeypatch):
    """Ctrl-C in a terminal reaches the comparison and its job alike, and the comparison then passes it on: the job
    must not take that for a second Ctrl-C, which stops a training run at once, without saving its step."""
    import signal

    monkeypatch.setattr(isolate, "_interrupted", __import__("threading").Event())
    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: (seen.append(signum), isolate.interrupt_seen()))
    previous_stop = signal.getsignal(isolate.STOP_SIGNAL)
    try:
        isolate.answer_stop()
        handler = signal.getsignal(isolate.STOP_SIGNAL)
        handler(isolate.STOP_SIGNAL, None)  # alone (SIGTERM to the comparison): taken as Ctrl-C, once
        assert seen == [signal.SIGINT]
        handler(isolate.STOP_SIGNAL, None)  # after an interrupt: nothing more
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(isolate.STOP_SIGNAL, previous_stop)


def test_the_resource_trackers_leak_report_is_quiet_and_other_warnings_are_kept(monkeypatch):
    """A job stopped by a budget or a kill leaves a semaphore that multiprocessing's tracker removes itself, with a
    'leaked semaphore objects' warning at the end of a comparison; only that module's warnings are ignored, and a
    user's own PYTHONWARNINGS stays."""
    monkeypatch.setenv("PYTHONWARNINGS", "error::DeprecationWarning")
    env = isolate.child_environment()
    assert env["PYTHONWARNINGS"].split(",") == ["error::DeprecationWarning", isolate.TRACKER_QUIET]
    assert isolate.child_environment()["PYTHONWARNINGS"] == env["PYTHONWARNINGS"]  # once, however often asked


def test_starting_jobs_leaves_the_callers_environment_as_it_was(fresh_server, tmp_path, monkeypatch):
    """compare() set PYTHONWARNINGS (the resource tracker's filter) in the caller's own process and left it there: a
    notebook's later subprocesses all inherited it. The filter now goes to the jobs, the warm server and its tracker
    only, and the caller's environment is as it was, with or without a PYTHONWARNINGS of its own."""
    assert isolate._import_warm_modules()  # what importing torch itself sets (KMP_INIT_AT_FORK, ...) is set before
    for own in (None, "error::DeprecationWarning"):
        isolate.stop_warm_server()
        if own is None:
            monkeypatch.delenv("PYTHONWARNINGS", raising=False)
        else:
            monkeypatch.setenv("PYTHONWARNINGS", own)
        before = dict(os.environ)
        env = isolate.child_environment()
        assert dict(os.environ) == before and env["PYTHONWARNINGS"].split(",")[-1] == isolate.TRACKER_QUIET
        job = _job(tmp_path, f"job-{own is None}")  # the first one starts the warm server (and its tracker)
        assert job.error is None and job.result["ppid"] != os.getpid()  # forked from the server
        assert job.result["warnings"] == env["PYTHONWARNINGS"]
        assert dict(os.environ) == before


def test_a_job_of_the_command_line_names_settings_as_flags(monkeypatch):
    """Under the tunelab command, messages name a setting by its flag (--overwrite), and so do those of the jobs it
    starts (a comparison's runs); from Python they stay keywords (overwrite=True)."""
    from tunelab.errors import FLAGS_ENV, settings_as_flags

    monkeypatch.delenv(FLAGS_ENV, raising=False)
    assert FLAGS_ENV not in isolate.child_environment()
    with settings_as_flags():
        assert isolate.child_environment()[FLAGS_ENV] == "1"
    assert FLAGS_ENV not in os.environ


def test_a_comparison_started_with_sigint_ignored_answers_it_as_its_runs_do(tmp_path):
    """A script's `tunelab compare ... &` starts with SIGINT ignored; its runs answer SIGINT (tunelab stops them
    with it), so a Ctrl-C to the script's process group stopped the run in training while the comparison went on
    without it, recording it as failed. The comparison now answers SIGINT too: both stop, and --resume goes on."""
    import signal

    from tunelab.cli.main import main

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert main(["compare", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2  # refused
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # set before anything else
    finally:
        signal.signal(signal.SIGINT, previous)
