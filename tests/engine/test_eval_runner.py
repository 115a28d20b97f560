"""The runner: clips go through the real Session on the virtual clock; reports are written."""

import json
from collections.abc import Iterator

from app.cli import main
from engine.backends.base import BackendConfig
from engine.eval.baselines import AlwaysBackend, NeverBackend
from engine.eval.runner import load_suite, run_clip, run_suite, write_report
from engine.eval.scenarios import ClipSpec, SuiteSpec, make_suite


class FakeQueryEcho(NeverBackend):
    """A fake backend: responds with the standing query on the tick it arrives, else silence."""

    name = "fake-echo"

    def observe(self, turn) -> None:
        self._line = f"</response> You asked at {turn.t}: {turn.query}" if turn.query else "</silence>"

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        yield self._line


def _suite(tmp_path):
    spec = SuiteSpec(seed=5, clips=[ClipSpec("time", 40), ClipSpec("distractor", 30)])
    make_suite(tmp_path / "suite", spec)
    return tmp_path / "suite"


def test_queries_arrive_at_their_annotated_second(tmp_path):
    suite = _suite(tmp_path)
    video, ann = load_suite(suite, only="time")[0]
    q = int(ann["question"][0]["time"])
    run = run_clip(video, ann, FakeQueryEcho())
    assert [r.t for r in run.replies] == [q]
    assert len([d for d in run.decisions if d["action"] != "skipped"]) == 40  # one decision per second


def test_trivial_baselines_score_as_defined(tmp_path):
    suite = _suite(tmp_path)
    never = run_suite(suite, NeverBackend, "never")
    always = run_suite(suite, AlwaysBackend, "always")
    sn, sa = never.summary(), always.summary()
    assert sn["replies"] == 0 and sn["sw_f1"] == 0.0 and sn["false_alarms_per_min"] == 0.0
    # always-respond passes dedup (its lines differ) but repeats itself: the spam trap
    assert sa["replies"] == 70 and sa["duplicate_rate"] == (33 + 23) / 70  # 7 distinct lines per clip
    assert sa["false_alarms_per_min"] > 50 and sa["sw_f1"] < 0.1


def test_write_report_json_markdown_and_timelines(tmp_path):
    suite = _suite(tmp_path)
    run = run_suite(suite, AlwaysBackend, "always")
    path = write_report(run, tmp_path / "rep")
    data = json.loads(path.read_text())
    assert data["backend"] == "always" and len(data["clips"]) == 2
    assert data["summary"]["replies"] == 70
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| always |" in md and "SW-F1" in md
    pngs = sorted(p.name for p in (tmp_path / "rep" / "timelines").iterdir())
    assert pngs == ["distractor_30s_00.png", "time_40s_00.png"]


def test_cli_make_suite_and_run(tmp_path, capsys):
    assert main(["eval", "make-suite", str(tmp_path / "s"), "--seed", "3", "--quiet",
                 "--spec", str(_spec_file(tmp_path))]) == 0
    assert (tmp_path / "s" / "suite.json").exists()
    assert main(["eval", "run", "--suite", str(tmp_path / "s"), "--backend", "never,always",
                 "--out", str(tmp_path / "r"), "--quiet", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "| never |" in out and "| always |" in out
    assert (tmp_path / "r" / "always" / "report.json").exists() and (tmp_path / "r" / "summary.md").exists()
    assert main(["eval", "run", "--suite", str(tmp_path / "missing"), "--backend", "never", "--out",
                 str(tmp_path / "r2")]) == 2
    assert "no suite.json" in capsys.readouterr().err


def _spec_file(tmp_path):
    p = tmp_path / "spec.toml"
    p.write_text('[suite]\nseed = 1\n[[clip]]\nfamily = "counting"\nduration = 30\n')
    return p


def test_baselines_need_no_config():
    b = AlwaysBackend()
    b.load(BackendConfig())
    assert NeverBackend.is_available() == (True, "")


def test_make_suite_into_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["eval", "make-suite", str(blocker), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the suite" in err
