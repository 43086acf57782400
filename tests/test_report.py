"""The report: tables from fake run folders (and a fake W&B API) equal the numbers in the records."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from osvos_pl import report
from osvos_pl.report import sources
from osvos_pl.stages.records import GLOBAL_KEYS, global_from_sequences

DEFAULT_SNAPPING = "${osvos.is_set:${contour_ckpt}}"  # as Hydra saves it: unresolved

# folder name -> (method the config means, settings, base score); names mislead on purpose
ABLATION = {
    "minus_os": ("OSVOS", {"parent_ckpt": "p.ckpt", "contour_ckpt": "c.ckpt"}, 0.80),
    "osvos_full": ("-BS", {"parent_ckpt": "p.ckpt", "contour_ckpt": "c.ckpt", "snapping": False}, 0.77),
    "no_snapping": ("-PN", {"parent_ckpt": None, "contour_ckpt": "c.ckpt"}, 0.62),
    "no_parent": ("-OS", {"parent_ckpt": "p.ckpt", "iterations": 0}, 0.55),
    "bs_maps": ("OSVOS (contour maps)", {"parent_ckpt": "p.ckpt", "contour_maps": "maps",
                                         "snapping": True}, 0.83),
}


def scores(base: float, names=("blackswan", "car-shadow")) -> dict:
    """Per-object rows with distinct, easily told apart numbers."""
    out = {}
    for i, name in enumerate(names):
        m = base - 0.03 * i
        out[name] = {"J-Mean": m, "J-Recall": m + 0.11, "J-Decay": 0.1 + 0.01 * i,
                     "F-Mean": m + 0.02, "F-Recall": m + 0.12, "F-Decay": 0.12 + 0.01 * i,
                     "frames": 40 + i}
    return out


def config(iterations=500, parent_ckpt="p.ckpt", contour_ckpt=None, snapping=DEFAULT_SNAPPING,
           sequences=None, contour_maps=None) -> dict:
    return {
        "paths": {"output_dir": "${hydra:runtime.output_dir}"},
        "data": {"root": None, "year": 2016, "resolution": "480p", "sequences": sequences,
                 "scale": 1.0},
        "online": {"iterations": iterations, "accumulate": 1, "threshold": 0.5},
        "model": {"weights": "imagenet"},
        "stage": "online", "experiment": "online", "seed": 1337,
        "parent_ckpt": parent_ckpt, "contour_ckpt": contour_ckpt, "snapping": snapping,
        "contour_maps": contour_maps,
    }


def record(sequences: dict, finished="2024-05-01T12:00:00+02:00", seconds=10.0) -> dict:
    return {
        "experiment": "online", "stage": "online", "overrides": [],
        "started": "2024-05-01T11:00:00+02:00", "finished": finished,
        "global": global_from_sequences(sequences), "sequences": sequences,
        "timing": {"finetune_seconds_per_sequence": seconds, "inference_ms_per_frame": 5.0,
                   "sequences": {name: {"finetune_seconds": seconds, "inference_seconds": 0.2}
                                 for name in sequences},
                   "total_seconds": 3 * seconds},
        "artifacts": {},
    }


def resolved(cfg: dict) -> dict:
    """What a run records in metrics.json: the config with its interpolations resolved."""
    out = dict(cfg)
    if out["snapping"] == DEFAULT_SNAPPING:
        out["snapping"] = out["contour_ckpt"] is not None
    out["paths"] = {"output_dir": "outputs/run"}
    return out


def write_run(folder: Path, cfg: dict, rec: dict | None) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    if rec is not None:
        (folder / "metrics.json").write_text(json.dumps({**rec, "config": resolved(cfg)}))
    return folder


@dataclass
class FakeWandbRun:
    id: str
    name: str
    state: str
    config: dict
    summary: dict
    group: str = "ablation"


@dataclass
class FakeApi:
    recorded: list
    calls: list = field(default_factory=list)

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        return [r for r in self.recorded if not filters or r.group == filters["group"]]


@pytest.fixture
def ablation(tmp_path) -> dict:
    """Four complete ablation runs, one without metrics.json, one with an empty global."""
    root = tmp_path / "ablation"
    out = {"root": root, "records": {}, "configs": {}}
    for folder, (method, settings, base) in ABLATION.items():
        cfg, rec = config(**settings), record(scores(base))
        write_run(root / folder, cfg, rec)
        out["records"][method], out["configs"][method] = rec, cfg
    out["broken"] = write_run(root / "broken", config(contour_ckpt="c.ckpt"), None)
    empty = {**record(scores(0.9)), "global": {}}
    out["empty"] = write_run(root / "empty", config(contour_ckpt="c.ckpt"), empty)
    return out


@pytest.fixture
def sweep(tmp_path) -> Path:
    """A Hydra multirun over online.iterations, with job numbers not in iteration order."""
    root = tmp_path / "sweep"
    root.mkdir()
    (root / "multirun.yaml").write_text("hydra: {mode: MULTIRUN}\n")
    for job, iterations in enumerate((200, 0, 50)):
        write_run(root / str(job), config(iterations=iterations),
                  record(scores(0.5 + iterations / 1000), seconds=iterations / 10))
    return root


def run_cli(args: list[str], tmp_path: Path, capsys) -> tuple[int, str, str]:
    out = tmp_path / "report.out"
    code = report.main([*args, "--out", str(out)])
    captured = capsys.readouterr()
    return code, out.read_text() if out.exists() else "", captured.err


def test_ablation_rows_are_recognised_from_config_not_folder_names(ablation):
    table = report.ablation_table(report.find_runs([ablation["root"]]))
    assert [row["method"] for row in table] == ["OSVOS", "OSVOS (contour maps)", "-BS", "-PN", "-OS"]
    for row in table:
        glob = ablation["records"][row["method"]]["global"]
        assert {k: row[k] for k in GLOBAL_KEYS} == glob
        assert row["ΔJ&F-Mean"] == pytest.approx(
            glob["J&F-Mean"] - ablation["records"]["OSVOS"]["global"]["J&F-Mean"])


def test_csv_ablation_numbers_equal_the_records(ablation, tmp_path, capsys):
    code, text, err = run_cli([str(ablation["root"]), "--format", "csv", "--table", "ablation"],
                              tmp_path, capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["method"] for row in rows] == ["OSVOS", "OSVOS (contour maps)", "-BS", "-PN", "-OS"]
    for row in rows:
        glob = ablation["records"][row["method"]]["global"]
        assert {k: float(row[k]) for k in GLOBAL_KEYS} == glob
        assert int(row["objects"]) == 2
    assert float(rows[0]["ΔJ&F-Mean"]) == 0.0
    assert str(ablation["broken"]) in err and "no metrics.json" in err


def test_latex_ablation_has_one_booktabs_row_per_method(ablation, tmp_path, capsys):
    code, text, _ = run_cli([str(ablation["root"]), "--format", "latex", "--table", "ablation"],
                            tmp_path, capsys)
    assert code == 0
    tabular = text[text.index(r"\begin{tabular}"):text.index(r"\end{tabular}")]
    lines = tabular.splitlines()
    assert {r"\toprule", r"\midrule", r"\bottomrule"} <= set(lines)
    body = lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]
    assert [line.split(" & ")[0] for line in body] == ["OSVOS", "OSVOS (contour maps)", "-BS", "-PN", "-OS"]
    assert all(line.endswith(r" \\") for line in body)
    osvos = ablation["records"]["OSVOS"]["global"]
    assert f"{100 * osvos['J-Mean']:.1f}" in body[0].split(" & ")


def test_markdown_lists_incomplete_runs_without_counting_them(ablation, tmp_path, capsys):
    code, text, _ = run_cli([str(ablation["root"]), "--format", "md"], tmp_path, capsys)
    assert code == 0
    assert "Incomplete runs" in text
    broken_line = next(line for line in text.splitlines() if str(ablation["broken"]) in line)
    assert "no metrics.json" in broken_line and "OSVOS" in broken_line
    assert any(str(ablation["empty"]) in line and "empty global" in line
               for line in text.splitlines())
    osvos_line = next(line for line in text.splitlines() if line.startswith("| OSVOS |"))
    osvos = ablation["records"]["OSVOS"]["global"]
    assert f"| {100 * osvos['J&F-Mean']:.1f} |" in osvos_line
    assert "| +0.0 |" in osvos_line


def test_sweep_rows_follow_iterations_and_plot_is_a_png(sweep, tmp_path, capsys):
    png = tmp_path / "sweep.png"
    code, text, _ = run_cli([str(sweep), "--format", "csv", "--table", "sweep", "--plot", str(png)],
                            tmp_path, capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(row["iterations"]) for row in rows] == [0, 50, 200]
    assert [float(row["finetune_seconds"]) for row in rows] == [0.0, 5.0, 20.0]
    for row in rows:
        job = {"0": 1, "50": 2, "200": 0}[row["iterations"]]
        glob = json.loads((sweep / str(job) / "metrics.json").read_text())["global"]
        assert float(row["J&F-Mean"]) == glob["J&F-Mean"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_sequence_jobs_merge_to_the_numbers_of_one_job(tmp_path):
    both = scores(0.7, names=("a", "b"))
    for job, name in enumerate(("a", "b")):
        write_run(tmp_path / "jobs" / str(job), config(contour_ckpt="c.ckpt", sequences=[name]),
                  record({name: both[name]}))
    table = report.ablation_table(report.find_runs([tmp_path / "jobs"]))
    assert len(table) == 1 and table[0]["objects"] == 2
    single = global_from_sequences(both)
    assert {k: table[0][k] for k in GLOBAL_KEYS} == pytest.approx(single)
    assert any("merged 2 per-sequence runs" in note for note in table.notes)


def test_newest_of_several_runs_over_the_same_sequences_is_used_and_named(tmp_path):
    old = write_run(tmp_path / "old", config(), record(scores(0.6), finished="2024-05-01T10:00:00+00:00"))
    new_rec = record(scores(0.7), finished="2024-05-02T10:00:00+00:00")
    write_run(tmp_path / "new", config(), new_rec)
    table = report.ablation_table(report.find_runs([tmp_path]))
    assert [row["method"] for row in table] == ["-BS"]
    assert table[0]["J&F-Mean"] == new_rec["global"]["J&F-Mean"]
    assert any(str(old) in note and "newest" in note for note in table.notes)


def test_sequence_table_has_one_row_per_object_with_its_sequence_timing(tmp_path):
    rec = record(scores(0.7, names=("dogs_1", "dogs_2")))
    rec["timing"]["sequences"] = {"dogs": {"finetune_seconds": 12.5, "inference_seconds": 3.0}}
    run = report.find_runs([write_run(tmp_path / "r", config(), rec)])[0]
    rows = report.sequence_table(run)
    assert [row["object"] for row in rows] == ["dogs_1", "dogs_2"]
    assert [row["frames"] for row in rows] == [40, 41]
    assert all(row["finetune_seconds"] == 12.5 and row["inference_seconds"] == 3.0 for row in rows)
    assert rows[1]["F-Decay"] == rec["sequences"]["dogs_2"]["F-Decay"]


def test_wandb_source_gives_the_same_ablation_as_the_files(ablation, tmp_path, capsys, monkeypatch):
    recorded = []
    for method, rec in ablation["records"].items():
        cfg = dict(ablation["configs"][method])
        cfg = resolved(cfg)  # W&B holds the resolved config
        recorded.append(FakeWandbRun(f"id{len(recorded)}", "misleading", "finished", cfg,
                                     {"record": {**rec, "config": cfg}, "global/J&F-Mean": 0.0}))
    recorded.append(FakeWandbRun("crashed", "online", "crashed", config(), {}))
    recorded.append(FakeWandbRun("other", "online", "finished", config(), {}, group="other"))
    api = FakeApi(recorded)
    monkeypatch.setattr(sources, "_wandb_api", lambda: api)

    wandb_runs = report.wandb_runs("me/osvos", group="ablation")
    assert api.calls == [("me/osvos", {"group": "ablation"})]
    assert report.ablation_table(wandb_runs) == report.ablation_table(report.find_runs([ablation["root"]]))
    assert [r.problem for r in wandb_runs if not r.complete] == ["W&B state crashed"]

    code, text, _ = run_cli(["--source", "wandb", "--project", "me/osvos", "--group", "ablation",
                             "--format", "csv", "--table", "ablation"], tmp_path, capsys)
    _, file_text, _ = run_cli([str(ablation["root"]), "--format", "csv", "--table", "ablation"],
                              tmp_path, capsys)
    assert code == 0 and text == file_text


def test_a_path_without_runs_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no runs under" in err and str(tmp_path / "empty") in err and ".hydra/config.yaml" in err
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_csv_refuses_to_mix_tables(ablation, capsys):
    assert report.main([str(ablation["root"]), "--format", "csv"]) == 2
    assert "--format csv holds one table" in capsys.readouterr().err


def test_module_entry_point_exits_non_zero_for_no_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "osvos_pl.report", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "error: no runs under" in proc.stderr


def test_contour_runs_are_complete_by_their_boundary_scores_not_jf():
    from osvos_pl.report.runs import record_problem

    assert record_problem({"stage": "contour", "global": {}, "contours": {"F-ODS": 0.4}}) is None
    assert record_problem({"stage": "contour", "global": {}}) == "no contour scores"
    assert record_problem({"stage": "online", "global": {}}) == "empty global"


def test_choice_table_shows_the_settings_that_differ_and_each_runs_scores(tmp_path, capsys):
    """One row per run, in path order; columns for the knobs the runs differ in (not the ones
    they share), the scores as recorded, the worst object and J per object."""
    root = tmp_path / "dev"
    for name, l2sp, base in (("a-l2sp0", 0.0, 0.6), ("b-l2sp1", 1.0, 0.7)):
        cfg = config()
        cfg["online"] = {**cfg["online"], "l2sp": l2sp}
        write_run(root / name, cfg, record(scores(base, ("bear", "surf"))))
    code, text, _ = run_cli([str(root), "--table", "choice", "--format", "csv"], tmp_path, capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["run"] for r in rows] == ["a-l2sp0", "b-l2sp1"]
    assert [float(r["online.l2sp"]) for r in rows] == [0.0, 1.0]
    assert "online.iterations" not in rows[0]  # the same in both runs
    for row, base in zip(rows, (0.6, 0.7)):
        rec = record(scores(base, ("bear", "surf")))
        assert float(row["J&F-Mean"]) == pytest.approx(rec["global"]["J&F-Mean"], abs=1e-4)
        assert float(row["J bear"]) == pytest.approx(base, abs=1e-4)
        assert row["worst"].startswith("surf")


def test_reference_record_adds_a_labelled_row_with_its_difference_to_osvos(ablation, tmp_path,
                                                                          capsys):
    """``--reference LABEL=RECORD`` (an ``evaluate --out`` record, e.g. the authors' masks)."""
    ref = record(scores(0.85))
    path = tmp_path / "authors.json"
    path.write_text(json.dumps({"global": ref["global"], "sequences": ref["sequences"]}))
    code, text, _ = run_cli([str(ablation["root"]), "--table", "ablation", "--format", "csv",
                             "--reference", f"authors' masks={path}"], tmp_path, capsys)
    assert code == 0
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(text))}
    full = ablation["records"]["OSVOS"]["global"]["J&F-Mean"]
    assert float(rows["authors' masks"]["J&F-Mean"]) == pytest.approx(ref["global"]["J&F-Mean"])
    assert float(rows["authors' masks"]["ΔJ&F-Mean"]) == pytest.approx(
        ref["global"]["J&F-Mean"] - full)
    code, _, err = run_cli([str(ablation["root"]), "--reference", str(path)], tmp_path, capsys)
    assert code == 2 and "LABEL=PATH" in err
