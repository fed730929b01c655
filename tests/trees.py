"""Small OCTA-500 trees for tests, in either layout, built from simple random vessel drawings.

Deliberately independent of ``samocta.synth`` so that the loader is tested on its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage.draw import disk, line

from samocta.data import LAYERS, TASK_FOLDERS, write_grey

LAYOUTS = {
    "official": ({"3M": "OCTA_3mm", "6M": "OCTA_6mm"}, "Projection Maps"),
    "samocta": ({"3M": "OCTA_3M", "6M": "OCTA_6M"}, "ProjectionMaps"),
}


def toy_sample(seed: int, size: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Projections (name -> uint8) and labels (task -> bool) with an asymmetric vessel pattern."""
    rng = np.random.default_rng(seed)
    artery = np.zeros((size, size), bool)
    vein = np.zeros((size, size), bool)
    for target in (artery, vein, artery, vein):
        r0, c0 = rng.integers(0, size, 2)
        r1, c1 = rng.integers(0, size, 2)
        rr, cc = line(r0, c0, r1, c1)
        target[rr, cc] = True
        target[np.clip(rr + 1, 0, size - 1), cc] = True
    # an L-shaped vessel near one corner breaks every symmetry the orientation check looks for
    artery[2 : size // 2, 3:5] = True
    artery[2:4, 3 : size // 3] = True
    # the FAZ is avascular: one disk that no vessel crosses
    faz = np.zeros((size, size), bool)
    faz[disk((size // 2, size // 2), size // 10, shape=faz.shape)] = True
    artery &= ~faz
    vein &= ~faz
    rv = artery | vein
    capillary = rv | (rng.random((size, size)) < 0.3)
    capillary &= ~faz
    labels = {"RV": rv, "FAZ": faz, "Capillary": capillary, "Artery": artery, "Vein": vein}
    base = 60 + 150 * rv + 40 * capillary + rng.normal(0, 10, (size, size))
    projections = {
        "FULL": np.clip(base, 0, 255).astype(np.uint8),
        "ILM_OPL": np.clip(base * 0.9, 0, 255).astype(np.uint8),
        "OPL_BM": np.clip(base * 0.6 + 30, 0, 255).astype(np.uint8),
    }
    return projections, labels


def write_palette_bmp(path: Path, array: np.ndarray, rng: np.random.Generator) -> None:
    """Write an 8-bit palette BMP whose indices are NOT the grey values (a shuffled palette)."""
    perm = rng.permutation(256)  # index i shows grey perm[i]
    inverse = np.argsort(perm)
    img = Image.fromarray(inverse[array].astype(np.uint8), mode="P")
    img.putpalette(np.repeat(perm.astype(np.uint8), 3).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="BMP")


def make_tree(
    root: Path,
    layout: str = "official",
    fov: str = "3M",
    ids: list[int] | None = None,
    size: int = 64,
    suffix: str = ".bmp",
    palette: bool = False,
    label_values: tuple[int, int] = (0, 255),
) -> dict[int, tuple[dict, dict]]:
    """Write a tree and return id -> (projections, labels) as written."""
    ids = ids if ids is not None else ([10301, 10302, 10441, 10451] if fov == "3M" else [10001, 10002, 10181, 10201])
    fov_dirs, proj = LAYOUTS[layout]
    fov_dir = root / fov_dirs[fov]
    label_dir = root / "Label" if layout == "official" else fov_dir
    rng = np.random.default_rng(123)
    written = {}
    for sid in ids:
        projections, labels = toy_sample(sid, size)
        written[sid] = (projections, labels)
        for layer in LAYERS:
            path = fov_dir / proj / f"OCTA({layer})" / f"{sid}{suffix}"
            if palette:
                write_palette_bmp(path, projections[layer], rng)
            else:
                write_grey(path, projections[layer])
        for task, folder in TASK_FOLDERS.items():
            lo, hi = label_values
            write_grey(label_dir / folder / f"{sid}{suffix}", np.where(labels[task], hi, lo).astype(np.uint8))
    return written
