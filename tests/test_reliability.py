"""Every mistake a clear message, nothing mixed or torn: bad input, bad files, concurrent runs, full disks.

Each test names the item of the hardening issue it covers. Command-line cases run through
``samocta.cli.main`` in-process (the same code as ``python -m samocta``) and check that the user
sees one ``error:`` line and no traceback.
"""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from inputs import training_inputs

from samocta.cli import main
from samocta.core.errors import InputError, SamOctaError
from samocta.core.files import FolderInUseError, atomic_write_bytes, folder_lock
from samocta.data import OCTA500, DatasetError, read_grey, write_grey
from samocta.model import AdapterError, LoRASam, PromptableSam, build_sam
from samocta.synth import write_octa500
from samocta.train import TrainConfig, TrainingError, read_history, train_fold


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Six small synthetic 3M subjects and random tiny-SAM weights in the official format."""
    return training_inputs(tmp_path_factory.mktemp("reliability"), n=6, seed=7)


@pytest.fixture
def data(base, tmp_path):
    """A private copy of the tree, free to damage."""
    shutil.copytree(base / "data", tmp_path / "data")
    return tmp_path / "data"


def _config(base: Path, data: Path, out: Path, **kw) -> TrainConfig:
    fields = dict(data=str(data), checkpoint=str(base / "tiny.pth"), epochs=1, batch_size=4, out=str(out), device="cpu")
    return TrainConfig(**{**fields, **kw})


def _train_args(base: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--preset", "paper", "--data", str(data), "--checkpoint", str(base / "tiny.pth"), "--epochs", "1", "--batch-size", "4",
            "--device", "cpu", "--quiet", "--out", str(out), *extra]


def _one_error_line(capsys, code: int, *words: str) -> str:
    """The run failed with exactly one ``error:`` line containing ``words``, and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _label(data: Path, task: str, sid: int) -> Path:
    folder = {"FAZ": "GT_FAZ", "RV": "GT_LargeVessel", "Capillary": "GT_Capillary", "Artery": "GT_Artery", "Vein": "GT_Vein"}[task]
    return data / "Label" / folder / f"{sid}.bmp"


def _projection(data: Path, layer: str, sid: int) -> Path:
    return data / "OCTA_3mm" / "Projection Maps" / f"OCTA({layer})" / f"{sid}.bmp"


# ----------------------------------------------------------------------------- 1. concurrent runs


def test_1_a_second_training_into_a_busy_folder_is_refused_with_the_holder(base, data, tmp_path, capsys):
    config = _config(base, data, tmp_path / "run")
    with folder_lock(config.fold_dir(), "a test"):
        with pytest.raises(FolderInUseError, match=r"in use by a test \(process \d+"):
            train_fold(config, progress=False)
        _one_error_line(capsys, main(_train_args(base, data, tmp_path / "run")), "in use", "choose another --out")
    assert not (config.fold_dir() / "metrics.csv").exists()
    train_fold(config, progress=False)  # free again once the holder is gone
    assert (config.fold_dir() / "last.pt").exists()


def _writer(path: str, tag: int, n: int) -> None:
    for i in range(n):
        payload = json.dumps({"writer": tag, "i": i, "pad": "x" * (1000 * (tag + 1))}).encode()
        atomic_write_bytes(path, payload)


def test_1_concurrent_writers_of_one_path_never_publish_a_torn_file(tmp_path):
    path = tmp_path / "shared.json"
    atomic_write_bytes(path, json.dumps({"writer": -1, "i": 0, "pad": ""}).encode())
    ctx = mp.get_context("fork")
    writers = [ctx.Process(target=_writer, args=(str(path), t, 200)) for t in range(4)]
    for w in writers:
        w.start()
    reads = bad = 0
    while any(w.is_alive() for w in writers):
        try:
            doc = json.loads(path.read_bytes())
            assert len(doc["pad"]) == 1000 * (doc["writer"] + 1) or doc["writer"] == -1
        except (ValueError, AssertionError):
            bad += 1
        reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0  # no writer failed either
    assert reads > 50 and bad == 0
    assert not list(tmp_path.glob(".shared.json.*"))  # no temporary file left behind


def test_1_a_full_disk_loses_nothing_and_says_what_to_do(base, data, tmp_path, capsys, monkeypatch):
    import samocta.core.files as files

    out = tmp_path / "full"
    real = files.atomic_write
    saved = []

    def no_space_at_epoch_2(path, write):
        if Path(path).name == "last.pt":
            if saved:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            real(path, write)
            saved.append(Path(path).read_bytes())
            return None
        return real(path, write)

    monkeypatch.setattr(files, "atomic_write", no_space_at_epoch_2)
    _one_error_line(capsys, main(_train_args(base, data, out, "--epochs", "2")), "No space left", "--resume")
    monkeypatch.setattr(files, "atomic_write", real)
    assert (out / "standard" / "last.pt").read_bytes() == saved[0]  # the last good checkpoint is intact
    assert main(_train_args(base, data, out, "--epochs", "2", "--resume")) == 0  # and the run goes on from it
    assert [r["epoch"] for r in read_history(out / "standard")] == [1, 2]
    # a write that fails half-way leaves the old file and no temporary behind
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def half(fh):
        fh.write(b"new but")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        files.atomic_write(target, half)
    assert target.read_bytes() == b"old" and not list(tmp_path.glob(".f.bin.*"))


# ----------------------------------------------------------------------------- 2. wrong labels


def test_2_inverted_rotated_and_empty_labels_are_reported(base, data, capsys):
    index = OCTA500(data, "3M")
    a, b, c = index.ids[:3]
    write_grey(_label(data, "RV", a), ~read_grey(_label(data, "RV", a)).astype(bool))
    for sid in (b, c):
        faz = read_grey(_label(data, "FAZ", sid)) > 0
        write_grey(_label(data, "FAZ", sid), np.rot90(faz).copy())
    code = main(["check-data", str(data), "--fov", "3M"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"GT_LargeVessel/{a}.bmp: the RV label covers" in out and "inverted" in out
    for sid in (b, c):  # rotated by 90 degrees: it fits the image only after the inverse rotation
        assert f"GT_FAZ/{sid}.bmp: the FAZ label lies on the dark centre of ILM_OPL only after 'rot270'" in out, out
    for sid in index.ids:
        write_grey(_label(data, "FAZ", sid), np.zeros((96, 96), bool))
    main(["check-data", str(data), "--fov", "3M"])
    assert capsys.readouterr().out.count("the FAZ label is empty") == len(index.ids)


def test_2_training_on_empty_labels_stops_before_the_first_step(base, data, tmp_path):
    index = OCTA500(data, "3M")
    for sid in index.ids:
        write_grey(_label(data, "FAZ", sid), np.zeros((96, 96), bool))
    config = _config(base, data, tmp_path / "empty")
    with pytest.raises(DatasetError, match="the FAZ label is empty"):
        train_fold(config, progress=False)
    assert not (config.fold_dir() / "metrics.csv").exists()


def test_2_empty_targets_are_counted_in_every_summary():
    from samocta.metrics import summarize

    rows = [{"task": "FAZ", "fov": "3M", "mode": "none", "dice": 1.0, "pred_pixels": 0, "target_pixels": 0},
            {"task": "FAZ", "fov": "3M", "mode": "none", "dice": 0.9, "pred_pixels": 80, "target_pixels": 90}]
    table = summarize(rows)
    assert table.loc[("FAZ", "3M", "none"), "empty_targets"] == 1


# ----------------------------------------------------------------------------- 3. unbounded prompts


def test_3_global_prompts_are_capped_with_a_warning_and_the_largest_components_kept():
    from scipy import ndimage

    from samocta.prompts import MAX_POINTS, PromptCapWarning, PromptSpec

    rng = np.random.default_rng(0)
    speckle = rng.random((304, 304)) < 0.2
    speckle[10:40, 10:40] = True  # one clearly largest component
    with pytest.warns(PromptCapWarning, match="largest components"):
        prompt = PromptSpec.paper("RV", "global")(speckle, np.random.default_rng(1))
    assert len(prompt) <= MAX_POINTS and np.array_equal(prompt.target, speckle)
    labels, _ = ndimage.label(speckle, np.ones((3, 3), bool))
    pos = prompt.coords[prompt.labels == 1].astype(int)
    assert labels[25, 25] in set(labels[pos[:, 1], pos[:, 0]].tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an ordinary label is far below the cap: no warning
        from samocta.synth import make_sample

        assert len(PromptSpec.paper("RV", "global")(make_sample("3M", 0).labels["RV"], np.random.default_rng(0))) < MAX_POINTS


# ----------------------------------------------------------------------------- 4. resume after the data changed


def test_4_resume_keeps_the_saved_split_and_names_subjects_that_are_gone(base, data, tmp_path):
    config = _config(base, data, tmp_path / "run")
    train_fold(config, progress=False)
    split = json.loads((config.fold_dir() / "split.json").read_text())
    write_octa500(data, "3M", n=9, seed=7, size=96, progress=False)  # more subjects arrive
    train_fold(_config(base, data, tmp_path / "run", epochs=1), resume=True, progress=False)
    assert json.loads((config.fold_dir() / "split.json").read_text()) == split
    gone = split["val"][0]
    for layer in ("FULL", "ILM_OPL", "OPL_BM"):
        _projection(data, layer, gone).unlink()
    with pytest.raises(TrainingError, match=rf"no longer under .*\[{gone}\]"):
        train_fold(config, resume=True, progress=False)


# ----------------------------------------------------------------------------- 5. raw tracebacks on the command line


def test_5_corrupt_run_files_on_resume(base, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train_args(base, data, out)) == 0
    capsys.readouterr()
    (out / "standard" / "last.pt").write_bytes(b"not a checkpoint")
    _one_error_line(capsys, main(_train_args(base, data, out, "--resume")), "last.pt: unreadable checkpoint", "delete it")
    (out / "standard" / "config.json").write_text("{ truncated")
    _one_error_line(capsys, main(_train_args(base, data, out, "--resume")), "config.json: unreadable run config")


@pytest.mark.parametrize("extra, words", [
    (["--batch-size", "0"], ["batch_size (--batch-size)", "1 to 1024"]),
    (["--lr", "0"], ["lr (--lr)", "above 0"]),
    (["--rank", "0"], ["rank (--rank)", "1 to 256"]),
    (["--split", "kfold", "--k", "3", "--fold", "5"], ["--fold", "0 .. 2"]),
    (["--device", "tpu"], ["device 'tpu'"]),
    (["--device", "cuda"], ["no CUDA GPU"]),
    (["--epochs", "0"], ["epochs (--epochs)", "at least 1"]),
    (["--batch-size", "-2"], ["batch_size (--batch-size)"]),
    (["--max-train", "0"], ["max_train (--max-train)", "at least 1"]),
    (["--fold", "-1"], ["fold (--fold)", "at least 0"]),
    (["--rank", "100000"], ["rank (--rank)", "1 to 256"]),
])
def test_5_6_7_bad_train_options_are_refused_before_any_work(base, data, tmp_path, capsys, extra, words):
    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _one_error_line(capsys, main(_train_args(base, data, tmp_path / "bad", *extra)), *words)
    assert not list(tmp_path.rglob("bad/**/config.json"))  # refused before the run wrote anything


def test_5_unwritable_output_and_out_naming_a_file(base, data, tmp_path, capsys):
    _one_error_line(capsys, main(_train_args(base, data, Path("/sys/samocta-run"))), "/sys/samocta-run", "--out")
    afile = tmp_path / "a-file"
    afile.write_text("x")
    _one_error_line(capsys, main(_train_args(base, data, afile)), str(afile), "--out")


@pytest.mark.parametrize("argv, words", [
    (["synth", "--out", "{tmp}/s", "--n", "0"], ["--n", "1 to 200"]),
    (["synth", "--out", "{tmp}/s", "--n", "-5"], ["--n", "1 to 200"]),
    (["pretrain-tiny", "--steps", "0", "--out", "{tmp}/p"], ["steps (--steps)", "at least 1"]),
    (["bench", "--variants", "bogus"], ["--variants", "bogus"]),
    (["evaluate", "--run", "{tmp}", "--modes", ","], ["--modes"]),
])
def test_6_nonsense_is_refused_with_the_allowed_range(tmp_path, capsys, argv, words):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    (tmp_path / "config.json").write_text("{}")  # an evaluate target, so that --modes is what fails
    _one_error_line(capsys, main(argv), *words)
    assert not (tmp_path / "s").exists() and not (tmp_path / "p" / "sam_tiny.safetensors").exists()


def test_5_checkpoints_with_wrong_entries_are_named(base, tmp_path, capsys):
    from samocta.model import CheckpointError

    state = torch.load(base / "tiny.pth", weights_only=True)
    shaped = dict(state, **{"mask_decoder.iou_token.weight": torch.zeros(3, 3)})
    torch.save(shaped, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"mask_decoder.iou_token.weight \(3, 3\) \(expected \(1, 128\)\)"):
        build_sam("tiny", tmp_path / "shape.pth")
    odd = dict(state, **{"mask_decoder.iou_token.weight": [1, 2, 3]})
    torch.save(odd, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="no tensors"):
        build_sam("tiny", tmp_path / "odd.pth")


def _bmp_claiming(path: Path, width: int, height: int) -> None:
    """A small BMP whose header claims ``width`` x ``height`` (what a reader sees before decoding)."""
    write_grey(path, np.zeros((8, 8), np.uint8))
    raw = bytearray(path.read_bytes())
    raw[18:26] = struct.pack("<ii", width, height)
    path.write_bytes(bytes(raw))


def test_5_7_huge_images_and_odd_names(data, capsys):
    sid, other = OCTA500(data, "3M").ids[:2]
    _bmp_claiming(_projection(data, "FULL", sid), 20000, 20000)
    with pytest.raises(DatasetError, match="larger than the 2048 px"):
        read_grey(_projection(data, "FULL", sid))
    _bmp_claiming(_projection(data, "FULL", other), 8000, 8000)
    with pytest.raises(DatasetError, match="8000 x 8000 px, larger than the 2048 px"):
        read_grey(_projection(data, "FULL", other))
    (_projection(data, "FULL", 10301).parent / "10301².bmp").write_bytes(b"x")
    index = OCTA500(data, "3M")
    assert any("10301²" in s and "ASCII digits" in s for s in index.stray)
    assert main(["check-data", str(data), "--fov", "3M"]) == 1
    assert "larger than the 2048 px" in capsys.readouterr().out


# ----------------------------------------------------------------------------- 8. resume from another spelling


def test_8_resume_from_the_same_folder_written_differently_and_from_a_moved_folder(base, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_fold(_config(base, data, Path("runs/t0")), progress=False)
    for spelling in ("./runs/t0/", str(tmp_path / "runs" / "t0")):
        train_fold(_config(base, data, Path(spelling)), resume=True, progress=False)
    shutil.move(tmp_path / "runs" / "t0", tmp_path / "moved")
    with pytest.raises(TrainingError, match="--lr 0.001 \\(now 0.0005\\)"):  # other options are still refused, by name
        train_fold(_config(base, data, tmp_path / "moved", lr=5e-4), resume=True, progress=False)
    result = train_fold(_config(base, data, tmp_path / "moved"), resume=True, progress=False)
    assert result.best_epoch == 1 and [r["epoch"] for r in read_history(result.run_dir)] == [1]


# ----------------------------------------------------------------------------- 9. cached checkpoints


def test_9_a_bad_cached_checkpoint_is_replaced_and_a_good_one_hashed_once(tmp_path, monkeypatch):
    import hashlib

    from test_model import _Server

    import samocta.model.download as download

    payload = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    server = _Server(payload)
    try:
        monkeypatch.setenv("SAMOCTA_CACHE", str(tmp_path))
        monkeypatch.setenv("SAMOCTA_CHECKPOINT_URL", server.url.rsplit("/", 1)[0])
        sha = hashlib.sha256(payload).hexdigest()
        monkeypatch.setitem(download.OFFICIAL, "vit_l", ("sam_test.pth", None, sha))
        (tmp_path / "sam_test.pth").write_bytes(b"\0" * len(payload))  # right size, wrong bytes
        path = download.download_checkpoint("vit_l", progress=False)
        assert path.read_bytes() == payload
        calls = []
        real = download.sha256_file
        monkeypatch.setattr(download, "sha256_file", lambda p: calls.append(p) or real(p))
        for _ in range(3):
            assert download.download_checkpoint("vit_l", progress=False) == path
        assert calls == []  # verified once, remembered with its size and time
    finally:
        server.close()


# ----------------------------------------------------------------------------- 10. data checks


def test_10_duplicate_ids_mixed_sizes_and_only_the_needed_labels(base, data, tmp_path):
    index = OCTA500(data, "3M")
    a, b = index.ids[:2]
    shutil.copy(_projection(data, "FULL", a), _projection(data, "FULL", a).with_name(f"0{a}.bmp"))
    assert any(f"two files for id {a}" in s for s in OCTA500(data, "3M").validate())
    _projection(data, "FULL", a).with_name(f"0{a}.bmp").unlink()
    # a broken capillary label does not block training on the FAZ
    _label(data, "Capillary", b).write_bytes(b"broken")
    train_fold(_config(base, data, tmp_path / "faz"), progress=False)
    # a subject of another size is found before the first step, not after an epoch
    for layer in ("FULL", "ILM_OPL", "OPL_BM"):
        write_grey(_projection(data, layer, b), np.zeros((80, 80), np.uint8))
    for task in ("FAZ", "RV", "Artery", "Vein"):
        write_grey(_label(data, task, b), np.zeros((80, 80), bool))
    config = _config(base, data, tmp_path / "sizes")
    with pytest.raises(DatasetError, match="different sizes|the FAZ label is empty"):
        train_fold(config, progress=False)
    assert not (config.fold_dir() / "metrics.csv").exists()


# ----------------------------------------------------------------------------- 11. the Python API


def test_11_the_api_refuses_what_cannot_be_right(base, tmp_path):
    from samocta.metrics import dice
    from samocta.prompts import PromptError, global_points

    model = PromptableSam(build_sam("tiny", base / "tiny.pth"))
    images = np.zeros((1, 64, 64, 3), np.uint8)
    with pytest.raises(InputError, match=r"multiply by 255"):
        model.embed(images.astype(np.float32) / 255)
    with pytest.raises(InputError, match="NaN"):
        model.embed(np.full((1, 64, 64, 3), np.nan, np.float32))
    emb = model.embed(images)
    with pytest.raises(InputError, match="finite"):
        model.decode(emb, [np.array([[np.nan, 3.0]], np.float32)], [np.array([1])])
    with pytest.raises(InputError, match="point labels"):
        model.decode(emb, [np.array([[3.0, 3.0]], np.float32)], [np.array([2])])
    nan_mask = np.full((16, 16), np.nan)
    with pytest.raises(PromptError, match="NaN"):
        global_points(nan_mask, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="NaN"):
        dice(nan_mask, np.zeros((16, 16), bool))
    lora = LoRASam(build_sam("tiny", base / "tiny.pth"), task="FAZ")
    path = tmp_path / "a.safetensors"
    lora.save_adapter(path)
    tensors, meta = LoRASam.read_adapter(path)
    meta.pop("digest")  # each poisoned file gets a digest of its own: its tensors are what is refused
    from samocta.core.files import save_safetensors
    from samocta.model.lora import adapter_digest

    before = {k: v.clone() for k, v in lora.adapter_state_dict().items()}
    # one finite tensor first: a loader that copied as it checked would change the model before refusing
    poisoned = {k: torch.full_like(v, float("nan")) for k, v in tensors.items()}
    first = sorted(poisoned)[0]
    poisoned[first] = tensors[first] + 1.0
    save_safetensors(poisoned, tmp_path / "nan.safetensors", {**meta, "digest": adapter_digest(poisoned, meta)})
    with pytest.raises(AdapterError, match="NaN"):
        lora.load_adapter(tmp_path / "nan.safetensors")
    ints = {k: v.to(torch.int32) for k, v in tensors.items()}
    save_safetensors(ints, tmp_path / "int.safetensors", {**meta, "digest": adapter_digest(ints, meta)})
    with pytest.raises(AdapterError, match="int32"):
        lora.load_adapter(tmp_path / "int.safetensors")
    assert all(torch.equal(before[k], v) for k, v in lora.adapter_state_dict().items())  # nothing half-loaded


# ----------------------------------------------------------------------------- 12. the click state


def test_12_the_click_state_refuses_points_that_are_not_on_the_image():
    from samocta.decode import PromptState

    state = PromptState(size=(304, 304))
    for x, y in ((float("nan"), 3), (3, float("inf")), (-1, 5), (5, 400)):
        with pytest.raises(ValueError):
            state.add(x, y, 1)
    state.add(10.5, 20.5, 0)
    assert json.loads(state.to_json()) == {"points": [[10.5, 20.5]], "labels": [0]}
    with pytest.raises(ValueError, match="label"):
        PromptState.from_defaults([(1, 1, 5)])
    with pytest.raises(ValueError, match="finite"):
        PromptState.from_defaults([(float("nan"), 1, 1)])


# ----------------------------------------------------------------------------- 13. messages


def test_13_messages_say_only_what_is_true(base, data, tmp_path, monkeypatch):
    import samocta.train.losses as losses

    real = losses.loss_for_task
    monkeypatch.setattr(losses, "loss_for_task", lambda task, **kw: (lambda p, t: real(task, **kw)(p, t) * float("nan")))
    with pytest.raises(TrainingError) as err:
        train_fold(_config(base, data, tmp_path / "nan"), progress=False)
    assert "none was written yet" in str(err.value) and "checkpoint no checkpoint" not in str(err.value)
    from samocta.core.files import save_safetensors
    from samocta.model.lora import adapter_digest

    save_safetensors({"x": torch.zeros(2)}, tmp_path / "bare.safetensors", {"digest": adapter_digest({"x": torch.zeros(2)}, {})})
    with pytest.raises(AdapterError) as err:
        LoRASam(build_sam("tiny", base / "tiny.pth")).load_adapter(tmp_path / "bare.safetensors")
    assert "lacks" in str(err.value) and "made for ?" not in str(err.value)
    assert issubclass(AdapterError, SamOctaError)
