"""``python -m samocta bench``: speed and memory of each optimisation, alone and together, in one process.

Variants: ``baseline`` (fp32, SAM's eager attention, no checkpointing, as the reference code),
``sdpa``, ``checkpointing``, ``amp`` (bf16 where supported, else fp16; CUDA, or bf16 on a CPU that
is asked for it), ``half_frozen`` (amp with the encoder's frozen weights stored in the amp dtype)
and ``all``. For each: image-encoder forward time, LoRA training-step time at
batch 1, the largest batch that fits (CUDA only), images per second, peak memory, and the ratio to
the baseline measured in the same run. Ratios are only ever taken within one run on one device.
"""

from __future__ import annotations

import gc
import platform
import resource
import statistics
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from samocta.core.errors import InputError
from samocta.model.build import resolve_device
from samocta.model.speed import apply_speed_settings

if TYPE_CHECKING:
    import pandas as pd

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# the switches of each variant, as TrainConfig spells them
_LEVERS = {
    "baseline": {},
    "sdpa": {"sdpa": "on"},
    "checkpointing": {"grad_checkpointing": "on"},
    "amp": {"amp": "on"},
    "half_frozen": {"amp": "on", "half_frozen": "on"},
    "all": {"amp": "on", "half_frozen": "on", "sdpa": "on", "grad_checkpointing": "on"},
}
VARIANTS = tuple(_LEVERS)


def _model(model_type: str, variant: str, device: torch.device):
    """A LoRA model with the variant's levers applied by the helper training uses, and its precision."""
    from samocta.model import LoRASam, build_sam

    sam = build_sam(model_type, pretrained=False) if model_type == "tiny" else build_sam(model_type)
    model = LoRASam(sam, rank=4).to(device)
    levers = {"amp": "off", "grad_checkpointing": "off", "sdpa": "off", "half_frozen": "off", **_LEVERS[variant]}
    return model, apply_speed_settings(model, device, **levers)


def _median(fn, repeat: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_variant(model_type: str, variant: str, device: torch.device, repeat: int, warmup: int, max_batch: int) -> dict[str, Any]:
    """Time one variant; returns a row of figures."""
    from samocta.train.losses import dice_loss

    model, precision = _model(model_type, variant, device)
    size = model.img_size
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    x, _, _ = model.preprocess(image)
    coords = np.array([[[size / 2, size / 2], [size / 3, size / 3]]], np.float32)
    labels = np.array([[1, 0]])
    target = torch.zeros(1, 1, size, size, device=device)
    target[..., size // 3 : size // 2, size // 3 : size // 2] = 1
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    scaler = precision.scaler(device)  # fp16 trains with a grad scaler, as train_fold does
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def forward():
        with torch.inference_mode(), precision.context(device):
            model.sam.image_encoder(x)

    def step(batch: int = 1):
        model.train()
        images = np.repeat(image, batch, axis=0)
        with precision.context(device):
            out = model(images, np.repeat(coords, batch, 0), np.repeat(labels, batch, 0))
        loss = dice_loss(out.logits.float(), target.expand(batch, -1, -1, -1))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    fwd = _median(forward, repeat, warmup, device)
    train = _median(step, repeat, warmup, device)
    row = {"variant": variant, "encoder forward s": fwd, "train step s (batch 1)": train,
           "train images/s": 1 / train, "inference images/s": 1 / fwd, "peak memory MiB": _peak_mb(device)}
    if device.type == "cuda":
        largest, batch = 1, 2
        while batch <= max_batch:
            try:
                step(batch)
                largest, batch = batch, batch * 2
            except torch.OutOfMemoryError:
                break
            finally:
                gc.collect()
                torch.cuda.empty_cache()
        row["largest batch"] = largest
    gc.collect()
    return row


def run(model_type: str = "tiny", device: str = "cpu", quick: bool = False, variants: Sequence[str] = VARIANTS,
        max_batch: int = 64) -> "pd.DataFrame":
    """All variants in one process; returns a DataFrame with ratios to the baseline."""
    import pandas as pd

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise InputError(f"--variants must list some of {','.join(VARIANTS)}; got {','.join(variants) or 'none'}")
    dev = resolve_device(device)
    repeat, warmup = (2, 1) if quick else (10, 2)
    rows = [bench_variant(model_type, v, dev, repeat, warmup, max_batch) for v in variants]
    table = pd.DataFrame(rows).set_index("variant")
    if "baseline" in table.index:
        table["forward speed-up"] = table.loc["baseline", "encoder forward s"] / table["encoder forward s"]
        table["train speed-up"] = table.loc["baseline", "train step s (batch 1)"] / table["train step s (batch 1)"]
    return table


def describe_machine(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, torch {torch.__version__}"
    cpu = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def extras(repeat: int = 10) -> dict[str, float]:
    """The other figures of the project, in milliseconds: global prompts on a 400 x 400 mask with
    hundreds of components, all metrics of one 400 x 400 pair, and click-to-mask with the tiny SAM."""
    from samocta.metrics import all_metrics
    from samocta.model import PromptableSam, build_sam
    from samocta.prompts import global_points
    from samocta.synth import make_sample

    sample = make_sample("6M", 0)
    rng = np.random.default_rng(0)
    mesh = sample.labels["Capillary"] & (rng.random((400, 400)) > 0.2)
    rv = sample.labels["RV"]
    pred = np.roll(rv, 1, axis=0)

    def ms(fn) -> float:
        return 1e3 * _median(fn, repeat, 1, torch.device("cpu"))

    model = PromptableSam(build_sam("tiny")).eval()
    image = sample.image[None, :304, :304]
    with torch.inference_mode():
        emb = model.embed(image)
        click = ms(lambda: model.decode(emb, np.array([[[150.5, 150.5]]], np.float32), np.array([[1]])))
    return {
        "global prompts, 400 px mesh (ms)": ms(lambda: global_points(mesh, 1, 1, rng)),
        "all metrics, 400 px RV pair (ms)": ms(lambda: all_metrics(pred, rv)),
        "click to mask, tiny SAM (ms)": click,
    }
