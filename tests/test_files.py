from __future__ import annotations

import torch
from safetensors import safe_open
from safetensors.torch import load

from samocta.core.files import safetensors_bytes, save_safetensors


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "b.weight": torch.randn(3, 5, generator=g),
        "a.bias": torch.randn(7, generator=g).half(),
        "c.index": torch.arange(4),
    }


def test_same_contents_give_the_same_bytes_whatever_the_metadata_order():
    meta = {f"key{i}": f"value {i}" for i in range(8)}
    reversed_meta = dict(reversed(list(meta.items())))
    # safetensors keeps metadata in a hash map: its own header order varies, ours does not
    outs = {safetensors_bytes(_tensors(), meta) for _ in range(20)}
    outs |= {safetensors_bytes(_tensors(), reversed_meta) for _ in range(20)}
    assert len(outs) == 1
    blob = outs.pop()
    assert int.from_bytes(blob[:8], "little") % 8 == 0  # tensor data stays 8-byte aligned
    assert safetensors_bytes({**_tensors(), "c.index": torch.arange(1, 5)}, meta) != blob


def test_written_files_read_back_with_safetensors(tmp_path):
    meta = {"model_type": "tiny", "rank": "4", "alpha": "4.0"}
    path = tmp_path / "deep" / "x.safetensors"
    save_safetensors(_tensors(), path, meta)
    assert not list(path.parent.glob(".*.tmp"))
    loaded = load(path.read_bytes())
    assert set(loaded) == set(_tensors())
    assert all(torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in _tensors().items())
    with safe_open(str(path), framework="pt") as fh:
        assert fh.metadata() == meta
    assert (path.stat().st_mode & 0o777) == 0o644


# --- files written in place never follow a link (issue 37) ---

import ast  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from samocta.core.files import LinkRefusedError, append_line, folder_lock, open_in_place  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[1] / "samocta"
# the only functions that may open a file for writing: an atomic write's own temporary file, and
# the guarded in-place open every appender, lock and resumed download goes through
WRITERS = {("core/files.py", "atomic_write"), ("core/files.py", "open_in_place")}


def _os_open_writes(node: ast.Call) -> bool:
    """Whether an ``os.open`` call may write: its flags name a writing flag, or are not spelled out."""
    if len(node.args) < 2:
        return True
    names = {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
    if not names:
        return True  # flags from a variable: count it as a write, so the test errs on the safe side
    return bool(names & {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"})


def _write_sites() -> list[tuple[str, str, int]]:
    """(module, enclosing function, line) of every call in the package that opens a file to write;
    ``os.fdopen`` of a descriptor ``open_in_place`` just returned is the guard's own use."""

    class Finder(ast.NodeVisitor):
        def __init__(self, module: str) -> None:
            self.module, self.stack, self.sites = module, ["<module>"], []

        def visit_FunctionDef(self, node):
            self.stack.append(node.name)
            self.generic_visit(node)
            self.stack.pop()

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_Call(self, node):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            modes = [a.value for a in node.args[1:2] + [k.value for k in node.keywords if k.arg == "mode"]
                     if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            guarded = (name == "fdopen" and node.args and isinstance(node.args[0], ast.Call)
                       and getattr(node.args[0].func, "id", "") == "open_in_place")
            writes = (name in ("write_text", "write_bytes")
                      or (owner == "os" and name == "open" and _os_open_writes(node))
                      or (name in ("open", "fdopen") and any(set(m) & set("wax+") for m in modes)))
            if writes and not guarded:
                self.sites.append((self.module, self.stack[-1], node.lineno))
            self.generic_visit(node)

    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        finder = Finder(str(path.relative_to(PACKAGE)))
        finder.visit(ast.parse(path.read_text()))
        sites += finder.sites
    return sites


def test_every_write_in_place_goes_through_the_guard():
    sites = _write_sites()
    assert {(m, f) for m, f, _ in sites} == WRITERS, (
        f"files opened for writing outside samocta.core.files' guarded writers (use open_in_place or an atomic write): "
        f"{[s for s in sites if s[:2] not in WRITERS]}")


@pytest.mark.parametrize("write", [
    lambda p: append_line(p, "x"),
    lambda p: os.close(open_in_place(p)),
])
def test_a_link_or_fifo_is_refused_and_its_target_untouched(tmp_path, write):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(LinkRefusedError, match="link"):
        write(tmp_path / "link")
    assert victim.read_text() == "precious"
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(LinkRefusedError):  # refused at once, not blocked waiting for a reader
        write(tmp_path / "fifo")


def test_a_lock_file_that_is_a_link_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(victim)
    with pytest.raises(LinkRefusedError):
        with folder_lock(tmp_path / "run", "a training"):
            pass
    assert victim.read_text() == "precious"
