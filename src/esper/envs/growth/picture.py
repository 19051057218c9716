"""One host drawn as a picture, for ``esper eval --video`` on a growth task.

A frame shows, top to bottom: the episode's progress; one box per slot,
coloured by its seed's stage, filled as far as its alpha, as wide as its
blueprint; then the host's validation accuracy and its parameters against the
budget, as bars with their numbers. Drawn with numpy alone (a 3x5 digit font),
so a video needs only the ``video`` extra.
"""

from __future__ import annotations

import numpy as np

HEIGHT, WIDTH = 128, 256  # even, as H.264 needs
SCALE = 2  # font pixels per picture pixel

# Stage colours, in ``lifecycle.STAGES`` order.
STAGE_COLOURS = np.array(
    [
        (60, 60, 60),  # dormant
        (70, 130, 230),  # training (in isolation)
        (230, 200, 60),  # blending
        (240, 140, 40),  # holding
        (70, 190, 90),  # fossilized
        (200, 60, 60),  # embargoed (pruned)
    ],
    dtype=np.uint8,
)
ACCURACY, PARAMS, PROGRESS = (235, 235, 235), (170, 110, 220), (120, 120, 120)

# A 3x5 font of the characters the numbers need; each row is 3 bits.
GLYPHS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "/": (1, 1, 2, 4, 4),
}  # fmt: skip


def text(image: np.ndarray, y: int, x: int, words: str, colour: tuple[int, int, int]) -> None:
    """Write ``words`` (digits, '.', '/') with its top left corner at (y, x), in place."""
    for char in words:
        rows = GLYPHS.get(char)
        if rows is not None:
            bits = np.array([[(row >> (2 - c)) & 1 for c in range(3)] for row in rows], bool)
            big = bits.repeat(SCALE, 0).repeat(SCALE, 1)
            region = image[y : y + big.shape[0], x : x + big.shape[1]]
            region[big[: region.shape[0], : region.shape[1]]] = colour
        x += 4 * SCALE


def bar(image: np.ndarray, y: int, fraction: float, colour: tuple[int, int, int]) -> None:
    """A 10-pixel bar from the left margin, ``fraction`` of 160 pixels long."""
    image[y : y + 10, 8:168] = 30
    image[y : y + 10, 8 : 8 + round(160 * min(max(fraction, 0.0), 1.0))] = colour


def draw(
    progress: float,
    stages: np.ndarray,
    alphas: np.ndarray,
    widths: np.ndarray,
    accuracy: float,
    params: int,
    budget: int,
) -> np.ndarray:
    """``uint8 [HEIGHT, WIDTH, 3]``: one host. ``stages`` (stage indices),
    ``alphas`` and ``widths`` (the blueprint's share of the widest, 0 when empty)
    have one entry per slot."""
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[4:8, 8 : 8 + round((WIDTH - 16) * progress)] = PROGRESS
    slots = len(stages)
    box = (WIDTH - 16) // slots
    for k in range(slots):
        left, colour = 8 + k * box, STAGE_COLOURS[stages[k]]
        image[16:72, left + 2 : left + box - 2] = colour // 3
        inner = max(4, round((box - 8) * widths[k])) if widths[k] > 0 else 0
        filled = round(52 * float(alphas[k]))
        image[18:70, left + 4 : left + 4 + inner] = colour
        if filled:  # alpha: the seed's share of its output that reaches the host
            image[70 - filled : 70, left + 4 : left + 4 + inner] = np.minimum(
                colour.astype(np.int16) + 60, 255
            ).astype(np.uint8)
    bar(image, 84, accuracy, ACCURACY)
    text(image, 84, 176, f"{accuracy:.3f}", ACCURACY)
    bar(image, 104, params / budget, PARAMS)
    text(image, 104, 176, f"{params}", PARAMS)
    return image
