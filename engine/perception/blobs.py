"""Count distinct coloured objects in a frame (cheap, no model): saturated connected blobs.

Neutral surfaces (tables, walls, paper, thin outlines) have low saturation or a low fill ratio and
are ignored; each compact saturated region counts as one item. ~1 ms on a 320×240 frame.
"""

from __future__ import annotations

import cv2
import numpy as np


def count_items(rgb: np.ndarray, min_saturation: int = 120, min_area_frac: float = 0.002,
                min_fill: float = 0.5) -> int:
    """Number of compact saturated blobs in an RGB uint8 [H, W, 3] frame."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    mask = ((hsv[:, :, 1] >= min_saturation) & (hsv[:, :, 2] >= 60)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = min_area_frac * rgb.shape[0] * rgb.shape[1]
    count = 0
    for i in range(1, n):  # label 0 is the background
        x, y, w, h, area = stats[i]
        if area >= min_area and area / float(w * h) >= min_fill:
            count += 1
    return count
