"""LoRA on SAM's fused qkv projections, as SAM-OCTA places it, and the adapter-only model.

LoRA (Hu et al., ICLR 2022) adds a trainable low-rank update ``scale * B A`` to a frozen weight.
SAM-OCTA puts it on the query and value parts of every image-encoder block's fused ``qkv``
projection (the key part is left alone), rank 4, scale 1, A Kaiming-uniform and B zero so that
training starts from SAM exactly. Unlike the reference code the update is added out of place,
which keeps autograd, checkpointing and quantisation safe.
"""

from __future__ import annotations

import json
import math
import os
import typing
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from samocta.core.errors import SamOctaError
from samocta.core.vocabulary import FOVS, TASKS, check_fov_mm, parse_channels
from samocta.model.build import MODEL_TYPES, build_sam, input_size_problem, resolve_checkpoint, resolve_device
from samocta.model.promptable import MASK_RULES, PromptableSam


class AdapterError(SamOctaError, ValueError):
    """An adapter file does not fit the model it is loaded into."""


# what an adapter must say about the model it belongs to
ADAPTER_KEYS = ("model_type", "rank", "alpha", "dropout", "train_decoder", "mask_rule", "task")
# and what it records of how it was trained (not needed to load it)
TRAINED_WITH = ("fov", "prompt_mode", "no_prompt_fraction", "image_size", "fov_mm", "channels", "dataset", "click_feedback",
                "session_clicks", "label_stats", "mask_stats")
# The rules of those fields: what a training may write, checked whenever an adapter is read. The run
# configuration (``samocta.config.TrainConfig``) declares its options with these same bounds.
RANK_RANGE = (1, 256)
DROPOUT_RANGE = (0.0, 0.9)
# what an adapter can be trained with: the paper's prompt modes, or simulated corrective-click sessions
TrainMode = Literal["none", "global", "local", "clicks"]
TRAIN_MODES: tuple[str, ...] = typing.get_args(TrainMode)
MAX_SESSION_CLICKS = 20  # a session decodes once per click: the cost of a training sample grows with it
# what the training labels (label_stats), and the adapter's own prompt-free masks of its validation subjects
# (mask_stats), looked like, per subject (min, median, max): the share of the scan covered and, with the scans'
# width in mm, the vessels' mean width or the FAZ's area; prediction compares each new mask with them
# (``samocta.predict.review``)
STATS = ("area_pct", "mean_width_um", "faz_area_mm2")


def parse_stats(text: str | None, key: str = "label_stats") -> dict[str, tuple[float, float, float]]:
    """An adapter's ``label_stats`` or ``mask_stats`` record: measurement -> (min, median, max) over subjects.

    Raises:
        ValueError: not a JSON object of known measurements, each three finite, non-negative, ascending numbers.
    """
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"{key} {text[:60]!r}: not JSON") from None
    if not isinstance(raw, dict) or set(raw) - set(STATS):
        raise ValueError(f"{key}: an object of some of {', '.join(STATS)}")
    stats = {}
    for name, value in raw.items():
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                    and math.isfinite(v) and v >= 0 for v in value)
                and value[0] <= value[1] <= value[2]):
            raise ValueError(f"{key} {name}: three numbers min <= median <= max, 0 or more; got {value!r}")
        stats[name] = (float(value[0]), float(value[1]), float(value[2]))
    return stats


def adapter_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 of an adapter's metadata (but its own ``digest``) and tensors (names, dtypes, shapes, bytes).

    Written into the adapter by ``save_adapter``: an adapter whose metadata or weights were edited
    afterwards (another alpha, another task on the same weights) no longer matches it and is refused.
    """
    import hashlib

    h = hashlib.sha256()
    for key in sorted(metadata):
        if key != "digest":
            h.update(f"{key}={metadata[key]}\n".encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _metadata_problems(meta: dict[str, str]) -> str | None:
    """The first field of an adapter's metadata that no training writes, in words (None: all are sound)."""
    import re

    def number(key: str, kind: type) -> float:
        value = kind(meta[key])
        if not math.isfinite(value):
            raise ValueError(f"{key} {meta[key]!r} is not a finite number")
        return value

    if meta["model_type"] not in MODEL_TYPES:
        return f"model_type {meta['model_type']!r}: one of {', '.join(MODEL_TYPES)}"
    rank, alpha, dropout = number("rank", int), number("alpha", float), number("dropout", float)
    if not RANK_RANGE[0] <= rank <= RANK_RANGE[1]:
        return f"rank (--rank) must be {RANK_RANGE[0]} to {RANK_RANGE[1]}; got {rank}"
    if not alpha > 0:
        return f"alpha (--alpha) must be above 0; got {alpha}"
    if not DROPOUT_RANGE[0] <= dropout <= DROPOUT_RANGE[1]:
        return f"dropout (--lora-dropout) must be {DROPOUT_RANGE[0]:g} to {DROPOUT_RANGE[1]:g}; got {dropout}"
    if meta["train_decoder"] not in ("True", "False"):
        return f"train_decoder {meta['train_decoder']!r}: True or False"
    if meta["mask_rule"] not in MASK_RULES:
        return f"mask_rule {meta['mask_rule']!r}: one of {', '.join(MASK_RULES)}"
    if meta["task"] and meta["task"] not in TASKS:
        return f"task {meta['task']!r}: one of {', '.join(TASKS)}"
    size = int(meta["img_size"]) if meta.get("img_size") else None
    problem = input_size_problem(meta["model_type"], size)
    if problem:
        return problem
    if meta.get("fov_mm"):
        check_fov_mm(meta["fov_mm"], "fov_mm")
    parse_channels(meta.get("channels") or "auto")
    image_size = meta.get("image_size")
    if image_size is not None and not (re.fullmatch(r"(\d{2,4})x(\d{2,4})", image_size)
                                       and all(16 <= int(v) <= 2048 for v in image_size.split("x"))):
        return f"image_size {image_size!r}: the training images' H x W, 16 to 2048 px a side"
    if meta.get("fov") and meta["fov"] not in FOVS and not re.fullmatch(r"unknown|\d{1,2}(\.\d+)?M", meta["fov"]):
        return f"fov {meta['fov']!r}: one of {', '.join(FOVS)}, a width such as 4.5M, or unknown"
    if meta.get("prompt_mode") and meta["prompt_mode"] not in TRAIN_MODES:
        return f"prompt_mode {meta['prompt_mode']!r}: one of {', '.join(TRAIN_MODES)}"
    if meta.get("fine") not in (None, "True", "False"):
        return f"fine {meta['fine']!r}: True or False"
    if meta.get("click_feedback") not in (None, "True", "False"):
        return f"click_feedback {meta['click_feedback']!r}: True or False"
    if meta.get("session_clicks") is not None and not (meta["session_clicks"].isdigit()
                                                       and 1 <= int(meta["session_clicks"]) <= MAX_SESSION_CLICKS):
        return f"session_clicks {meta['session_clicks']!r}: 1 to {MAX_SESSION_CLICKS}"
    parse_stats(meta.get("label_stats"), "label_stats")
    parse_stats(meta.get("mask_stats"), "mask_stats")
    return None


def check_adapter_metadata(meta: dict[str, str], path: str | os.PathLike) -> None:
    """Check an adapter's metadata by the rules a training writes it with, before a model is built from it.

    Raises:
        AdapterError: a field no training writes (a rank of 0 or 100,000, dropout 2, task "Retina",
            an image size "0x0", a width in mm out of range ...), naming the file and the field.
    """
    try:
        problem = _metadata_problems(meta)
    except KeyError as exc:
        problem = f"{exc.args[0]!r} missing or not a known value"
    except ValueError as exc:  # a number that is none, and the vocabulary's own refusals, each naming the field
        problem = str(exc)
    if problem:
        raise AdapterError(f"{path}: the adapter's metadata is not what a training writes ({problem}); use the adapter as "
                           "its training wrote it")


class LoRALinear(nn.Module):
    """A frozen fused ``qkv`` Linear with low-rank updates on its q and v thirds.

    ``y = W x + b + scale * [B_q A_q x, 0, B_v A_v x]`` with ``scale = alpha / rank``.

    Args:
        base: the ``nn.Linear(dim, 3 * dim)`` to wrap; its weights stay frozen.
        rank: r > 0.
        alpha: scaling numerator; default ``rank`` (scale 1, as the reference).
        dropout: dropout on the LoRA input.
    """

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {rank}")
        if base.out_features != 3 * base.in_features:
            raise ValueError(f"expected a fused qkv Linear (d -> 3d), got {base.in_features} -> {base.out_features}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        dim = base.in_features
        self.rank, self.alpha = rank, float(rank if alpha is None else alpha)
        self.scale = self.alpha / rank
        # on the base's device (a model already on a GPU stays there), always fp32: the trained weights
        # keep full precision even when the frozen ones are stored in half precision
        device = base.weight.device
        self.lora_q_A = nn.Linear(dim, rank, bias=False, device=device)
        self.lora_q_B = nn.Linear(rank, dim, bias=False, device=device)
        self.lora_v_A = nn.Linear(dim, rank, bias=False, device=device)
        self.lora_v_B = nn.Linear(rank, dim, bias=False, device=device)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for a in (self.lora_q_A, self.lora_v_A):
            nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
        for b in (self.lora_q_B, self.lora_v_B):
            nn.init.zeros_(b.weight)

    def delta_weight(self) -> torch.Tensor:
        """The update ``(3 d, d)`` the adapters add to the frozen weight."""
        dq = self.lora_q_B.weight @ self.lora_q_A.weight
        dv = self.lora_v_B.weight @ self.lora_v_A.weight
        return self.scale * torch.cat([dq, torch.zeros_like(dq), dv], dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        h = self.dropout(x)
        dq = self.lora_q_B(self.lora_q_A(h))
        dv = self.lora_v_B(self.lora_v_A(h))
        return out + self.scale * torch.cat([dq, torch.zeros_like(dq), dv], dim=-1)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the frozen weight (faster inference; same outputs)."""
        if not self.merged:
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo ``merge``."""
        if self.merged:
            self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, merged={self.merged}"


class LoRASam(PromptableSam):
    """SAM with LoRA in every image-encoder block; everything else frozen (optionally the decoder trains).

    Args:
        sam: from ``build_sam``.
        rank: LoRA rank (the paper's code: 4).
        alpha: LoRA alpha; default ``rank``.
        dropout: LoRA dropout.
        train_decoder: also train the mask decoder (SAMed does; SAM-OCTA does not).
        base_sha256: the SHA-256 of the base checkpoint, recorded in saved adapters.
        mask_rule: which decoder output is the mask (``MASK_RULES``); trained, scored and saved with it.
        task: the task the adapter is trained for (None: not tied to a task), recorded and checked.
        fine: draw the selected mask at the images' own pixels (``samocta.model.fine``), recorded and checked.
    """

    def __init__(
        self,
        sam: nn.Module,
        rank: int = 4,
        alpha: float | None = None,
        dropout: float = 0.0,
        train_decoder: bool = False,
        base_sha256: str | None = None,
        mask_rule: str = "most_confident",
        task: str | None = None,
        fine: bool = False,
    ) -> None:
        super().__init__(sam, mask_rule)
        for p in sam.parameters():
            p.requires_grad_(False)
        for block in sam.image_encoder.blocks:
            block.attn.qkv = LoRALinear(block.attn.qkv, rank, alpha, dropout)
        if fine:  # trained with LoRA, saved in the adapter (its tensors are named fine_path.* inside sam)
            from samocta.model.fine import FinePath

            sam.fine_path = FinePath(sam.mask_decoder.transformer_dim // 8)
        self.rank, self.alpha, self.dropout_p = rank, float(rank if alpha is None else alpha), float(dropout)
        self.train_decoder = train_decoder
        if train_decoder:
            for p in sam.mask_decoder.parameters():
                p.requires_grad_(True)
        self.base_sha256 = base_sha256
        self.task = task
        # how the adapter was trained (FoV, prompt mode, no-prompt share), recorded for whoever uses it
        self.trained_with: dict[str, str] = {}

    @property
    def lora_layers(self) -> list[LoRALinear]:
        return [block.attn.qkv for block in self.sam.image_encoder.blocks]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained tensors, keyed by their names inside ``sam`` (no ``module.`` prefixes)."""
        names = {id(p): n for n, p in self.sam.named_parameters()}
        return {names[id(p)]: p.detach().cpu().contiguous() for p in self.trainable_parameters()}

    def adapter_metadata(self) -> dict[str, str]:
        from samocta import __version__

        return {
            "model_type": self.model_type,
            "rank": str(self.rank),
            "alpha": str(self.alpha),
            "dropout": str(self.dropout_p),
            "train_decoder": str(self.train_decoder),
            "mask_rule": self.mask_rule,
            "task": self.task or "",
            "img_size": str(self.img_size),
            "fine": str(self.fine_path is not None),
            "base_sha256": self.base_sha256 or "",
            "samocta_version": __version__,
            **self.trained_with,
        }

    def save_adapter(self, path: str | os.PathLike) -> None:
        """Write the trained tensors as safetensors with metadata, atomically."""
        from samocta.core.files import save_safetensors

        if any(layer.merged for layer in self.lora_layers):
            raise AdapterError("unmerge() the LoRA layers before saving the adapter")
        tensors, meta = self.adapter_state_dict(), self.adapter_metadata()
        save_safetensors(tensors, path, metadata={**meta, "digest": adapter_digest(tensors, meta)})

    @staticmethod
    def read_adapter(path: str | os.PathLike, require_digest: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The tensors and metadata of an adapter file, its digest checked.

        Args:
            require_digest: refuse a file without a digest (every caller but the re-save from a run,
                ``python -m samocta resave-adapter``, which takes the tensors alone and nothing of the metadata).

        Raises:
            AdapterError: a missing or unreadable file, no digest, or metadata or weights that no
                longer match it.
        """
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise AdapterError(f"adapter not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:
            raise AdapterError(f"{path}: not a readable safetensors adapter ({exc})") from exc
        if "digest" not in meta and require_digest:
            # a check the file could switch off by leaving its digest out would be no check
            raise AdapterError(f"{path} carries no digest, so nothing shows that its metadata (task, LoRA scale, input "
                               "side, scan width) is what its training wrote; write it again from its run folder: "
                               "python -m samocta resave-adapter RUN")
        if "digest" in meta and adapter_digest(tensors, meta) != meta["digest"]:
            raise AdapterError(f"{path}: its metadata or weights were changed after training (they no longer match the "
                               "digest it was written with); use the adapter as its training wrote it")
        return tensors, meta

    @classmethod
    def from_adapter(
        cls, path: str | os.PathLike, checkpoint: str | os.PathLike | None = None, defaults: dict[str, str] | None = None
    ) -> "LoRASam":
        """The model an adapter was trained on, rebuilt from the adapter's metadata, with the adapter loaded.

        Args:
            path: an adapter written by ``save_adapter``.
            checkpoint: the base checkpoint as ``resolve_checkpoint`` takes it (None: the shipped
                tiny weights; the official types need a path, "download" or "random").
            defaults: values for metadata keys the file lacks (see ``load_adapter``).
        """
        _, meta = cls.read_adapter(path)
        meta = {**(defaults or {}), **meta}
        missing = [k for k in ADAPTER_KEYS if k not in meta]
        if missing:
            raise AdapterError(f"{path}: the adapter's metadata lacks {missing}; it cannot say which model it belongs to")
        check_adapter_metadata(meta, path)
        weights, sha = resolve_checkpoint(meta["model_type"], checkpoint)
        # adapters written before the input side was recorded ran at the tiny SAM's default side
        size = int(meta["img_size"]) if meta.get("img_size") and meta["model_type"] == "tiny" else None
        model = cls(
            build_sam(meta["model_type"], weights, pretrained=weights is not None, img_size=size), int(meta["rank"]), float(meta["alpha"]),
            float(meta["dropout"]), meta["train_decoder"] == "True", base_sha256=sha, mask_rule=meta["mask_rule"],
            task=meta["task"] or None, fine=meta.get("fine") == "True",
        )
        model.trained_with = {k: meta[k] for k in TRAINED_WITH if k in meta}
        model.load_adapter(path, defaults)
        return model

    def load_adapter(self, path: str | os.PathLike, defaults: dict[str, str] | None = None) -> dict[str, str]:
        """Load an adapter saved by ``save_adapter``; refuse one that does not fit this model.

        Refused: another model type, rank, alpha, dropout, decoder setting, mask rule, task, input side, fine
        path or base checkpoint, and any load into merged LoRA layers (the update would be applied twice).

        Args:
            path: the adapter file.
            defaults: values for metadata keys the file lacks (adapters written before a key
                existed; e.g. ``{"mask_rule": "single", "task": "FAZ"}`` from the run's config).

        Returns:
            the adapter's metadata.
        """
        if any(layer.merged for layer in self.lora_layers):
            raise AdapterError(f"cannot load {path} into a merged model: call unmerge() first, or load before merge()")
        tensors, meta = self.read_adapter(path)
        meta = {**(defaults or {}), **meta}
        missing = [k for k in ADAPTER_KEYS if k not in meta]
        if missing:
            raise AdapterError(
                f"{path}: the adapter's metadata lacks {missing}; pass them as defaults (e.g. from the run's config.json)"
            )
        check_adapter_metadata(meta, path)
        mine = self.adapter_metadata()
        if meta["model_type"] != self.model_type:
            raise AdapterError(f"{path} was made for {meta['model_type']}, this model is {self.model_type}")
        differ = []
        for key in ("rank", "alpha", "dropout"):
            if float(meta[key]) != float(mine[key]):
                differ.append(f"{key} {meta[key]} (this model: {mine[key]})")
        for key in ("train_decoder", "mask_rule", "task") + (("img_size",) if meta.get("img_size") else ()):
            if meta[key] != mine[key]:
                differ.append(f"{key} {meta[key] or 'none'!r} (this model: {mine[key] or 'none'!r})")
        if meta.get("fine", "False") != mine["fine"]:  # adapters from before the path had none
            differ.append(f"fine {meta.get('fine', 'False')!r}, the fine path (this model: {mine['fine']!r})")
        if differ:
            raise AdapterError(
                f"{path} does not fit this model: {'; '.join(differ)}. Build the model the adapter was trained "
                f"with, e.g. LoRASam.from_adapter(path, checkpoint)"
            )
        theirs_sha = meta.get("base_sha256", "")
        if theirs_sha and self.base_sha256 and theirs_sha != self.base_sha256:
            raise AdapterError(
                f"{path} was trained on the {self.model_type} checkpoint with SHA-256 {theirs_sha[:12]}..., "
                f"this model was built from {self.base_sha256[:12]}..."
            )
        self.set_adapter_tensors(tensors, path)
        # how the loaded adapter was trained (FoV, image size, channels, ...) is now this model's
        self.trained_with = {**self.trained_with, **{k: meta[k] for k in TRAINED_WITH if k in meta}}
        return meta

    def set_adapter_tensors(self, tensors: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
        """Copy an adapter's trained tensors into this model, all checked before any is copied.

        Raises:
            AdapterError: other tensor names or shapes than this model's, integer or non-finite values
                (naming ``path``).
        """
        expected = self.adapter_state_dict()
        if set(tensors) != set(expected):
            raise AdapterError(f"{path}: tensor names do not match this model ({len(tensors)} vs {len(expected)})")
        params = dict(self.sam.named_parameters())
        for name, value in tensors.items():  # check everything before changing anything
            if value.shape != params[name].shape:
                raise AdapterError(f"{path}: {name} has shape {tuple(value.shape)}, expected {tuple(params[name].shape)}")
            if not value.is_floating_point():
                raise AdapterError(f"{path}: {name} holds {value.dtype} values; an adapter holds floating-point weights")
            if not bool(torch.isfinite(value).all()):
                raise AdapterError(f"{path}: {name} has NaN or infinite values (the run that wrote it diverged); use another epoch's adapter")
        with torch.no_grad():
            for name, value in tensors.items():
                params[name].copy_(value)

    def merge(self) -> None:
        """Merge every LoRA layer into its frozen weight."""
        for layer in self.lora_layers:
            layer.merge()

    def unmerge(self) -> None:
        for layer in self.lora_layers:
            layer.unmerge()


def describe_adapter(path: str | os.PathLike) -> str:
    """One JSON line with an adapter file's metadata and size (for notebooks and the CLI)."""
    tensors, meta = LoRASam.read_adapter(path)
    meta = dict(meta, tensors=len(tensors), parameters=sum(t.numel() for t in tensors.values()))
    return json.dumps(meta)


def build_model(config, device: str | torch.device | None = None):
    """The LoRA model a run configuration describes, on its device.

    Args:
        config: a ``samocta.config.TrainConfig`` (or anything with its ``model``, ``checkpoint``,
            ``rank``, ``alpha``, ``lora_dropout``, ``train_decoder``, ``mask_rule``, ``task``, ``device``
            and optionally ``fine``).
        device: default the config's.

    Returns:
        a ``LoRASam`` with the checkpoint's weights (whose SHA-256 its adapters record), the
        config's LoRA settings, mask rule and task.
    """
    weights, sha = resolve_checkpoint(config.model, config.checkpoint)
    size = getattr(config, "input_size", None)
    sam = build_sam(config.model, weights, pretrained=weights is not None, img_size=size if config.model == "tiny" else None)
    model = LoRASam(sam, config.rank, config.alpha, config.lora_dropout, config.train_decoder, base_sha256=sha,
                    mask_rule=config.mask_rule, task=config.task, fine=getattr(config, "fine", False))
    model.trained_with = {"prompt_mode": config.prompt_mode, "no_prompt_fraction": str(config.no_prompt_fraction),
                          "channels": config.channels, **({"fov": config.fov} if config.fov else {})}
    if config.prompt_mode == "clicks":  # decoded everywhere as its sessions were: previous logits fed back or not
        from samocta.model.promptable import takes_logits

        model.trained_with.update({"click_feedback": str(takes_logits(model)), "session_clicks": str(config.session_clicks)})
    return model.to(resolve_device(config.device if device is None else device))
