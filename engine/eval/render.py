"""Small deterministic screen renderers for the procedural scenario suite (PIL → RGB uint8 [H, W, 3]).

Each function draws one *screen*; clips are built by holding screens for whole seconds, so a clip
of an hour costs only as many renders as it has distinct screens.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_FONTS = {
    True: "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    False: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
}


@lru_cache(maxsize=64)
def font(size: int, bold: bool = True) -> ImageFont.ImageFont:
    p = _FONTS[bold]
    if Path(p).exists():
        return ImageFont.truetype(p, size)
    try:  # Pillow ≥ 10.1 ships a scalable default font
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _canvas(size: tuple[int, int], bg) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", size, bg)
    return img, ImageDraw.Draw(img)


def _scale(size: tuple[int, int]) -> float:
    return size[0] / 320.0


def slide(title: str, bullets: list[str], size=(320, 240), accent=(30, 80, 160)) -> np.ndarray:
    """A lecture slide: a coloured bar, a big title, two or three bullets."""
    s = _scale(size)
    img, d = _canvas(size, (245, 245, 240))
    d.rectangle([0, 0, size[0], int(10 * s)], fill=accent)
    d.text((int(16 * s), int(24 * s)), title, fill=accent, font=font(int(26 * s)))
    for i, line in enumerate(bullets):
        d.text((int(22 * s), int(90 * s + i * 34 * s)), "- " + line, fill=(30, 30, 30), font=font(int(16 * s), False))
    return np.asarray(img)


def app_screen(product: str, price: str, sold_out: bool = False, size=(320, 240)) -> np.ndarray:
    """A shopping-app product page: header, product name, price, and a buy button or SOLD OUT."""
    s = _scale(size)
    img, d = _canvas(size, (255, 255, 255))
    d.rectangle([0, 0, size[0], int(28 * s)], fill=(240, 120, 30))
    d.text((int(10 * s), int(5 * s)), "ShopNow", fill=(255, 255, 255), font=font(int(16 * s)))
    d.rectangle([int(20 * s), int(40 * s), int(120 * s), int(130 * s)], fill=(200, 210, 225))
    d.text((int(130 * s), int(50 * s)), product, fill=(20, 20, 20), font=font(int(18 * s)))
    d.text((int(130 * s), int(90 * s)), price, fill=(180, 30, 30), font=font(int(22 * s)))
    if sold_out:
        d.rectangle([int(40 * s), int(165 * s), int(280 * s), int(215 * s)], fill=(90, 90, 90))
        d.text((int(95 * s), int(175 * s)), "SOLD OUT", fill=(255, 255, 255), font=font(int(24 * s)))
    else:
        d.rectangle([int(40 * s), int(165 * s), int(280 * s), int(215 * s)], fill=(40, 150, 60))
        d.text((int(80 * s), int(177 * s)), "ADD TO CART", fill=(255, 255, 255), font=font(int(20 * s)))
    return np.asarray(img)


def room(visitor: bool = False, size=(320, 240)) -> np.ndarray:
    """A still camera view of a hallway with a door; ``visitor`` puts a figure in the doorway."""
    s = _scale(size)
    img, d = _canvas(size, (170, 165, 150))
    d.rectangle([0, int(180 * s), size[0], size[1]], fill=(110, 90, 70))  # floor
    d.rectangle([int(120 * s), int(50 * s), int(200 * s), int(180 * s)], fill=(90, 60, 40))  # door
    d.ellipse([int(185 * s), int(115 * s), int(193 * s), int(123 * s)], fill=(220, 200, 60))
    if visitor:
        d.ellipse([int(140 * s), int(60 * s), int(180 * s), int(100 * s)], fill=(230, 190, 160))
        d.rectangle([int(132 * s), int(100 * s), int(188 * s), int(180 * s)], fill=(200, 40, 40))
    return np.asarray(img)


_ITEM_COLOURS = [(220, 40, 40), (40, 160, 60), (40, 80, 220), (230, 160, 20), (160, 50, 200),
                 (20, 170, 170), (230, 80, 150), (120, 120, 20), (200, 100, 40)]


def table(n_items: int, size=(320, 240)) -> np.ndarray:
    """A table seen from above with ``n_items`` coloured round items placed in a fixed grid order."""
    s = _scale(size)
    img, d = _canvas(size, (235, 228, 215))
    d.rectangle([int(10 * s), int(10 * s), size[0] - int(10 * s), size[1] - int(10 * s)], outline=(150, 120, 90),
                width=max(1, int(3 * s)))
    for i in range(n_items):
        r, c = divmod(i, 4)
        x, y = int((40 + c * 70) * s), int((40 + r * 65) * s)
        d.ellipse([x, y, x + int(40 * s), y + int(40 * s)], fill=_ITEM_COLOURS[i % len(_ITEM_COLOURS)])
    return np.asarray(img)


def sign(text: str, size=(320, 240), bg=(60, 110, 70)) -> np.ndarray:
    """A street scene with one sign board carrying ``text`` (empty text: the wall without a sign)."""
    s = _scale(size)
    img, d = _canvas(size, (200, 200, 195))
    d.rectangle([0, int(170 * s), size[0], size[1]], fill=(120, 120, 120))
    if text:
        d.rectangle([int(40 * s), int(60 * s), int(280 * s), int(130 * s)], fill=bg)
        f = font(int(30 * s))
        w = d.textlength(text, font=f)
        d.text((int((size[0] - w) / 2), int(78 * s)), text, fill=(255, 255, 255), font=f)
    return np.asarray(img)


def pitch(ball_x: float, banner: str = "", size=(320, 240)) -> np.ndarray:
    """A football pitch with a small ball at ``ball_x`` ∈ [0, 1] and an optional event banner."""
    s = _scale(size)
    img, d = _canvas(size, (50, 140, 60))
    d.line([(size[0] // 2, 0), (size[0] // 2, size[1])], fill=(230, 230, 230), width=max(1, int(2 * s)))
    bx, by = int((20 + ball_x * 280) * s), int(150 * s)
    d.ellipse([bx, by, bx + int(8 * s), by + int(8 * s)], fill=(250, 250, 250))
    if banner:
        d.rectangle([0, int(20 * s), size[0], int(70 * s)], fill=(20, 20, 60))
        f = font(int(20 * s))
        w = d.textlength(banner, font=f)
        d.text((int((size[0] - w) / 2), int(33 * s)), banner, fill=(255, 230, 80), font=f)
    return np.asarray(img)


def note(text: str, sub: str = "", size=(320, 240)) -> np.ndarray:
    """A plain notice screen (a code, a password, a reminder) with one big line and a small one."""
    s = _scale(size)
    img, d = _canvas(size, (250, 248, 225))
    d.text((int(16 * s), int(60 * s)), text, fill=(20, 20, 20), font=font(int(22 * s)))
    if sub:
        d.text((int(16 * s), int(120 * s)), sub, fill=(80, 80, 80), font=font(int(14 * s), False))
    return np.asarray(img)
