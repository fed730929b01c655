"""What every stage stands on: errors a user can cause, files written safely, options declared once, pixel
connectivity, the files of a run folder, and the words of OCTA (``vocabulary``) the model and the data share."""

from __future__ import annotations

from samocta.core.faces import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "errors": ("SamOctaError", "DatasetError", "InputError"),
    "files": ("open_in_place", "atomic_write", "atomic_write_text", "folder_lock"),
})
