"""Pictures of the built-in tasks, drawn from their state: one function per task.

Each renderer takes one copy's state (``BatchedEnv.state[i]`` as a NumPy row,
gymnasium's layout) and returns an RGB ``uint8`` image ``[HEIGHT, WIDTH, 3]``,
drawn with NumPy alone (no display, no pygame): enough to see what a policy
does, not a copy of gymnasium's pictures. ``RENDERERS`` registers them by task
name, with the frame rate each task's time step implies.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from esper.envs.acrobot import Acrobot
from esper.envs.cartpole import HALF_POLE_LENGTH, X_THRESHOLD, CartPole, CartPoleNoVelocity
from esper.envs.mountain_car import MAX_POSITION, MIN_POSITION, MountainCar, MountainCarContinuous
from esper.envs.pendulum import Pendulum

WIDTH, HEIGHT = 480, 320  # even, as H.264 needs
SKY = (255, 255, 255)
INK = (40, 40, 40)
POLE = (202, 152, 101)  # gymnasium's colours, roughly
AXLE = (129, 132, 203)
LINK = (0, 204, 204)
ROD = (204, 77, 77)
GOAL = (230, 180, 0)

Color = tuple[int, int, int]


class Canvas:
    """An RGB image with a few filled shapes, in pixels (y grows downwards)."""

    def __init__(self) -> None:
        self.image = np.full((HEIGHT, WIDTH, 3), SKY, dtype=np.uint8)
        self.y, self.x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)

    def _fill(self, mask: np.ndarray, color: Color) -> None:
        self.image[mask] = color

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
        self._fill((self.x >= x0) & (self.x <= x1) & (self.y >= y0) & (self.y <= y1), color)

    def disc(self, cx: float, cy: float, radius: float, color: Color) -> None:
        self._fill((self.x - cx) ** 2 + (self.y - cy) ** 2 <= radius**2, color)

    def segment(
        self, a: tuple[float, float], b: tuple[float, float], width: float, color: Color
    ) -> None:
        """A thick line from ``a`` to ``b`` with round ends."""
        (ax, ay), (bx, by) = a, b
        dx, dy = bx - ax, by - ay
        length2 = max(dx * dx + dy * dy, 1e-9)
        t = np.clip(((self.x - ax) * dx + (self.y - ay) * dy) / length2, 0.0, 1.0)
        distance2 = (self.x - ax - t * dx) ** 2 + (self.y - ay - t * dy) ** 2
        self._fill(distance2 <= (width / 2) ** 2, color)

    def polyline(self, points: list[tuple[float, float]], width: float, color: Color) -> None:
        for a, b in itertools.pairwise(points):
            self.segment(a, b, width, color)


def cartpole(state: np.ndarray) -> np.ndarray:
    """The cart on its track and the pole at its angle (``[x, x_dot, theta, theta_dot]``)."""
    x, _, theta, _ = (float(v) for v in state[:4])
    scale = WIDTH / (2 * X_THRESHOLD * 1.2)  # the track's ends just inside the frame
    ground = HEIGHT * 0.7
    canvas = Canvas()
    canvas.rect(0, ground, WIDTH, ground + 1, INK)  # the track
    cart_x = WIDTH / 2 + x * scale
    canvas.rect(cart_x - 25, ground - 15, cart_x + 25, ground + 15, INK)
    pole = 2 * HALF_POLE_LENGTH * scale
    tip = (cart_x + pole * math.sin(theta), ground - 8 - pole * math.cos(theta))
    canvas.segment((cart_x, ground - 8), tip, 10, POLE)
    canvas.disc(cart_x, ground - 8, 5, AXLE)
    return canvas.image


def acrobot(state: np.ndarray) -> np.ndarray:
    """Two links hanging from a fixed joint (``[theta1, theta2, dtheta1, dtheta2]``;
    0 is straight down); the line the tip must rise above."""
    theta1, theta2 = float(state[0]), float(state[1])
    scale = HEIGHT / 4.4  # two links of length 1 above and below the joint
    joint = (WIDTH / 2, HEIGHT / 2)
    elbow = (joint[0] + scale * math.sin(theta1), joint[1] + scale * math.cos(theta1))
    tip = (
        elbow[0] + scale * math.sin(theta1 + theta2),
        elbow[1] + scale * math.cos(theta1 + theta2),
    )
    canvas = Canvas()
    canvas.rect(0, joint[1] - scale, WIDTH, joint[1] - scale + 1, INK)  # the goal height
    canvas.segment(joint, elbow, 12, LINK)
    canvas.segment(elbow, tip, 12, LINK)
    for x, y in (joint, elbow):
        canvas.disc(x, y, 6, AXLE)
    return canvas.image


def _hill_y(position: np.ndarray | float) -> np.ndarray | float:
    return np.sin(3 * np.asarray(position)) * 0.45 + 0.55


def mountain_car(state: np.ndarray) -> np.ndarray:
    """The ``sin(3x)`` hill, the flag at the goal and the car (``[position, velocity]``)."""
    position = float(state[0])
    span = MAX_POSITION - MIN_POSITION
    scale_x, scale_y = WIDTH / span, HEIGHT * 0.8

    def pixel(x: float, y: float) -> tuple[float, float]:
        return (x - MIN_POSITION) * scale_x, HEIGHT * 0.95 - y * scale_y

    canvas = Canvas()
    xs = np.linspace(MIN_POSITION, MAX_POSITION, 60)
    canvas.polyline([pixel(x, _hill_y(x)) for x in xs], 3, INK)
    flag_x, flag_y = pixel(0.5, _hill_y(0.5))
    canvas.segment((flag_x, flag_y), (flag_x, flag_y - 40), 2, INK)
    canvas.rect(flag_x, flag_y - 40, flag_x + 22, flag_y - 30, GOAL)
    # The car sits on the slope, tilted with it.
    slope = math.atan(3 * 0.45 * math.cos(3 * position) * scale_y / scale_x)
    cx, cy = pixel(position, float(_hill_y(position)))
    along, up = (math.cos(slope), -math.sin(slope)), (-math.sin(slope), -math.cos(slope))
    for k in np.linspace(-20, 20, 9):  # the body: a thick bar along the slope
        base = (cx + along[0] * k + up[0] * 10, cy + along[1] * k + up[1] * 10)
        canvas.segment(base, (base[0] + up[0] * 8, base[1] + up[1] * 8), 6, INK)
    for k in (-13, 13):
        canvas.disc(cx + along[0] * k + up[0] * 5, cy + along[1] * k + up[1] * 5, 6, AXLE)
    return canvas.image


def pendulum(state: np.ndarray) -> np.ndarray:
    """The rod about its pivot (``[theta, theta_dot]``; 0 is upright)."""
    theta = float(state[0])
    length = HEIGHT * 0.4
    pivot = (WIDTH / 2, HEIGHT / 2)
    end = (pivot[0] + length * math.sin(theta), pivot[1] - length * math.cos(theta))
    canvas = Canvas()
    canvas.segment(pivot, end, 20, ROD)
    canvas.disc(*pivot, 5, INK)
    return canvas.image


class Renderer(NamedTuple):
    draw: Callable[[np.ndarray], np.ndarray]  # one copy's state -> [HEIGHT, WIDTH, 3] uint8
    fps: int  # the task's steps per second of simulated time, or gymnasium's render_fps


RENDERERS: dict[str, Renderer] = {
    CartPole.spec.name: Renderer(cartpole, 50),  # tau = 0.02 s
    CartPoleNoVelocity.spec.name: Renderer(cartpole, 50),  # drawn from the full state
    Acrobot.spec.name: Renderer(acrobot, 15),
    MountainCar.spec.name: Renderer(mountain_car, 30),
    MountainCarContinuous.spec.name: Renderer(mountain_car, 30),
    Pendulum.spec.name: Renderer(pendulum, 20),  # dt = 0.05 s
}
