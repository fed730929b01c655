"""Check a built wheel: it holds every module of the package's source tree (each stage's folder), the tiny
SAM's weights with their SHA-256 file and the click canvas, and declares no exact torch, torchvision or
numpy pin (a runtime keeps its own)."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "samocta"


def main(path: str) -> int:
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        weights, recorded = "samocta/assets/sam_tiny.safetensors", "samocta/assets/sam_tiny.sha256"
        modules = sorted(p.relative_to(SOURCE.parent).as_posix() for p in SOURCE.rglob("*.py"))
        missing = [n for n in (weights, recorded, "samocta/assets/click_canvas.js", *modules) if n not in names]
        if missing:
            print(f"error: {path} lacks {missing}", file=sys.stderr)
            return 1
        if hashlib.sha256(wheel.read(weights)).hexdigest() != wheel.read(recorded).decode().split()[0]:
            print(f"error: {path}: the tiny SAM's weights do not match their recorded SHA-256", file=sys.stderr)
            return 1
        metadata = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    pinned = [line for line in metadata.splitlines()
              if line.startswith("Requires-Dist:") and line.split()[1].split("==")[0].split(">")[0] in ("torch", "torchvision", "numpy")
              and "==" in line]
    if pinned:
        print(f"error: {path} pins {pinned}; a runtime's own torch, torchvision and numpy must be kept", file=sys.stderr)
        return 1
    size = sum(i.file_size for i in zipfile.ZipFile(path).infolist())
    print(f"{path}: {size / 1e6:.1f} MB unpacked, tiny SAM weights inside and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
