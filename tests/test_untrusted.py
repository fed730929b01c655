"""Nothing in a data or run folder is trusted (issue 37): widths, bounds, torn and foreign files,
files that are no files, and one writer per output folder. Command-line cases run through
``samocta.cli.main`` and must end in one ``error:`` line, never a traceback or a hang."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from inputs import training_inputs

from samocta.cli import main
from samocta.core.errors import DatasetError, InputError
from samocta.core.files import folder_lock
from samocta.core.vocabulary import FOV_MM_RANGE, check_fov_mm
from samocta.decode import plan_resampling
from samocta.decode.resample import MAX_VIEWS, TrainedFrame
from samocta.synth import write_folder
from samocta.train import TrainConfig, train_fold


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished one-epoch FAZ run on six small synthetic subjects, and its inputs."""
    base = training_inputs(tmp_path_factory.mktemp("untrusted"), n=6, seed=3)
    config = TrainConfig(data=str(base / "data"), checkpoint=str(base / "tiny.pth"), epochs=1, batch_size=4, device="cpu",
                         out=str(base / "run"))
    train_fold(config, progress=False)
    return base


def _one_error_line(capsys, code: int, *words: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (1, 2), err
    assert len(lines) >= 1 and "Traceback" not in err, err
    last = lines[-1]
    assert "error:" in last, err
    for word in words:
        assert word in last, (word, last)
    return last


@pytest.mark.parametrize("value", [-3, 0, 1e-9, float("nan"), float("inf"), 1e9, True, "3 mm"])
def test_a_width_in_mm_is_checked_wherever_it_enters(value):
    with pytest.raises(DatasetError, match="width in mm"):
        check_fov_mm(value, "--fov-mm")
    assert check_fov_mm(3, "x") == 3.0 and check_fov_mm(None, "x") is None
    with pytest.raises(Exception, match="fov_mm"):
        TrainConfig(data="x", fov_mm=FOV_MM_RANGE[1] * 2)


def test_widths_from_options_and_dataset_json_end_in_one_line(tmp_path, capsys):
    write_folder(tmp_path / "d", n=3, seed=0, size=64, progress=False)
    for value in ("-3", "0", "nan", "inf", "1e9"):
        for command in (["check-data", str(tmp_path / "d")], ["evaluate", "--run", str(tmp_path / "nothing"), "--data", str(tmp_path / "d")]):
            with pytest.raises(SystemExit) as exc:
                main([*command, "--fov-mm", value])
            _one_error_line(capsys, exc.value.code, "--fov-mm", "width in mm")
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    (tmp_path / "d" / "dataset.json").write_text(json.dumps({**meta, "fov_mm": 1e-9}))
    assert main(["check-data", str(tmp_path / "d")]) == 1
    assert "fov_mm is the scans' width in mm" in capsys.readouterr().out


def test_what_one_scan_may_cost_is_bounded_before_work_starts():
    frame = TrainedFrame((304, 304), 3000 / 304)
    with pytest.raises(InputError, match="views"):  # a 12 mm scan shown to an adapter recording 0.05 mm pixels
        plan_resampling((400, 400), 30.0, TrainedFrame((304, 304), 0.05))
    assert len(plan_resampling((1200, 1200), 10.0, frame).views) <= MAX_VIEWS
    with pytest.raises(InputError, match="too small"):
        plan_resampling((4, 4), 5.0, frame)


def test_counts_and_seeds_are_bounded_on_the_command_line(run, capsys):
    for args, said in ((["report", str(run), "--bootstrap", "0"], "--bootstrap"),
                       (["report", str(run), "--bootstrap", "1000000000"], "--bootstrap"),
                       (["report", str(run), "--seed", str(2**70)], "--seed")):
        with pytest.raises(SystemExit) as exc:
            main(args)
        _one_error_line(capsys, exc.value.code, said)
    code = main(["train", "--preset", "paper", "--data", str(run / "data"), "--out", str(run / "x"), "--seed", str(2**70)])
    _one_error_line(capsys, code, "--seed")
    assert not (run / "x").exists()


def test_a_clicks_file_is_bounded_and_its_mistakes_said_in_words(run, tmp_path, capsys):
    scans = run / "data"
    adapter = run / "run" / "standard" / "adapter_best.safetensors"
    sid = "10451"
    cases = {
        "points and": {sid: {"points": [[1, 1], [2, 2]], "labels": [1]}},
        "at most": {sid: {"points": [[1.5, 1.5]] * 1_000, "labels": [1] * 1_000}},
        "nested too deep": None,
    }
    for said, content in cases.items():
        path = tmp_path / "clicks.json"
        path.write_text("[" * 100_000 + "]" * 100_000 if content is None else json.dumps(content))
        code = main(["predict", "--adapter", str(adapter), "--checkpoint", str(run / "tiny.pth"), "--input", str(scans),
                     "--ids", sid, "--prompts", str(path), "--out", str(tmp_path / "out"), "--quiet"])
        line = _one_error_line(capsys, code, said)
        assert "zip()" not in line
    os.mkfifo(tmp_path / "fifo.json")  # refused at once: nothing waits for a writer that never comes
    code = main(["predict", "--adapter", str(adapter), "--checkpoint", str(run / "tiny.pth"), "--input", str(scans),
                 "--ids", sid, "--prompts", str(tmp_path / "fifo.json"), "--out", str(tmp_path / "out"), "--quiet"])
    _one_error_line(capsys, code, "not a regular file")


def test_torn_binary_and_foreign_run_files_end_in_one_line(run, tmp_path, capsys):
    fold = tmp_path / "run" / "standard"
    shutil.copytree(run / "run", tmp_path / "run")
    args = ["train", "--preset", "paper", "--data", str(run / "data"), "--checkpoint", str(run / "tiny.pth"), "--epochs", "2",
            "--batch-size", "4", "--device", "cpu", "--quiet", "--resume", "--out", str(tmp_path / "run")]
    good = {name: (fold / name).read_bytes() for name in ("config.json", "metrics.csv", "last.pt")}
    for name, content, said in (("config.json", b'{"data": "x", "ta', "run config"),
                                ("config.json", b"\x00\xff" * 40, "run config"),
                                ("metrics.csv", b"\x00\x01binary", "training history"),
                                ("metrics.csv", b"epoch,train_loss\n1,0.5,7,8\n", "training history")):
        (fold / name).write_bytes(content)
        _one_error_line(capsys, main(args), said)
        (fold / name).write_bytes(good[name])
    # another run's last.pt (another LoRA rank: other shapes) in this run's folder
    import torch

    state = torch.load(fold / "last.pt", weights_only=True)
    state["adapter"] = {k: torch.zeros(v.shape[0], 8) if v.ndim == 2 else v for k, v in state["adapter"].items()}
    torch.save(state, fold / "last.pt")
    _one_error_line(capsys, main(args), "another run's")
    (fold / "last.pt").write_bytes(good["last.pt"])
    # a torn results table is scored again, not read as a crash
    (fold / "results-test.csv").write_bytes(b"id,mo")
    from samocta.grid.reporting import _read_results

    assert _read_results(fold / "results-test.csv") is None


def test_two_predictions_into_one_folder_are_one_writer_and_two_datasets_never_share_results(run, tmp_path, capsys):
    adapter = run / "run" / "standard" / "adapter_best.safetensors"
    with folder_lock(tmp_path / "out", "a prediction"):  # as a second process holding it would
        code = main(["predict", "--adapter", str(adapter), "--checkpoint", str(run / "tiny.pth"), "--input", str(run / "data"),
                     "--ids", "10451", "--out", str(tmp_path / "out"), "--quiet"])
        _one_error_line(capsys, code, "in use")
    assert not (tmp_path / "out" / "measurements.csv").exists()
    for site in ("siteA", "siteB"):
        write_folder(tmp_path / site / "scans", n=3, seed=ord(site[-1]), size=96, tasks=("FAZ",),
                     projections=("OPL_BM", "ILM_OPL", "FULL"), progress=False)
        assert main(["evaluate", "--run", str(run / "run"), "--data", str(tmp_path / site / "scans"), "--quiet"]) == 0
    written = sorted((run / "run" / "standard").glob("results-all-on-scans*.csv"))
    assert len(written) == 2  # one per dataset, though both folders are named "scans"
