"""Pixel connectivity, one convention for the whole package.

Foreground components (a vessel, the FAZ, a prompt's target) are 8-connected, so that a vessel
one pixel wide running diagonally stays one vessel; the background is then 4-connected, the
complementary choice that keeps Betti numbers consistent (Kong and Rosenfeld, 1989).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)
FOUR = ndimage.generate_binary_structure(2, 1)
