"""Procedural drawing for the synthetic Re-ID sets: pedestrians, tigers, clutter, cameras.

Every picture is a pure function of numpy Generators handed in by the caller, so the same seeds
give the same pixels. Appearance (``*_look``) is drawn from an identity's generator; pose,
placement, background and occluders from the image's generator; illumination, colour cast, blur
and scene palette from the camera's. Identity is therefore carried only by the drawn body: the
background uses the same colour distribution as the clothes and fur but is independent of the
identity, so it is a distractor, not a cue.

Each renderer returns the picture, a boolean foreground mask painted with exactly the same shapes
as the pixels, and keypoints ``[K, 3]`` (x, y, score) in pixels; score is 0 for points outside
the picture and lower than 1 for points hidden by the body or an occluder.
"""
from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reid_ext.skeletons import ATRW15, COCO17

Point = tuple[float, float]
DrawFn = Callable[[ImageDraw.ImageDraw, object], None]  # (draw, fill)

OCCLUDED_SCORE = 0.3  # keypoint covered by an object in front of the body
HIDDEN_FACE_SCORE = 0.2  # face point of a person seen from behind
FAR_SIDE_SCORE = 0.5  # tiger joint on the flank turned away from the camera


# --- colours -------------------------------------------------------------------------------
SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 155], [224, 172, 125], [198, 134, 90], [141, 85, 54],
     [100, 60, 38], [234, 192, 160], [180, 120, 80]], dtype=np.float32)
HAIR_TONES = np.array(
    [[20, 16, 14], [60, 40, 25], [110, 75, 40], [170, 130, 80], [220, 190, 130],
     [150, 150, 150], [130, 40, 20]], dtype=np.float32)


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """An RGB colour (float32, 0..255) from hue, saturation, value in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def clothing_colour(rng: np.random.Generator) -> np.ndarray:
    """Any garment colour: saturated hues, pastels, greys, near-black and near-white."""
    kind = rng.random()
    if kind < 0.2:
        return hsv(0.0, 0.0, rng.uniform(0.08, 0.95))
    if kind < 0.3:
        return hsv(rng.random(), rng.uniform(0.1, 0.35), rng.uniform(0.55, 0.95))
    return hsv(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(0.25, 0.95))


def clutter_colour(rng: np.random.Generator) -> np.ndarray:
    """Background colours: the garment palette plus skin tones, so colour alone is no cue."""
    if rng.random() < 0.15:
        return _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 12)
    return clothing_colour(rng)


def foliage_colour(rng: np.random.Generator) -> np.ndarray:
    """Grass, leaves, bark, dry straw, shadow; includes tiger-like oranges and darks."""
    kind = rng.random()
    if kind < 0.45:
        return hsv(rng.uniform(0.18, 0.38), rng.uniform(0.35, 0.85), rng.uniform(0.25, 0.8))
    if kind < 0.7:
        return hsv(rng.uniform(0.08, 0.16), rng.uniform(0.3, 0.8), rng.uniform(0.35, 0.9))
    if kind < 0.85:
        return hsv(rng.uniform(0.04, 0.1), rng.uniform(0.55, 0.95), rng.uniform(0.5, 0.95))
    return hsv(rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.5), rng.uniform(0.03, 0.25))


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(colour + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (1.0 - t) * a + t * b


# --- canvas -------------------------------------------------------------------------------
class Canvas:
    """An RGB float picture plus the foreground mask, painted region by region.

    A region is a boolean array made by drawing shapes with PIL; painting it with a colour or a
    texture (an ``[H, W, 3]`` array) marks it as foreground or, for occluders and background,
    clears the mask there. The mask therefore matches the painted pixels exactly.
    """

    def __init__(self, background: np.ndarray) -> None:
        self.image = np.asarray(background, dtype=np.float32).copy()
        self.height, self.width = self.image.shape[:2]
        self.mask = np.zeros((self.height, self.width), dtype=bool)
        self.ys, self.xs = np.mgrid[0:self.height, 0:self.width].astype(np.float32)

    def region(self, *shapes: DrawFn) -> np.ndarray:
        layer = Image.new("L", (self.width, self.height), 0)
        draw = ImageDraw.Draw(layer)
        for shape in shapes:
            shape(draw, 255)
        return np.asarray(layer) > 0

    def paint(self, region: np.ndarray, colour: np.ndarray, foreground: bool = True) -> None:
        if colour.ndim == 1:
            self.image[region] = colour
        else:
            self.image[region] = colour[region]
        if foreground:
            self.mask |= region
        else:
            self.mask &= ~region

    def paint_strokes(self, strokes: list[tuple[DrawFn, np.ndarray]],
                      foreground: bool = True) -> np.ndarray:
        """Paint many solid-colour shapes in order through two PIL layers (cheaper than one
        region each); returns the region they cover."""
        size = (self.width, self.height)
        colours, cover = Image.new("RGB", size), Image.new("L", size)
        colour_draw, cover_draw = ImageDraw.Draw(colours), ImageDraw.Draw(cover)
        for shape, colour in strokes:
            shape(colour_draw, tuple(int(c) for c in np.clip(np.rint(colour), 0, 255)))
            shape(cover_draw, 255)
        region = np.asarray(cover) > 0
        self.paint(region, np.asarray(colours, dtype=np.float32), foreground)
        return region

    def to_uint8(self) -> np.ndarray:
        return np.clip(np.rint(self.image), 0, 255).astype(np.uint8)


def polygon(points: list[Point]) -> DrawFn:
    return lambda draw, fill: draw.polygon([(float(x), float(y)) for x, y in points], fill=fill)


def ellipse(cx: float, cy: float, rx: float, ry: float) -> DrawFn:
    return lambda draw, fill: draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=fill)


def capsule(p0: Point, p1: Point, width: float) -> DrawFn:
    """A limb: a quad of the given width between two points with round ends."""
    (x0, y0), (x1, y1) = p0, p1
    length = max(np.hypot(x1 - x0, y1 - y0), 1e-6)
    nx, ny = -(y1 - y0) / length * width / 2, (x1 - x0) / length * width / 2
    quad = [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)]
    r = width / 2

    def draw_fn(draw: ImageDraw.ImageDraw, fill: object) -> None:
        draw.polygon(quad, fill=fill)
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=fill)
        draw.ellipse([x1 - r, y1 - r, x1 + r, y1 + r], fill=fill)

    return draw_fn


def line(p0: Point, p1: Point, width: float) -> DrawFn:
    return lambda draw, fill: draw.line([p0, p1], fill=fill, width=max(1, int(round(width))))


def _point_along(p0: Point, p1: Point, t: float) -> Point:
    return (p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1]))


def _from_angle(origin: Point, length: float, angle: float, side: int) -> Point:
    """The point ``length`` away from ``origin``, ``angle`` radians from straight down, turned
    towards image-left (side -1) or image-right (side +1)."""
    return (origin[0] + side * length * np.sin(angle), origin[1] + length * np.cos(angle))


def low_frequency_noise(rng: np.random.Generator, height: int, width: int,
                        cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1], ``[H, W]``: a coarse random grid upsampled bicubically."""
    grid = rng.uniform(0, 255, (cells, max(2, cells * width // max(height, 1)))).astype(np.uint8)
    smooth = Image.fromarray(grid, "L").resize((width, height), Image.BICUBIC)
    return np.asarray(smooth, dtype=np.float32) / 127.5 - 1.0


# --- cameras ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Camera:
    """Per-camera imaging conditions and scene palette."""

    gain: float
    cast: np.ndarray  # per-channel multiplier
    gamma: float
    blur: float  # Gaussian radius in pixels at 128 px image height
    noise: float  # pixel noise standard deviation
    scale: float  # subject size as a fraction of the image
    scene: np.ndarray  # [2, 3] wall/floor (person) or ground/canopy (tiger) base colours


def make_camera(rng: np.random.Generator, kind: str) -> Camera:
    scene_colour = clutter_colour if kind == "person" else foliage_colour
    return Camera(
        gain=float(rng.uniform(0.75, 1.2)),
        cast=(1.0 + rng.uniform(-0.12, 0.12, 3)).astype(np.float32),
        gamma=float(rng.uniform(0.85, 1.15)),
        blur=float(rng.uniform(0.0, 0.9)),
        noise=float(rng.uniform(1.0, 5.0)),
        scale=float(rng.uniform(0.78, 0.92)),
        scene=np.stack([scene_colour(rng), scene_colour(rng)]),
    )


def harden_camera(camera: Camera, shift: float) -> Camera:
    """Scale every imaging deviation of ``camera`` from neutral by ``shift`` (1: unchanged):
    stronger per-camera gain, colour cast, tone curve, blur and noise (the hard presets)."""
    if shift == 1.0:
        return camera
    return replace(
        camera,
        gain=float(np.clip(0.975 + shift * (camera.gain - 0.975), 0.3, 2.0)),
        cast=np.clip(1.0 + shift * (camera.cast - 1.0), 0.4, 1.8).astype(np.float32),
        gamma=float(np.clip(1.0 + shift * (camera.gamma - 1.0), 0.5, 2.0)),
        blur=camera.blur * shift,
        noise=camera.noise * shift,
    )


def apply_camera(image: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Blur, tone curve, gain and colour cast, sensor noise; ``uint8 [H, W, 3]`` in and out."""
    radius = camera.blur * image.shape[0] / 128.0
    picture = Image.fromarray(image, "RGB")
    if radius > 0.05:
        picture = picture.filter(ImageFilter.GaussianBlur(radius))
    out = np.asarray(picture, dtype=np.float32) / 255.0
    gain = camera.gain * rng.uniform(0.92, 1.08)
    out = out ** camera.gamma * gain * camera.cast * 255.0
    out += rng.normal(0.0, camera.noise, out.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# --- backgrounds ----------------------------------------------------------------------------
def _textured(rng: np.random.Generator, canvas: Canvas, colour: np.ndarray) -> np.ndarray:
    """A solid colour or, sometimes, stripes of it and a second clutter colour."""
    if rng.random() < 0.6:
        return colour
    other = clutter_colour(rng)
    period = rng.uniform(2.5, 9.0)
    horizontal = rng.random() < 0.5
    coord = np.arange(canvas.height if horizontal else canvas.width, dtype=np.float32)
    band = np.floor((coord + rng.uniform(0, period)) / period) % 2 == 0
    stripes = np.where(band[:, None], colour, other).astype(np.float32)
    stripes = stripes[:, None, :] if horizontal else stripes[None, :, :]
    return np.broadcast_to(stripes, (canvas.height, canvas.width, 3))


def person_background(rng: np.random.Generator, camera: Camera, height: int,
                      width: int) -> np.ndarray:
    """A street-like scene: wall and floor tones, smooth shading, then clutter in the person
    palette (boxes, signs, poles, blobs, cut-off person-like shapes)."""
    wall = _mix(camera.scene[0], clutter_colour(rng), rng.uniform(0.3, 0.7))
    floor = _mix(camera.scene[1], clutter_colour(rng), rng.uniform(0.3, 0.7))
    horizon = height * rng.uniform(0.5, 0.85)
    ys = np.arange(height, dtype=np.float32)[:, None, None]
    base = np.where(ys < horizon, wall, floor) * np.ones((1, width, 1), np.float32)
    shade = low_frequency_noise(rng, height, width, int(rng.integers(3, 7)))
    canvas = Canvas(base * (1.0 + 0.25 * shade[..., None]))
    for _ in range(int(rng.integers(8, 17))):
        _clutter_shape(rng, canvas)
    if rng.random() < 0.4:
        _person_like_distractor(rng, canvas)
    canvas.image += rng.normal(0.0, 4.0, canvas.image.shape).astype(np.float32)
    return canvas.to_uint8()


def _clutter_shape(rng: np.random.Generator, canvas: Canvas) -> None:
    h, w = canvas.height, canvas.width
    x, y = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
    sx, sy = rng.uniform(0.05, 0.5) * w, rng.uniform(0.03, 0.4) * h
    kind = rng.random()
    if kind < 0.4:
        shape = polygon([(x, y), (x + sx, y), (x + sx, y + sy), (x, y + sy)])
    elif kind < 0.7:
        shape = ellipse(x, y, sx / 2, sy / 2)
    else:
        angle = rng.uniform(-0.4, 0.4) + (np.pi / 2 if rng.random() < 0.5 else 0.0)
        length = rng.uniform(0.3, 1.2) * h
        end = (x + length * np.cos(angle), y + length * np.sin(angle))
        shape = line((x, y), end, rng.uniform(1, 0.08 * w + 1))
    colour = clutter_colour(rng)
    canvas.paint(canvas.region(shape), _textured(rng, canvas, colour), foreground=False)


def _person_like_distractor(rng: np.random.Generator, canvas: Canvas) -> None:
    """Head-and-torso shapes cut by the image border: skin and garment colours, no identity."""
    h, w = canvas.height, canvas.width
    side = -1 if rng.random() < 0.5 else 1
    cx = (0.5 + side * rng.uniform(0.45, 0.6)) * w
    top = rng.uniform(0.0, 0.3) * h
    size = rng.uniform(0.5, 0.9) * h
    head_r = 0.065 * size
    torso = polygon([(cx - 0.13 * size, top + 0.16 * size), (cx + 0.13 * size, top + 0.16 * size),
                     (cx + 0.1 * size, top + 0.55 * size), (cx - 0.1 * size, top + 0.55 * size)])
    canvas.paint(canvas.region(torso), _textured(rng, canvas, clothing_colour(rng)), False)
    legs = polygon([(cx - 0.09 * size, top + 0.55 * size), (cx + 0.09 * size, top + 0.55 * size),
                    (cx + 0.08 * size, top + size), (cx - 0.08 * size, top + size)])
    canvas.paint(canvas.region(legs), clothing_colour(rng), False)
    skin = _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 10)
    canvas.paint(canvas.region(ellipse(cx, top + head_r * 1.1, head_r * 0.85, head_r)), skin,
                 False)


def tiger_background(rng: np.random.Generator, camera: Camera, height: int,
                     width: int) -> np.ndarray:
    """Grass and undergrowth: ground tones, smooth shading, blades, leaves, dark trunks."""
    ground = _mix(camera.scene[0], foliage_colour(rng), rng.uniform(0.3, 0.6))
    canopy = _mix(camera.scene[1], foliage_colour(rng), rng.uniform(0.3, 0.6))
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    base = (1 - t) * canopy + t * ground
    shade = low_frequency_noise(rng, height, width, int(rng.integers(3, 8)))
    canvas = Canvas(base * (1.0 + 0.3 * shade[..., None]) * np.ones((1, width, 1), np.float32))
    for _ in range(int(rng.integers(1, 4))):  # trunks and their shadows: stripe-like darks
        x = rng.uniform(0, width)
        canvas.paint(canvas.region(line((x, 0), (x + rng.uniform(-0.2, 0.2) * height, height),
                                        rng.uniform(1, 0.06 * width + 1))),
                     foliage_colour(rng) * rng.uniform(0.3, 0.8), False)
    for _ in range(int(rng.integers(4, 10))):  # leaf blobs
        canvas.paint(canvas.region(ellipse(rng.uniform(0, width), rng.uniform(0, height),
                                           rng.uniform(0.02, 0.12) * width,
                                           rng.uniform(0.02, 0.1) * height)),
                     foliage_colour(rng), False)
    _grass_blades(rng, canvas, int(rng.integers(40, 100)), 0.0, foreground=False)
    canvas.image += rng.normal(0.0, 4.0, canvas.image.shape).astype(np.float32)
    return canvas.to_uint8()


def _grass_blades(rng: np.random.Generator, canvas: Canvas, count: int, min_y: float,
                  foreground: bool) -> np.ndarray:
    """Thin near-vertical strokes below ``min_y``; returns the region they cover."""
    h, w = canvas.height, canvas.width
    strokes = []
    for _ in range(count):
        x, y = rng.uniform(0, w), rng.uniform(min_y, h * 1.05)
        length = rng.uniform(0.05, 0.25) * h
        tip = (x + rng.uniform(-0.4, 0.4) * length, y - length)
        strokes.append((line((x, y), tip, rng.uniform(1.0, 2.2)), foliage_colour(rng)))
    return canvas.paint_strokes(strokes, foreground=foreground)


# --- people -------------------------------------------------------------------------------
SHIRT_PATTERNS = ("plain", "hstripes", "vstripes", "check", "twotone", "logo")
HAIR_STYLES = ("short", "long", "bald", "cap")
LEGWEAR = ("long", "long", "shorts", "skirt")
BAGS = ("none", "none", "backpack", "shoulder")


@dataclass(frozen=True)
class PersonLook:
    """What identifies a pedestrian: body build and everything worn or carried."""

    skin: np.ndarray
    hair: np.ndarray
    hair_style: str
    cap: np.ndarray
    shirt: np.ndarray
    shirt2: np.ndarray
    shirt_pattern: str
    stripe_period: float  # in units of body height
    long_sleeves: bool
    trousers: np.ndarray
    legwear: str
    shoes: np.ndarray
    bag: str
    bag_colour: np.ndarray
    bag_side: int
    height: float
    build: float


def person_look(rng: np.random.Generator) -> PersonLook:
    shirt = clothing_colour(rng)
    shirt2 = clothing_colour(rng)
    while np.abs(shirt2 - shirt).sum() < 120:  # a pattern must be visible
        shirt2 = clothing_colour(rng)
    return PersonLook(
        skin=_jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 10),
        hair=_jitter(rng, HAIR_TONES[rng.integers(len(HAIR_TONES))], 10),
        hair_style=str(rng.choice(HAIR_STYLES)),
        cap=clothing_colour(rng),
        shirt=shirt,
        shirt2=shirt2,
        shirt_pattern=str(rng.choice(SHIRT_PATTERNS)),
        stripe_period=float(rng.uniform(0.03, 0.07)),
        long_sleeves=bool(rng.random() < 0.5),
        trousers=clothing_colour(rng),
        legwear=str(rng.choice(LEGWEAR)),
        shoes=clothing_colour(rng) * 0.6,
        bag=str(rng.choice(BAGS)),
        bag_colour=clothing_colour(rng),
        bag_side=int(rng.choice([-1, 1])),
        height=float(rng.uniform(0.92, 1.04)),
        build=float(rng.uniform(0.85, 1.15)),
    )


@dataclass(frozen=True)
class PersonPose:
    """One frame's posture: facing the camera or not, and limb angles per image side."""

    facing_front: bool
    upper_arm: tuple[float, float]  # angle from straight down, outwards; (image-left, right)
    forearm: tuple[float, float]
    thigh: tuple[float, float]
    shin: tuple[float, float]


def person_pose(rng: np.random.Generator) -> PersonPose:
    def pair(low: float, high: float) -> tuple[float, float]:
        return float(rng.uniform(low, high)), float(rng.uniform(low, high))

    return PersonPose(
        facing_front=bool(rng.random() < 0.6),
        upper_arm=pair(0.08, 0.4),
        forearm=pair(-0.25, 0.45),
        thigh=pair(0.0, 0.18),
        shin=pair(-0.12, 0.1),
    )


def _shirt_texture(look: PersonLook, canvas: Canvas, cx: float, top: float,
                   size: float) -> np.ndarray:
    period = look.stripe_period * size
    u, v = (canvas.xs - cx) / period, (canvas.ys - top) / period
    pattern = look.shirt_pattern
    if pattern == "hstripes":
        second = np.floor(v) % 2 == 1
    elif pattern == "vstripes":
        second = np.floor(u) % 2 == 1
    elif pattern == "check":
        second = (np.floor(u) + np.floor(v)) % 2 == 1
    elif pattern == "twotone":
        second = canvas.ys > top + 0.36 * size
    elif pattern == "logo":
        second = (np.abs(canvas.xs - cx) < 0.05 * size) & (np.abs(canvas.ys - top - 0.26 * size)
                                                          < 0.04 * size)
    else:
        return look.shirt
    return np.where(second[..., None], look.shirt2, look.shirt).astype(np.float32)


def render_person(canvas: Canvas, look: PersonLook, pose: PersonPose, cx: float, top: float,
                  size: float) -> np.ndarray:
    """Paint one pedestrian whose head top is at ``(cx, top)`` and who is ``size`` px tall
    (before the identity's own height factor); return COCO-17 keypoints ``[17, 3]``."""
    P = size * look.height
    b = look.build
    head_ry, head_rx = 0.065 * P, 0.052 * P * (0.9 + 0.1 * b)
    head = (cx, top + head_ry)
    shoulder_y, hip_y = top + 0.17 * P, top + 0.52 * P
    shoulder_half, hip_half = 0.12 * P * b, 0.085 * P * b
    arm_w, thigh_w, shin_w = 0.055 * P * b, 0.075 * P * b, 0.062 * P * b
    sides = (-1, 1)
    joints: dict[str, dict[int, Point]] = {k: {} for k in (
        "shoulder", "elbow", "wrist", "hand", "hip", "knee", "ankle")}
    for i, s in enumerate(sides):
        shoulder = (cx + s * (shoulder_half - 0.025 * P), shoulder_y + 0.025 * P)
        elbow = _from_angle(shoulder, 0.17 * P, pose.upper_arm[i], s)
        wrist = _from_angle(elbow, 0.15 * P, pose.upper_arm[i] + pose.forearm[i], s)
        hip = (cx + s * 0.6 * hip_half, hip_y)
        knee = _from_angle(hip, 0.22 * P, pose.thigh[i], s)
        ankle = _from_angle(knee, 0.2 * P, pose.thigh[i] + pose.shin[i], s)
        joints["shoulder"][s], joints["elbow"][s], joints["wrist"][s] = shoulder, elbow, wrist
        joints["hand"][s] = _from_angle(elbow, 0.175 * P, pose.upper_arm[i] + pose.forearm[i], s)
        joints["hip"][s], joints["knee"][s], joints["ankle"][s] = hip, knee, ankle

    shirt = _shirt_texture(look, canvas, cx, top, P)
    torso = polygon([(cx - shoulder_half, shoulder_y), (cx + shoulder_half, shoulder_y),
                     (cx + hip_half * 1.05, hip_y + 0.03 * P),
                     (cx - hip_half * 1.05, hip_y + 0.03 * P)])
    long_hair = look.hair_style == "long"
    hair_back = polygon([(head[0] - head_rx * 1.1, head[1]), (head[0] + head_rx * 1.1, head[1]),
                         (head[0] + head_rx * 1.2, shoulder_y + 0.08 * P),
                         (head[0] - head_rx * 1.2, shoulder_y + 0.08 * P)])

    if long_hair and pose.facing_front:
        canvas.paint(canvas.region(hair_back), look.hair)
    if look.bag == "backpack" and pose.facing_front:  # sides of the pack peek out
        canvas.paint(canvas.region(polygon([
            (cx - shoulder_half * 1.1, shoulder_y + 0.03 * P),
            (cx + shoulder_half * 1.1, shoulder_y + 0.03 * P),
            (cx + shoulder_half * 1.1, hip_y - 0.04 * P),
            (cx - shoulder_half * 1.1, hip_y - 0.04 * P)])), look.bag_colour)
    _paint_legs(canvas, look, joints, thigh_w, shin_w, P)
    if look.legwear == "skirt":
        canvas.paint(canvas.region(polygon([
            (cx - hip_half * 1.1, hip_y - 0.02 * P), (cx + hip_half * 1.1, hip_y - 0.02 * P),
            (cx + hip_half * 1.9, hip_y + 0.2 * P), (cx - hip_half * 1.9, hip_y + 0.2 * P)])),
            look.trousers)
    canvas.paint(canvas.region(torso), shirt)
    _paint_bag_front_layer(canvas, look, pose, cx, shoulder_y, hip_y, shoulder_half, P)
    for s in sides:
        _paint_arm(canvas, look, shirt, joints, s, arm_w, P)
    canvas.paint(canvas.region(capsule((cx, head[1]), (cx, shoulder_y + 0.01 * P),
                                       0.05 * P * b)), look.skin)
    _paint_head(canvas, look, pose, head, head_rx, head_ry)
    if long_hair and not pose.facing_front:
        canvas.paint(canvas.region(hair_back), look.hair)
    if look.bag == "backpack" and not pose.facing_front:
        canvas.paint(canvas.region(polygon([
            (cx - shoulder_half * 0.85, shoulder_y + 0.02 * P),
            (cx + shoulder_half * 0.85, shoulder_y + 0.02 * P),
            (cx + shoulder_half * 0.8, hip_y - 0.03 * P),
            (cx - shoulder_half * 0.8, hip_y - 0.03 * P)])), look.bag_colour)
    return _person_keypoints(joints, pose, head, head_rx, head_ry)


def _paint_legs(canvas: Canvas, look: PersonLook, joints: dict[str, dict[int, Point]],
                thigh_w: float, shin_w: float, P: float) -> None:  # noqa: N803
    for s in (-1, 1):
        hip, knee, ankle = joints["hip"][s], joints["knee"][s], joints["ankle"][s]
        covered_shin = look.legwear == "long"
        thigh_colour = look.skin if look.legwear == "skirt" else look.trousers
        if look.legwear == "shorts":
            split = _point_along(hip, knee, 0.7)
            canvas.paint(canvas.region(capsule(split, knee, thigh_w * 0.9)), look.skin)
            canvas.paint(canvas.region(capsule(hip, split, thigh_w)), look.trousers)
        else:
            canvas.paint(canvas.region(capsule(hip, knee, thigh_w)), thigh_colour)
        canvas.paint(canvas.region(capsule(knee, ankle, shin_w)),
                     look.trousers if covered_shin else look.skin)
        shoe = ellipse(ankle[0] + s * 0.01 * P, ankle[1] + 0.02 * P, 0.045 * P, 0.03 * P)
        canvas.paint(canvas.region(shoe), look.shoes)


def _paint_arm(canvas: Canvas, look: PersonLook, shirt: np.ndarray,
               joints: dict[str, dict[int, Point]], s: int, arm_w: float,
               P: float) -> None:  # noqa: N803
    shoulder, elbow, hand = joints["shoulder"][s], joints["elbow"][s], joints["hand"][s]
    wrist = joints["wrist"][s]
    if look.long_sleeves:
        canvas.paint(canvas.region(capsule(elbow, wrist, arm_w * 0.85)), shirt)
        canvas.paint(canvas.region(capsule(shoulder, elbow, arm_w)), shirt)
    else:
        split = _point_along(shoulder, elbow, 0.55)
        canvas.paint(canvas.region(capsule(split, elbow, arm_w * 0.85),
                                   capsule(elbow, wrist, arm_w * 0.8)), look.skin)
        canvas.paint(canvas.region(capsule(shoulder, split, arm_w)), shirt)
    canvas.paint(canvas.region(ellipse(hand[0], hand[1], 0.03 * P, 0.034 * P)), look.skin)


def _paint_bag_front_layer(canvas: Canvas, look: PersonLook, pose: PersonPose, cx: float,
                           shoulder_y: float, hip_y: float, shoulder_half: float,
                           P: float) -> None:  # noqa: N803
    """Straps across the chest and the shoulder bag at the hip (drawn over the torso)."""
    strap_w = max(1.0, 0.018 * P)
    dark = look.bag_colour * 0.6
    if look.bag == "backpack" and pose.facing_front:
        for s in (-1, 1):
            top = (cx + s * shoulder_half * 0.55, shoulder_y)
            canvas.paint(canvas.region(line(top, (top[0], hip_y - 0.06 * P), strap_w)), dark)
    elif look.bag == "shoulder":
        s = look.bag_side if pose.facing_front else -look.bag_side
        start = (cx - s * shoulder_half * 0.6, shoulder_y)
        bag_x = cx + s * (shoulder_half + 0.02 * P)
        canvas.paint(canvas.region(line(start, (bag_x, hip_y), strap_w)), dark)
        canvas.paint(canvas.region(polygon([
            (bag_x - 0.05 * P, hip_y - 0.03 * P), (bag_x + 0.05 * P, hip_y - 0.03 * P),
            (bag_x + 0.05 * P, hip_y + 0.07 * P), (bag_x - 0.05 * P, hip_y + 0.07 * P)])),
            look.bag_colour)


def _paint_head(canvas: Canvas, look: PersonLook, pose: PersonPose, head: Point, rx: float,
                ry: float) -> None:
    hx, hy = head
    canvas.paint(canvas.region(ellipse(hx, hy, rx, ry)), look.skin)
    box = [hx - rx * 1.08, hy - ry * 1.08, hx + rx * 1.08, hy + ry * 1.08]
    if not pose.facing_front and look.hair_style != "bald":
        canvas.paint(canvas.region(ellipse(hx, hy - 0.02 * ry, rx * 1.06, ry * 1.04)), look.hair)
    elif look.hair_style in ("short", "long"):
        canvas.paint(canvas.region(lambda d, fill: d.chord(box, 180, 360, fill=fill)), look.hair)
    if look.hair_style == "cap":
        canvas.paint(canvas.region(lambda d, fill: d.chord(box, 190, 350, fill=fill),
                                   line((hx - rx * 1.1, hy - 0.3 * ry), (hx + rx * 1.1,
                                                                         hy - 0.3 * ry),
                                        max(1.0, 0.25 * ry))), look.cap)
    if pose.facing_front:
        eye_colour = np.array([30, 25, 25], np.float32)
        for s in (-1, 1):
            eye = canvas.region(ellipse(hx + s * 0.38 * rx, hy - 0.05 * ry, max(0.6, 0.13 * rx),
                                        max(0.6, 0.1 * ry)))
            canvas.paint(eye, eye_colour)


def _person_keypoints(joints: dict[str, dict[int, Point]], pose: PersonPose, head: Point,
                      rx: float, ry: float) -> np.ndarray:
    """COCO-17 keypoints; the person's left is image-right when facing the camera."""
    left = 1 if pose.facing_front else -1
    face_score = 1.0 if pose.facing_front else HIDDEN_FACE_SCORE
    hx, hy = head
    kp = np.zeros((COCO17.num_keypoints, 3), dtype=np.float32)

    def put(name: str, point: Point, score: float = 1.0) -> None:
        kp[COCO17.index(name)] = (point[0], point[1], score)

    put("nose", (hx, hy + 0.3 * ry), face_score)
    for side_name, s in (("left", left), ("right", -left)):
        put(f"{side_name}_eye", (hx + s * 0.38 * rx, hy - 0.05 * ry), face_score)
        put(f"{side_name}_ear", (hx + s * 0.85 * rx, hy + 0.05 * ry), 0.8)
        for joint in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
            put(f"{side_name}_{joint}", joints[joint][s])
    return kp


# --- tigers -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TigerLook:
    """What identifies a tiger: coat tones and the stripe, band and ring patterns."""

    base: np.ndarray
    belly: np.ndarray
    stripe: np.ndarray
    stripes: np.ndarray  # [n, 5]: position u, tilt, curvature, half-width, lower end v
    leg_bands: tuple[float, float, float]  # bands per leg length, phase, duty
    tail_rings: np.ndarray  # [10] bool: which tail segments are dark
    head_marks: np.ndarray  # [m, 4]: x0, y0, x1, y1 in head radii
    size: float
    build: float


def tiger_look(rng: np.random.Generator) -> TigerLook:
    n = int(rng.integers(7, 15))
    positions = np.sort(rng.uniform(-0.9, 0.85, n))
    stripes = np.stack([
        positions,
        rng.uniform(-0.25, 0.25, n),
        rng.uniform(-0.12, 0.12, n),
        rng.uniform(0.025, 0.07, n),
        rng.uniform(-0.2, 0.75, n),
    ], axis=1).astype(np.float32)
    rings = rng.random(10) < 0.45
    rings[-1] = True  # black tip
    return TigerLook(
        base=hsv(rng.uniform(0.045, 0.1), rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95)),
        belly=hsv(rng.uniform(0.08, 0.14), rng.uniform(0.05, 0.3), rng.uniform(0.8, 1.0)),
        stripe=hsv(rng.uniform(0.0, 0.1), rng.uniform(0.3, 0.8), rng.uniform(0.04, 0.2)),
        stripes=stripes,
        leg_bands=(float(rng.uniform(2.0, 5.0)), float(rng.random()),
                   float(rng.uniform(0.2, 0.45))),
        tail_rings=rings,
        head_marks=rng.uniform(-0.7, 0.7, (int(rng.integers(2, 6)), 4)).astype(np.float32),
        size=float(rng.uniform(0.9, 1.05)),
        build=float(rng.uniform(0.9, 1.15)),
    )


@dataclass(frozen=True)
class TigerPose:
    direction: int  # +1: head to image-right (left flank seen), -1: head to image-left
    tilt: float
    swings: tuple[float, float, float, float]  # near front, far front, near hind, far hind
    head_dy: float
    tail_curl: float


def tiger_pose(rng: np.random.Generator) -> TigerPose:
    phase = rng.uniform(0.0, 2.0 * np.pi)
    amp = rng.uniform(0.05, 0.35)
    swings = tuple(float(amp * np.sin(phase + k * np.pi / 2)) for k in (0, 2, 1, 3))
    return TigerPose(
        direction=int(rng.choice([-1, 1])),
        tilt=float(rng.uniform(-0.08, 0.08)),
        swings=swings,  # type: ignore[arg-type]
        head_dy=float(rng.uniform(-0.25, 0.25)),
        tail_curl=float(rng.uniform(-0.6, 0.6)),
    )


def _tiger_body_texture(look: TigerLook, canvas: Canvas, cx: float, cy: float, a: float,
                        b: float, pose: TigerPose) -> np.ndarray:
    """Coat colour over the body ellipse from the identity's stripe list, in body coordinates
    (u: -1 tail end .. +1 head end, v: -1 back .. +1 belly), so turning the animal mirrors it."""
    cos, sin = np.cos(pose.tilt), np.sin(pose.tilt)
    dx, dy = canvas.xs - cx, canvas.ys - cy
    u = pose.direction * (cos * dx + sin * dy) / a
    v = (-sin * dx + cos * dy) / b
    colour = np.where((v > 0.5)[..., None], look.belly, look.base * (1.0 - 0.15 * (v < -0.6))[
        ..., None]).astype(np.float32)
    dark = np.zeros(u.shape, dtype=bool)
    for pos, tilt, curve, half_width, v_end in look.stripes:
        depth = v + 1.0
        centre = pos + tilt * depth + curve * depth ** 2
        taper = np.clip(1.0 - depth / (v_end + 1.0), 0.0, 1.0) ** 0.5
        dark |= (np.abs(u - centre) < half_width * taper) & (v < v_end)
    return np.where(dark[..., None], look.stripe, colour).astype(np.float32)


def _leg_texture(look: TigerLook, canvas: Canvas, top: float, ground: float,
                 shade: float) -> np.ndarray:
    n, phase, duty = look.leg_bands
    t = (canvas.ys - top) / max(ground - top, 1.0)
    band = ((t * n + phase) % 1.0 < duty) & (t < 0.75)
    return np.where(band[..., None], look.stripe, look.base * shade).astype(np.float32)


def render_tiger(canvas: Canvas, look: TigerLook, pose: TigerPose, cx: float, cy: float,
                 length: float) -> np.ndarray:
    """Paint one tiger whose body centre is ``(cx, cy)`` and whose body is ``length`` px long
    (before the identity's size factor); return ATRW-15 keypoints ``[15, 3]``."""
    d = pose.direction
    a = 0.5 * length * look.size
    b = 0.38 * a * look.build
    ground = cy + 0.55 * b + 1.25 * b
    near, far = ("left", "right") if d == 1 else ("right", "left")
    kp = np.zeros((ATRW15.num_keypoints, 3), dtype=np.float32)

    def put(name: str, point: Point, score: float) -> None:
        kp[ATRW15.index(name)] = (point[0], point[1], score)

    def body_point(u: float, v: float) -> Point:
        x, y = d * u * a, v * b
        c, s = np.cos(pose.tilt), np.sin(pose.tilt)
        return (cx + c * x - s * y, cy + s * x + c * y)

    # legs: far pair first (darker, shifted towards the tail), body, then the near pair
    legs = {far_side: _tiger_leg_joints(body_point, d, b, ground, -0.12 if far_side else 0.0,
                                        pose.swings[1::2] if far_side else pose.swings[0::2])
            for far_side in (True, False)}
    _paint_tiger_legs(canvas, look, legs[True], b, ground, shade=0.7)

    tail_root = body_point(-0.92, -0.3)
    _paint_tail(canvas, look, pose, tail_root, a, b)
    body = [body_point(float(np.cos(t)), float(np.sin(t)))
            for t in np.linspace(0, 2 * np.pi, 48, endpoint=False)]
    canvas.paint(canvas.region(polygon(body)),
                 _tiger_body_texture(look, canvas, cx, cy, a, b, pose))
    _paint_tiger_legs(canvas, look, legs[False], b, ground, shade=1.0)
    head, head_r = _paint_tiger_head(canvas, look, pose, body_point(1.0, -0.45), b)

    for side, is_far in ((near, False), (far, True)):
        shoulder, _, paw_f, hip, knee, paw_h = legs[is_far]
        score = FAR_SIDE_SCORE if is_far else 1.0
        put(f"{side}_shoulder", shoulder, score)
        put(f"{side}_hip", hip, score)
        put(f"{side}_knee", knee, 0.7 if is_far else 1.0)
        put(f"{side}_front_paw", paw_f, 0.8 if is_far else 1.0)
        put(f"{side}_back_paw", paw_h, 0.8 if is_far else 1.0)
    hx, hy = head
    put(f"{near}_ear", (hx - d * 0.15 * head_r, hy - 0.8 * head_r), 1.0)
    put(f"{far}_ear", (hx + d * 0.3 * head_r, hy - 0.78 * head_r), 0.8)
    put("nose", (hx + d * 1.25 * head_r, hy + 0.15 * head_r), 1.0)
    put("tail", tail_root, 1.0)
    put("center", (cx, cy), 1.0)
    return kp


def _tiger_leg_joints(body_point: Callable[[float, float], Point], d: int, b: float,
                      ground: float, shift: float,
                      swings: tuple[float, ...]) -> tuple[Point, ...]:
    """Shoulder, elbow, front paw, hip, knee, back paw of one flank's legs."""
    front_swing, hind_swing = swings
    leg_len = 1.25 * b
    shoulder = body_point(0.62 + shift, 0.1)
    hip = body_point(-0.6 + shift, 0.0)
    paw_f = (shoulder[0] + d * leg_len * np.sin(front_swing), ground - 0.1 * b)
    elbow = _point_along(shoulder, paw_f, 0.5)
    elbow = (elbow[0] - d * 0.12 * b, elbow[1])
    paw_h = (hip[0] + d * leg_len * np.sin(hind_swing), ground - 0.1 * b)
    knee = (hip[0] + d * (0.35 * b + 0.5 * leg_len * np.sin(hind_swing)),
            hip[1] + 0.45 * (ground - hip[1]))
    return shoulder, elbow, paw_f, hip, knee, paw_h


def _paint_tiger_legs(canvas: Canvas, look: TigerLook, leg: tuple[Point, ...], b: float,
                      ground: float, shade: float) -> None:
    shoulder, elbow, paw_f, hip, knee, paw_h = leg
    texture = _leg_texture(look, canvas, min(shoulder[1], hip[1]), ground, shade)
    width = 0.42 * b
    canvas.paint(canvas.region(capsule(shoulder, elbow, width * 1.1),
                               capsule(elbow, paw_f, width * 0.85),
                               capsule(hip, knee, width * 1.3),
                               capsule(knee, paw_h, width * 0.8)), texture)
    paws = canvas.region(ellipse(paw_f[0], paw_f[1], 0.32 * b, 0.2 * b),
                         ellipse(paw_h[0], paw_h[1], 0.32 * b, 0.2 * b))
    canvas.paint(paws, look.base * shade * 0.95)


def _paint_tail(canvas: Canvas, look: TigerLook, pose: TigerPose, root: Point, a: float,
                b: float) -> None:
    d = pose.direction
    points = [root]
    angle = np.pi * 0.35  # from straight back, downward positive
    step = 0.09 * a
    for _ in range(10):
        angle -= pose.tail_curl * 0.25
        last = points[-1]
        points.append((last[0] - d * step * np.cos(angle), last[1] + step * np.sin(angle)))
    for k in range(10):
        width = 0.24 * b * (1.0 - 0.4 * k / 10)
        colour = look.stripe if look.tail_rings[k] else look.base
        canvas.paint(canvas.region(capsule(points[k], points[k + 1], width)), colour)


def _paint_tiger_head(canvas: Canvas, look: TigerLook, pose: TigerPose, neck: Point,
                      b: float) -> tuple[Point, float]:
    d = pose.direction
    r = 0.62 * b
    head = (neck[0] + d * 0.35 * r, neck[1] + pose.head_dy * b)
    hx, hy = head
    canvas.paint(canvas.region(ellipse(hx + d * 0.3 * r, hy - 0.85 * r, 0.26 * r, 0.26 * r)),
                 look.base * 0.7)  # far ear
    canvas.paint(canvas.region(capsule(neck, head, 1.3 * r)), look.base)
    canvas.paint(canvas.region(ellipse(hx, hy, r, 0.9 * r),
                               ellipse(hx - d * 0.15 * r, hy - 0.85 * r, 0.28 * r, 0.28 * r)),
                 look.base)
    canvas.paint(canvas.region(ellipse(hx + d * 0.85 * r, hy + 0.25 * r, 0.5 * r, 0.38 * r)),
                 look.belly)
    for x0, y0, x1, y1 in look.head_marks:
        mark = line((hx + d * x0 * 0.6 * r, hy + (y0 * 0.4 - 0.35) * r),
                    (hx + d * x1 * 0.6 * r, hy + (y1 * 0.4 - 0.35) * r), max(1.0, 0.12 * r))
        canvas.paint(canvas.region(mark) & canvas.region(ellipse(hx, hy, r, 0.9 * r)),
                     look.stripe)
    canvas.paint(canvas.region(ellipse(hx + d * 0.45 * r, hy - 0.2 * r, max(0.6, 0.1 * r),
                                       max(0.6, 0.1 * r))), np.array([25, 20, 10], np.float32))
    canvas.paint(canvas.region(ellipse(hx + d * 1.25 * r, hy + 0.15 * r, max(0.7, 0.12 * r),
                                       max(0.7, 0.1 * r))), np.array([60, 30, 30], np.float32))
    return head, r


# --- occluders and keypoint bookkeeping ----------------------------------------------------
def add_person_occluder(rng: np.random.Generator, canvas: Canvas,
                        amount: float = 1.0) -> np.ndarray:
    """Sometimes put a pole, a barrier or a box in front of the person; returns the covered
    region (all False when nothing was added). ``amount`` scales how often (at most 90%)."""
    h, w = canvas.height, canvas.width
    roll = rng.random()
    if amount != 1.0:  # same draws, wider bands: the neutral amount keeps the files identical
        roll = roll / min(amount, 0.9 / 0.3)
    if roll < 0.12:
        x = rng.uniform(0.2, 0.8) * w
        shape = line((x, -1), (x + rng.uniform(-0.05, 0.05) * w, h + 1),
                     rng.uniform(0.04, 0.1) * w)
    elif roll < 0.22:
        y = rng.uniform(0.72, 0.9) * h
        shape = polygon([(-1, y), (w + 1, y + rng.uniform(-0.04, 0.04) * h), (w + 1, h + 1),
                         (-1, h + 1)])
    elif roll < 0.3:
        x0, y0 = rng.uniform(-0.2, 0.6) * w, rng.uniform(0.6, 0.85) * h
        shape = polygon([(x0, y0), (x0 + 0.5 * w, y0), (x0 + 0.5 * w, h + 1), (x0, h + 1)])
    else:
        return np.zeros((h, w), dtype=bool)
    region = canvas.region(shape)
    canvas.paint(region, _textured(rng, canvas, clutter_colour(rng)), foreground=False)
    return region


def add_tiger_occluder(rng: np.random.Generator, canvas: Canvas) -> np.ndarray:
    """Sometimes grass in front of the paws; returns the covered region."""
    if rng.random() < 0.65:
        return np.zeros((canvas.height, canvas.width), dtype=bool)
    return _grass_blades(rng, canvas, int(rng.integers(10, 40)), canvas.height * 0.75,
                         foreground=False)


def finish_keypoints(kp: np.ndarray, occluded: np.ndarray) -> np.ndarray:
    """Zero the score of points outside the picture, lower it for points under an occluder."""
    h, w = occluded.shape
    kp = kp.copy()
    x, y = kp[:, 0], kp[:, 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    kp[~inside, 2] = 0.0
    xi = np.clip(np.rint(x), 0, w - 1).astype(int)
    yi = np.clip(np.rint(y), 0, h - 1).astype(int)
    covered = inside & occluded[yi, xi]
    kp[covered, 2] = np.minimum(kp[covered, 2], OCCLUDED_SCORE)
    return kp


# --- one sample -----------------------------------------------------------------------------
KINDS = ("person", "tiger")
_KIND_CODE = {"person": 1, "tiger": 2}
_IDENTITY_STREAM, _CAMERA_STREAM, _IMAGE_STREAM = 11, 12, 13


def identity_rng(seed: int, kind: str, pid: int) -> np.random.Generator:
    return np.random.default_rng([seed, _KIND_CODE[kind], _IDENTITY_STREAM, pid])


def camera_rng(seed: int, kind: str, cam: int) -> np.random.Generator:
    return np.random.default_rng([seed, _KIND_CODE[kind], _CAMERA_STREAM, cam])


def image_rng(seed: int, kind: str, pid: int, cam: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _KIND_CODE[kind], _IMAGE_STREAM, pid, cam, index])


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # uint8 [H, W, 3]
    mask: np.ndarray  # bool [H, W]
    keypoints: np.ndarray  # float32 [K, 3]


def render_sample(kind: str, seed: int, pid: int, cam: int, index: int, height: int,
                  width: int, camera_shift: float = 1.0, occlusion: float = 1.0) -> Sample:
    """The picture of identity ``pid`` seen by camera ``cam`` (its ``index``-th frame): a pure
    function of its arguments, independent of what else is generated and in which order.
    ``camera_shift`` scales the per-camera imaging differences and ``occlusion`` how often a
    person is occluded (both 1: the default sets)."""
    if kind not in _KIND_CODE:
        raise ValueError(f"unknown synthetic kind '{kind}'; expected one of {KINDS}")
    rng = image_rng(seed, kind, pid, cam, index)
    camera = harden_camera(make_camera(camera_rng(seed, kind, cam), kind), camera_shift)
    if kind == "person":
        canvas = Canvas(person_background(rng, camera, height, width))
        look = person_look(identity_rng(seed, kind, pid))
        size = min(height, 2.2 * width) * camera.scale * rng.uniform(0.94, 1.06)
        top = (height - size * look.height) / 2 + rng.uniform(-0.04, 0.04) * height
        cx = width / 2 + rng.uniform(-0.08, 0.08) * width
        keypoints = render_person(canvas, look, person_pose(rng), cx, top, size)
        occluded = add_person_occluder(rng, canvas, occlusion)
    else:
        canvas = Canvas(tiger_background(rng, camera, height, width))
        tiger = tiger_look(identity_rng(seed, kind, pid))
        pose = tiger_pose(rng)
        length = min(0.6 * width, 1.55 * height) * camera.scale * rng.uniform(0.94, 1.06)
        a = 0.5 * length * tiger.size
        cx = width / 2 - pose.direction * 0.1 * a + rng.uniform(-0.05, 0.05) * width
        extent = 3.0 * 0.38 * a * tiger.build  # head top to paws
        cy = (height - extent) / 2 + 1.2 * 0.38 * a * tiger.build
        cy += rng.uniform(-0.05, 0.05) * height
        keypoints = render_tiger(canvas, tiger, pose, cx, cy, length)
        occluded = add_tiger_occluder(rng, canvas)
    image = apply_camera(canvas.to_uint8(), camera, rng)
    return Sample(image, canvas.mask.copy(), finish_keypoints(keypoints, occluded))
