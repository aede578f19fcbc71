"""synthfaces: a procedural face domain with exact ground truth for every task.

A face is a set of attributes sampled from a seed (see `ATTRIBUTES` for the distribution). `render` draws faces
from attributes, batched and vectorised in PyTorch: every part is an analytic shape with an (approximate) signed
distance, anti-aliased by its coverage of each pixel and painted in a fixed order. The same pass gives

* the image [N, 3, R, R] in [-1, 1],
* the segmentation [N, R, R] (int64 labels `SEG_LABELS`: the last part painted over a pixel with coverage ≥ 0.5),
* the sketch [N, 1, R, R] in [-1, 1] (white paper = 1, black lines = -1): each part paints white paper over what
  it hides, then its contour, so hidden lines disappear as in a drawing.

Rendering is a pure function of the attributes, so the *same face* with one attribute changed is
`render(edit(attrs, smile=1.0))`; frontalisation is `edit(attrs, yaw=0.5)`. Coordinates: x to the right and y
downwards, both in [-1, 1] across the image; every length below is in those units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "LANDMARK_NAMES",
    "SEG_LABELS",
    "Attribute",
    "attribute_vector",
    "attributes_to_records",
    "closeup",
    "edit",
    "landmarks",
    "photo_look",
    "records_to_attributes",
    "render",
    "render_seeds",
    "sample_attributes",
    "vector_layout",
]


@dataclass(frozen=True)
class Attribute:
    """One face attribute. Continuous values lie in [0, 1]; categorical values are indices into ``choices``."""

    name: str
    kind: str  # "continuous" | "categorical"
    description: str
    choices: tuple[str, ...] = ()
    probs: tuple[float, ...] = ()
    distribution: str = "uniform"  # continuous: "uniform" or "triangular" (mean of two uniforms, peaked at 0.5)

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("skin_tone", "continuous", "0 very light … 1 very dark skin"),
    Attribute("face_width", "continuous", "0 narrow … 1 wide face"),
    Attribute("jaw", "continuous", "face shape: 0 round … 1 pointed chin"),
    Attribute("hair_style", "categorical", "hair style", ("none", "short", "long", "bun"), (0.15, 0.35, 0.30, 0.20)),
    Attribute("hair_color", "categorical", "hair colour", ("black", "brown", "blonde", "red", "gray", "blue"),
              (0.25, 0.25, 0.18, 0.12, 0.12, 0.08)),
    Attribute("eye_size", "continuous", "0 small … 1 large eyes"),
    Attribute("eye_color", "categorical", "iris colour", ("brown", "blue", "green", "gray"), (0.4, 0.25, 0.2, 0.15)),
    Attribute("eye_spacing", "continuous", "0 close … 1 wide-set eyes"),
    Attribute("brow_thickness", "continuous", "0 thin … 1 thick eyebrows"),
    Attribute("brow_tilt", "continuous", "0 sad (outer ends down) … 0.5 level … 1 angry (inner ends down)",
              distribution="triangular"),
    Attribute("smile", "continuous", "mouth curvature: 0 frown … 0.5 neutral … 1 broad smile"),
    Attribute("mouth_open", "continuous", "below 0.3 closed, then opening linearly to wide open at 1"),
    Attribute("nose_size", "continuous", "0 small … 1 large nose"),
    Attribute("glasses", "categorical", "glasses", ("none", "round", "square", "sunglasses"), (0.55, 0.15, 0.15, 0.15)),
    Attribute("glasses_color", "categorical", "frame colour", ("black", "red", "blue", "gold"), (0.4, 0.2, 0.2, 0.2)),
    Attribute("beard", "categorical", "facial hair", ("none", "stubble", "full"), (0.6, 0.2, 0.2)),
    Attribute("yaw", "continuous", "head turn: 0 = 34° to the left … 0.5 frontal … 1 = 34° to the right",
              distribution="triangular"),
    Attribute("bg_hue", "continuous", "background hue (HSV hue)"),
    Attribute("bg_gradient", "continuous", "0 flat … 1 strong background gradient"),
    Attribute("bg_angle", "continuous", "direction of the background gradient (angle / 2π)"),
    Attribute("light_angle", "continuous", "light from 0 the left … 1 the right"),
    Attribute("light_strength", "continuous", "0 flat … 1 strong directional lighting"),
    Attribute("clothes_hue", "continuous", "shirt hue (HSV hue)"),
)
ATTRIBUTE_NAMES = tuple(a.name for a in ATTRIBUTES)
_BY_NAME = {a.name: a for a in ATTRIBUTES}

SEG_LABELS = ("background", "skin", "hair", "eyes", "brows", "mouth", "nose", "glasses", "beard", "clothes")
_L = {name: i for i, name in enumerate(SEG_LABELS)}

_SKIN = torch.tensor([[0.98, 0.87, 0.78], [0.93, 0.76, 0.62], [0.80, 0.60, 0.45], [0.58, 0.40, 0.28],
                      [0.36, 0.24, 0.17]])
_HAIR = torch.tensor([[0.08, 0.07, 0.07], [0.38, 0.23, 0.12], [0.93, 0.80, 0.45], [0.75, 0.30, 0.12],
                      [0.68, 0.68, 0.70], [0.20, 0.35, 0.80]])
_IRIS = torch.tensor([[0.35, 0.20, 0.10], [0.20, 0.45, 0.80], [0.25, 0.55, 0.30], [0.50, 0.55, 0.58]])
_FRAME = torch.tensor([[0.05, 0.05, 0.05], [0.80, 0.10, 0.12], [0.10, 0.25, 0.75], [0.85, 0.68, 0.25]])
_LIPS = torch.tensor([0.75, 0.35, 0.35])
_MOUTH_IN = torch.tensor([0.30, 0.06, 0.08])
_TEETH = torch.tensor([0.97, 0.97, 0.95])
_WHITE = torch.tensor([0.98, 0.98, 0.98])
_PUPIL = torch.tensor([0.03, 0.03, 0.03])
_SUN_LENS = torch.tensor([0.08, 0.09, 0.12])

MAX_YAW = 0.6  # radians (34°)


# ------------------------------------------------------------------------------------------------------------------
# Attributes


def sample_attributes(seeds: Sequence[int] | int) -> dict[str, torch.Tensor]:
    """Sample attributes for each seed: ``{name: tensor [N]}`` (float32 in [0,1], or int64 category indices).

    Each seed gives the same face whatever else is sampled with it (one NumPy generator per seed), plus a hidden
    ``detail`` value (texture phase) that edits keep.
    """
    if isinstance(seeds, int):
        seeds = [seeds]
    rows = []
    for s in seeds:
        rng = np.random.default_rng([int(s) & 0xFFFFFFFF, 0x5F1A])  # independent stream per seed
        row = []
        for a in ATTRIBUTES:
            if a.is_categorical:
                row.append(float(rng.choice(len(a.choices), p=np.asarray(a.probs) / sum(a.probs))))
            elif a.distribution == "triangular":
                row.append(float((rng.random() + rng.random()) / 2))
            else:
                row.append(float(rng.random()))
        row.append(float(rng.random()))  # detail
        rows.append(row)
    table = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), len(ATTRIBUTES) + 1)
    out: dict[str, torch.Tensor] = {}
    for j, a in enumerate(ATTRIBUTES):
        col = table[:, j]
        out[a.name] = col.long() if a.is_categorical else col.float()
    out["detail"] = table[:, -1].float()
    return out


def edit(attrs: Mapping[str, torch.Tensor], **changes: float | int | str | torch.Tensor) -> dict[str, torch.Tensor]:
    """A copy of ``attrs`` with some attributes set for every face: ``edit(a, smile=1.0, glasses="round")``.

    Continuous values are in [0, 1] (``yaw=0.5`` is frontal); categorical values are choice names or indices.
    """
    out = {k: v.clone() for k, v in attrs.items()}
    n = len(next(iter(attrs.values())))
    for name, value in changes.items():
        if name not in _BY_NAME:
            raise KeyError(f"unknown attribute {name!r}; known: {', '.join(ATTRIBUTE_NAMES)}")
        a = _BY_NAME[name]
        if a.is_categorical:
            if isinstance(value, str):
                if value not in a.choices:
                    raise ValueError(f"{name} must be one of {a.choices}, got {value!r}")
                value = a.choices.index(value)
            t = torch.as_tensor(value, dtype=torch.long).expand(n).clone()
            if (t < 0).any() or (t >= len(a.choices)).any():
                raise ValueError(f"{name} index out of range 0..{len(a.choices) - 1}")
        else:
            t = torch.as_tensor(value, dtype=torch.float32).expand(n).clone()
            if (t < 0).any() or (t > 1).any():
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        out[name] = t
    return out


def vector_layout() -> list[tuple[str, int, int]]:
    """(attribute, start, stop) slices of `attribute_vector`: one dim per continuous, one-hot per categorical."""
    layout, pos = [], 0
    for a in ATTRIBUTES:
        width = len(a.choices) if a.is_categorical else 1
        layout.append((a.name, pos, pos + width))
        pos += width
    return layout


def attribute_vector(attrs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Normalised attribute vector [N, D] in [0, 1] (continuous values, then one-hot categories; see layout)."""
    parts = []
    for a in ATTRIBUTES:
        v = attrs[a.name]
        if a.is_categorical:
            parts.append(torch.nn.functional.one_hot(v.long(), len(a.choices)).float())
        else:
            parts.append(v.float()[:, None])
    return torch.cat(parts, dim=1)


def attributes_to_records(attrs: Mapping[str, torch.Tensor]) -> list[dict[str, float | str]]:
    """One JSON-friendly dict per face (categories as names, floats rounded to 6 digits)."""
    n = len(attrs[ATTRIBUTES[0].name])
    recs = []
    for i in range(n):
        rec: dict[str, float | str] = {}
        for a in ATTRIBUTES:
            v = attrs[a.name][i]
            rec[a.name] = a.choices[int(v)] if a.is_categorical else round(float(v), 6)
        rec["detail"] = round(float(attrs["detail"][i]), 6)
        recs.append(rec)
    return recs


def records_to_attributes(records: Sequence[Mapping[str, float | str]]) -> dict[str, torch.Tensor]:
    """Inverse of `attributes_to_records`."""
    out: dict[str, torch.Tensor] = {}
    for a in ATTRIBUTES:
        vals = [r[a.name] for r in records]
        if a.is_categorical:
            out[a.name] = torch.tensor([a.choices.index(v) if isinstance(v, str) else int(v) for v in vals])
        else:
            out[a.name] = torch.tensor([float(v) for v in vals], dtype=torch.float32)
    out["detail"] = torch.tensor([float(r.get("detail", 0.0)) for r in records], dtype=torch.float32)
    return out


# ------------------------------------------------------------------------------------------------------------------
# Shapes: approximate signed distances (negative inside), broadcast over [N, H, W]


def _ellipse(x: torch.Tensor, y: torch.Tensor, cx, cy, a, b) -> torch.Tensor:
    """First-order signed distance to the ellipse ((x-cx)/a)^2 + ((y-cy)/b)^2 = 1."""
    dx, dy = (x - cx) / a, (y - cy) / b
    f = dx * dx + dy * dy - 1
    grad = 2 * torch.sqrt((dx / a) ** 2 + (dy / b) ** 2 + 1e-12)
    # Far from the boundary the first-order estimate is poor, but coverage only needs it near the edge.
    return f / grad


def _box(x, y, cx, cy, hw, hh, r) -> torch.Tensor:
    """Rounded box with half sizes (hw, hh) and corner radius r."""
    qx = (x - cx).abs() - hw + r
    qy = (y - cy).abs() - hh + r
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.minimum(torch.maximum(qx, qy), torch.zeros_like(qx)) - r


def _capsule(x, y, x0, y0, x1, y1, r) -> torch.Tensor:
    """Segment (x0,y0)-(x1,y1) thickened to radius r."""
    px, py = x - x0, y - y0
    bx, by = x1 - x0, y1 - y0
    h = ((px * bx + py * by) / (bx * bx + by * by + 1e-12)).clamp(0, 1)
    return torch.sqrt((px - bx * h) ** 2 + (py - by * h) ** 2) - r


def _coverage(d: torch.Tensor, px: float) -> torch.Tensor:
    """Pixel coverage of the region d < 0 (a one-pixel linear ramp across the edge)."""
    return (0.5 - d / px).clamp(0, 1)


def _line(d: torch.Tensor, width: float, px: float) -> torch.Tensor:
    """Coverage of a contour line of half-width ``width`` along d = 0."""
    return (0.5 - (d.abs() - width) / px).clamp(0, 1)


def _hsv(h: torch.Tensor, s: float | torch.Tensor, v: float | torch.Tensor) -> torch.Tensor:
    """HSV → RGB for h [N] in [0, 1]; returns [N, 3]."""
    h = h.float()
    s = torch.as_tensor(s, dtype=torch.float32).expand_as(h)
    v = torch.as_tensor(v, dtype=torch.float32).expand_as(h)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    f = 1 - torch.minimum(torch.minimum(k, 4 - k), torch.ones_like(k)).clamp(min=0)
    return v[:, None] * (1 - s[:, None] * (1 - f))


def _palette(table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear colour ramp through the rows of ``table`` for t [N] in [0, 1] → [N, 3]."""
    pos = t.clamp(0, 1) * (len(table) - 1)
    i0 = pos.floor().long().clamp(max=len(table) - 2)
    w = (pos - i0)[:, None]
    return table[i0] * (1 - w) + table[i0 + 1] * w


class _Canvas:
    """Painter's-algorithm canvas for image, segmentation and sketch together."""

    def __init__(self, n: int, res: int, want_seg: bool, want_sketch: bool) -> None:
        self.img = torch.zeros(n, 3, res, res)
        self.seg = torch.zeros(n, res, res, dtype=torch.long) if want_seg else None
        self.sketch = torch.ones(n, res, res) if want_sketch else None
        self.px = 2.0 / res

    def paint(self, cov: torch.Tensor, color: torch.Tensor, label: int | None = None,
              outline: torch.Tensor | None = None, paper: bool | torch.Tensor = True,
              label_cov: torch.Tensor | None = None) -> None:
        """Paint ``color`` ([N,3] or [N,3,H,W]) with coverage ``cov`` [N,H,W].

        ``outline``: coverage of the part's contour in the sketch; ``paper``: whether (or with which coverage) the
        part hides earlier lines of the sketch. ``label_cov``: coverage deciding the label where the part is
        translucent (stubble), default ``cov``.
        """
        c = color if color.ndim == 4 else color[:, :, None, None]
        self.img += cov[:, None] * (c - self.img)
        if self.seg is not None and label is not None:
            lc = cov if label_cov is None else label_cov
            self.seg = torch.where(lc >= 0.5, torch.full_like(self.seg, label), self.seg)
        if self.sketch is not None:
            if isinstance(paper, torch.Tensor):
                self.sketch += paper * (1 - self.sketch)
            elif paper:
                self.sketch += cov * (1 - self.sketch)
            if outline is not None:
                self.sketch *= 1 - outline

    def ink(self, line: torch.Tensor) -> None:
        """Sketch-only strokes (creases, hair strands)."""
        if self.sketch is not None:
            self.sketch *= 1 - line


# ------------------------------------------------------------------------------------------------------------------
# Rendering


def render(
    attrs: Mapping[str, torch.Tensor],
    resolution: int = 64,
    outputs: Sequence[str] = ("image", "seg", "sketch"),
) -> dict[str, torch.Tensor]:
    """Draw the faces described by ``attrs`` (as from `sample_attributes`, possibly edited).

    Args:
        resolution: side in pixels, a power of two in [32, 256] (other sizes work but are not tested).
        outputs: any of "image" ([N,3,R,R] in [-1,1]), "seg" ([N,R,R] int64 labels of `SEG_LABELS`),
            "sketch" ([N,1,R,R] in [-1,1], lines dark).
    """
    unknown = set(outputs) - {"image", "seg", "sketch"}
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; choose from image, seg, sketch")
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8, got {resolution}")
    missing = [a.name for a in ATTRIBUTES if a.name not in attrs]
    if missing:
        raise KeyError(f"missing attributes {missing}")
    with torch.no_grad():
        canvas = _draw(attrs, resolution, "seg" in outputs, "sketch" in outputs)
    out = {}
    if "image" in outputs:
        out["image"] = (canvas.img.clamp(0, 1) * 2 - 1).contiguous()
    if "seg" in outputs:
        out["seg"] = canvas.seg
    if "sketch" in outputs:
        out["sketch"] = (canvas.sketch.clamp(0, 1) * 2 - 1)[:, None].contiguous()
    return out


def render_seeds(seeds: Sequence[int], resolution: int = 64, outputs: Sequence[str] = ("image", "seg", "sketch"),
                 **changes: float | int | str) -> dict[str, torch.Tensor]:
    """`render` of `sample_attributes(seeds)`, optionally edited; also returns the attributes under "attrs"."""
    attrs = sample_attributes(seeds)
    if changes:
        attrs = edit(attrs, **changes)
    out = render(attrs, resolution, outputs)
    out["attrs"] = attrs  # type: ignore[assignment]
    return out


def _col(t: torch.Tensor) -> torch.Tensor:
    """[N] → [N, 1, 1] for broadcasting against the pixel grid."""
    return t.float()[:, None, None]


def _draw(attrs: Mapping[str, torch.Tensor], res: int, want_seg: bool, want_sketch: bool) -> _Canvas:
    n = len(attrs["skin_tone"])
    cv = _Canvas(n, res, want_seg, want_sketch)
    px = cv.px
    lw = max(0.5 * px, 0.012)  # sketch line half-width: at least one pixel wide overall
    coords = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    y, x = coords[None, :, None], coords[None, None, :]  # [1,H,1], [1,1,W]
    a = {k: v for k, v in attrs.items()}
    detail = a.get("detail", torch.zeros(n))

    # --- background: hue, saturation, a linear gradient towards a darker shade -----------------------------------
    c1 = _hsv(a["bg_hue"], 0.35, 0.88)
    c2 = _hsv((a["bg_hue"] + 0.08) % 1.0, 0.5, 0.55)
    ang = _col(a["bg_angle"]) * 2 * math.pi
    t = (0.5 + 0.5 * (x * torch.cos(ang) + y * torch.sin(ang))).clamp(0, 1) * _col(a["bg_gradient"])
    bg = c1[:, :, None, None] + t[:, None] * (c2 - c1)[:, :, None, None]
    cv.paint(torch.ones(n, res, res), bg, _L["background"], paper=True)

    # --- head geometry ------------------------------------------------------------------------------------------
    theta = (_col(a["yaw"]) * 2 - 1) * MAX_YAW  # [N,1,1]
    sin_t = torch.sin(theta)
    fa = 0.40 + 0.12 * _col(a["face_width"])  # face half-width
    fb = 0.56 - 0.03 * _col(a["face_width"])  # face half-height
    cx = -0.06 * sin_t  # the silhouette moves a little against the turn; features move with it
    cy = torch.full_like(cx, -0.04)
    jaw = _col(a["jaw"])

    def surface_x(u: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected x of a face point at horizontal surface position u = sin(phi), and its foreshortening."""
        phi = torch.asin(torch.as_tensor(u).clamp(-0.99, 0.99)) + theta
        return cx + fa * torch.sin(phi), torch.cos(phi).clamp(min=0.15)

    skin = _palette(_SKIN, a["skin_tone"])  # [N,3]
    hair_c = _HAIR[a["hair_color"].long()]  # [N,3]
    style = a["hair_style"].long()
    # Lighting: Lambert on an ellipsoid head, light direction from light_angle.
    la = (_col(a["light_angle"]) * 2 - 1) * 1.1
    lx, ly, lz = torch.sin(la), torch.full_like(la, -0.35), torch.cos(la)
    lnorm = torch.sqrt(lx * lx + ly * ly + lz * lz)
    nx, ny = (x - cx) / (fa * 1.05), (y - cy) / (fb * 1.05)
    nz = (1 - nx * nx - ny * ny).clamp(min=0).sqrt()
    ndotl = ((nx * lx + ny * ly + nz * lz) / lnorm).clamp(-1, 1)
    shade = 1 - 0.45 * _col(a["light_strength"]) * (1 - ndotl) * 0.8  # [N,H,W]
    streak = 0.92 + 0.08 * torch.sin(38 * x + 9 * y + _col(detail) * 6.283)  # hair strands texture
    hair_tex = hair_c[:, :, None, None] * (streak * (0.75 + 0.25 * shade))[:, None]

    # --- hair behind the head (long, bun) -------------------------------------------------------------------------
    hx = cx - 0.05 * sin_t
    d_long = torch.minimum(_ellipse(x, y, hx, cy - 0.05, fa + 0.13, fb + 0.10),
                           _box(x, y, hx, cy + 0.38, fa + 0.12, 0.42, 0.1))
    d_bun = _ellipse(x, y, hx, cy - fb - 0.10, 0.17, 0.15)
    big = torch.full_like(d_long, 10.0)
    d_back = torch.where(_col(style) == 2, d_long, big)
    d_back = torch.minimum(d_back, torch.where(_col(style) == 3, d_bun, big))
    cov = _coverage(d_back, px)
    cv.paint(cov, hair_tex, _L["hair"], outline=_line(d_back, lw, px))

    # --- neck, then clothes over its lower end ---------------------------------------------------------------------
    d_neck = _box(x, y, cx * 0.8, cy + fb + 0.08, 0.15 + 0.04 * _col(a["face_width"]), 0.26, 0.05)
    cv.paint(_coverage(d_neck, px), skin * 0.82, _L["skin"], outline=_line(d_neck, lw, px))
    cloth = _hsv(a["clothes_hue"], 0.55, 0.75)
    d_cloth = _ellipse(x, y, cx * 0.5, torch.full_like(cx, 1.32), torch.full_like(cx, 0.92), torch.full_like(cx, 0.62))
    cloth_tex = cloth[:, :, None, None] * (0.85 + 0.15 * (1 - y.clamp(0, 1)))[:, None]
    cv.paint(_coverage(d_cloth, px), cloth_tex, _L["clothes"], outline=_line(d_cloth, lw, px))

    # --- ears (behind the face: a turned head hides one) ---------------------------------------------------------
    for side in (-1.0, 1.0):
        ex, fore = surface_x(side * 0.99)
        d_ear = _ellipse(x, y, ex + side * 0.03 * fore, cy + 0.02, 0.06 + 0.03 * fore, torch.full_like(ex, 0.11))
        cv.paint(_coverage(d_ear, px), skin * 0.9, _L["skin"], outline=_line(d_ear, lw, px))

    # --- face: an ellipse whose lower half narrows towards the chin -----------------------------------------------
    rel = ((y - cy) / fb).clamp(0, 1)  # below the chin the width stays as at the chin
    narrow = 1 - jaw * 0.38 * rel * rel
    d_face = _ellipse(x, y, cx, cy, fa * narrow, fb)
    face_tex = skin[:, :, None, None] * shade[:, None]
    cov_face = _coverage(d_face, px)
    cv.paint(cov_face, face_tex, _L["skin"], outline=_line(d_face, lw, px))

    # --- beard ----------------------------------------------------------------------------------------------------
    beard = a["beard"].long()
    mouth_y = cy + 0.30 * fb / 0.54
    d_beard = torch.maximum(_ellipse(x, y, cx, cy + 0.03, fa * narrow + 0.02, fb + 0.05), (cy + 0.13) - y)
    beard_alpha = torch.where(beard == 2, 1.0, torch.where(beard == 1, 0.45, 0.0))
    cov_beard_shape = _coverage(d_beard, px) * _col((beard > 0).float())
    cov_b = cov_beard_shape * _col(beard_alpha)
    speckle = 0.85 + 0.15 * torch.sin(61 * x + 3.1) * torch.sin(57 * y + _col(detail) * 6.283)
    full = _col((beard == 2).float())
    cv.paint(cov_b, hair_c[:, :, None, None] * speckle[:, None], _L["beard"],
             outline=_line(d_beard, lw, px) * full, paper=cov_b * full,  # stubble leaves the drawing as it is
             label_cov=cov_beard_shape)

    # --- nose -------------------------------------------------------------------------------------------------------
    nose_x, nose_fore = surface_x(torch.zeros(n, 1, 1))
    nose_x = nose_x + 0.05 * sin_t  # the tip protrudes, so it moves further than the surface
    ns = 0.045 + 0.035 * _col(a["nose_size"])
    nose_y = cy + 0.14
    d_nose = _ellipse(x, y, nose_x, nose_y, ns * (0.8 + 0.2 * nose_fore), ns * 0.65)
    cv.paint(_coverage(d_nose, px) * 0.8, skin * 0.78, _L["nose"], paper=False)
    d_bridge = _capsule(x, y, nose_x - 0.5 * ns * sin_t - 0.01, cy - 0.05, nose_x - 0.6 * ns, nose_y,
                        torch.zeros_like(ns))
    cv.ink(_line(d_bridge, lw * 0.8, px))
    cv.ink(_line(_ellipse(x, y, nose_x, nose_y + 0.01, ns * 0.9, ns * 0.5), lw * 0.8, px) * (y > nose_y).float())

    # --- mouth: lips band around a curve whose corners rise with the smile; opens into a dark inside ----------------
    mx, mfore = surface_x(torch.zeros(n, 1, 1))
    mw = (0.15 + 0.04 * _col(a["smile"])) * (0.55 + 0.45 * mfore)
    s = _col(a["smile"]) * 2 - 1
    opening = ((_col(a["mouth_open"]) - 0.3) / 0.7).clamp(min=0) * 0.11
    u = ((x - mx) / mw).clamp(-1.2, 1.2)
    upper = mouth_y + 0.035 * s * (1 - u * u) - 0.012 * s  # corners up when smiling
    lower = upper + opening * (1 - u * u).clamp(min=0)
    lip = 0.018
    inside_w = (x - mx).abs() - mw
    d_lips = torch.maximum(inside_w, torch.maximum(upper - lip - y, y - lower - lip))
    cv.paint(_coverage(d_lips, px) * cov_face, _LIPS.expand(n, 3) * skin * 1.2, _L["mouth"],
             outline=_line(d_lips, lw, px) * cov_face)
    d_in = torch.maximum(inside_w + 0.015, torch.maximum(upper - y, y - lower))
    teeth = (y < upper + 0.35 * (lower - upper)).float()
    mouth_in = _MOUTH_IN[:, None, None] + teeth[:, None] * (_TEETH - _MOUTH_IN)[:, None, None]
    is_open = (opening / (2 * px)).clamp(0, 1)  # fades in over the first two pixels of opening
    cv.paint(_coverage(d_in, px) * is_open * cov_face, mouth_in.expand(n, 3, res, res), _L["mouth"],
             outline=_line(d_in, lw * 0.8, px) * is_open * cov_face)
    d_closed = torch.maximum((y - upper).abs() - lw, inside_w)  # the line between closed lips
    cv.ink(_coverage(d_closed, px) * (1 - is_open) * cov_face)

    # --- eyes -------------------------------------------------------------------------------------------------------
    spacing = 0.36 + 0.16 * _col(a["eye_spacing"])
    er = 0.075 + 0.05 * _col(a["eye_size"])
    eye_y = cy - 0.06
    iris_c = _IRIS[a["eye_color"].long()]
    eyes = []
    for side in (-1.0, 1.0):
        ex, fore = surface_x(side * spacing)
        rx, ry = er * fore, er * 0.62
        d_white = _ellipse(x, y, ex, eye_y, rx, ry)
        cv.paint(_coverage(d_white, px), _WHITE.expand(n, 3), _L["eyes"], outline=_line(d_white, lw, px))
        ir = er * 0.55
        d_iris = torch.maximum(_ellipse(x, y, ex, eye_y, ir * fore, ir), d_white)
        cv.paint(_coverage(d_iris, px), iris_c, _L["eyes"], outline=_line(d_iris, lw * 0.7, px))
        d_pupil = _ellipse(x, y, ex, eye_y, ir * 0.45 * fore, ir * 0.45)
        cv.paint(_coverage(d_pupil, px), _PUPIL.expand(n, 3), _L["eyes"], outline=_coverage(d_pupil, px))
        eyes.append((ex, fore, rx, ry))

    # --- brows ------------------------------------------------------------------------------------------------------
    bt = 0.012 + 0.022 * _col(a["brow_thickness"])
    tilt = (_col(a["brow_tilt"]) * 2 - 1) * 0.05
    brow_c = hair_c * 0.6 + 0.05
    for side, (ex, _, rx, ry) in zip((-1.0, 1.0), eyes):
        by = eye_y - ry - 0.055
        inner_x, outer_x = ex - side * rx * 0.9, ex + side * rx * 1.1
        d_brow = _capsule(x, y, inner_x, by + tilt, outer_x, by - tilt - 0.01, bt)
        cov_brow = _coverage(d_brow, px) * cov_face
        cv.paint(cov_brow, brow_c, _L["brows"], outline=cov_brow)

    # --- hair in front: a cap above a hairline that dips at the temples --------------------------------------------
    hairline = cy - fb * 0.45 + 0.16 * ((x - hx) / fa) ** 2
    d_cap = torch.maximum(_ellipse(x, y, hx, cy - 0.02, fa + 0.06, fb + 0.07), y - hairline)
    d_front = torch.where(_col(style) >= 1, d_cap, big)
    cv.paint(_coverage(d_front, px), hair_tex, _L["hair"], outline=_line(d_front, lw, px))
    strands = _line(torch.sin(22 * (x - hx) + 4 * y + _col(detail) * 6.283) * 0.02, lw * 0.5, px)
    cv.ink(strands * _coverage(d_front + 0.04, px) * 0.35)

    # --- glasses ------------------------------------------------------------------------------------------------------
    kind = a["glasses"].long()
    frame_c = _FRAME[a["glasses_color"].long()]
    ft = 0.012
    d_frames = big
    d_lenses = big
    for ex, fore, _, _ in eyes:
        gr = er * 1.55
        d_round = _ellipse(x, y, ex, eye_y + 0.01, gr * fore, gr * 0.85)
        d_square = _box(x, y, ex, eye_y + 0.01, gr * fore, gr * 0.72, 0.03)
        d_lens = torch.where(_col(kind) == 1, d_round, d_square)
        d_lenses = torch.minimum(d_lenses, d_lens)
        d_frames = torch.minimum(d_frames, d_lens.abs() - ft)
    (lx0, lf0, _, _), (rx0, rf0, _, _) = eyes
    d_bridge = _capsule(x, y, lx0 + er * 1.5 * lf0, eye_y, rx0 - er * 1.5 * rf0, eye_y, torch.full_like(lx0, ft))
    d_frames = torch.minimum(d_frames, d_bridge)
    has = _col((kind > 0).float())
    sun = _col((kind == 3).float())
    cov_l = _coverage(d_lenses, px) * has
    lens_col = _SUN_LENS[None, :, None, None] * sun[:, None] + cv.img * (1 - sun[:, None]) * 0.92
    cv.paint(cov_l * (0.15 + 0.8 * sun), lens_col.expand(n, 3, res, res), paper=False)
    if cv.seg is not None:  # sunglasses hide the eyes; clear lenses do not
        cv.seg = torch.where((cov_l * sun >= 0.5), torch.full_like(cv.seg, _L["glasses"]), cv.seg)
    cv.paint(_coverage(d_frames, px) * has, frame_c, _L["glasses"], outline=_coverage(d_frames - lw, px) * has,
             paper=False)
    return cv


# ------------------------------------------------------------------------------------------------------------------
# Landmarks, the photo look and close-ups: the out-of-domain inputs whose truth is known

LANDMARK_NAMES = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right")  # as seen: left = smaller x


def landmarks(attrs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The renderer's exact positions of `LANDMARK_NAMES` per face: [N, 5, 2] (x, y) in image coordinates [-1, 1].

    Eye centres, the nose tip and the mouth corners, from the same formulas `render` draws them with (a test checks
    them against the rendered segmentation). The 5-point layout of dlib's 68: means of points 36–41 and 42–47,
    point 30, points 48 and 54.
    """
    theta = (attrs["yaw"].float() * 2 - 1) * MAX_YAW
    sin_t = torch.sin(theta)
    fw = attrs["face_width"].float()
    fa, fb = 0.40 + 0.12 * fw, 0.56 - 0.03 * fw
    cx, cy = -0.06 * sin_t, -0.04

    def surface_x(u: torch.Tensor | float) -> torch.Tensor:
        phi = torch.asin(torch.as_tensor(u, dtype=torch.float32).clamp(-0.99, 0.99)) + theta
        return cx + fa * torch.sin(phi)

    spacing = 0.36 + 0.16 * attrs["eye_spacing"].float()
    eye_y = torch.full_like(theta, cy - 0.06)
    eyes = [torch.stack([surface_x(side * spacing), eye_y], -1) for side in (-1.0, 1.0)]
    nose = torch.stack([surface_x(0.0) + 0.05 * sin_t, torch.full_like(theta, cy + 0.14)], -1)
    mfore = torch.cos(theta).clamp(min=0.15)
    smile = attrs["smile"].float()
    mw = (0.15 + 0.04 * smile) * (0.55 + 0.45 * mfore)
    corner_y = cy + 0.30 * fb / 0.54 - 0.012 * (smile * 2 - 1)
    mx = surface_x(0.0)
    mouth = [torch.stack([mx + side * mw, corner_y], -1) for side in (-1.0, 1.0)]
    return torch.stack([*eyes, nose, *mouth], dim=1)


def _face_rngs(attrs: Mapping[str, torch.Tensor], seed: int) -> list[torch.Generator]:
    """One CPU generator per face, from its hidden ``detail`` value and ``seed``: the same face always gets the
    same photo look, whatever it is rendered with."""
    detail = attrs.get("detail", torch.zeros(len(attrs["yaw"])))
    return [torch.Generator().manual_seed(int(float(d) * 2**31) * 7919 + seed) for d in detail]


def photo_look(image: torch.Tensor, seg: torch.Tensor, attrs: Mapping[str, torch.Tensor],
               seed: int = 0) -> torch.Tensor:
    """The same faces drawn as a photograph would show them — a look the generator never produces.

    image [N, 3, R, R] in [-1, 1] and seg [N, R, R] from `render`; returns [N, 3, R, R] in [-1, 1]. Per face
    (its own random settings, from ``detail`` and ``seed``): soft shading darkening towards the face's outline and a
    cast shadow behind the head, a directional light gradient, skin texture (two scales of multiplicative noise),
    hair strands, blotchy background clutter, a specular highlight on the forehead, white balance, saturation,
    gamma and contrast, a vignette, lens blur, sensor noise and JPEG compression. The layout — what every
    attribute says — is untouched, so `render`'s clean image stays the ground truth.
    """
    from stylebridge.core.filters import gaussian_blur, jpeg_roundtrip, smooth_noise

    n, _, res, _ = image.shape
    rngs = _face_rngs(attrs, seed)
    u = torch.stack([torch.rand(16, generator=g) for g in rngs])  # [N, 16] settings
    lin = lambda k, lo, hi: (lo + (hi - lo) * u[:, k])[:, None, None, None]  # noqa: E731
    img = (image.float() + 1) / 2
    coords = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    y, x = coords[None, None, :, None], coords[None, None, None, :]
    s = seg[:, None]
    skin = ((s == _L["skin"]) | (s == _L["nose"]) | (s == _L["mouth"]) | (s == _L["brows"])).float()
    hair = ((s == _L["hair"]) | (s == _L["beard"])).float()
    bg = (s == _L["background"]).float()
    person = 1 - bg
    px = res / 64  # pixels per pixel at 64 px: filters scale with the resolution

    # Shading: darker towards the face's outline (a rounded surface) and a soft shadow the head casts behind it.
    wide = gaussian_blur(skin, torch.full((n,), 3.0 * px), math.ceil(9 * px))
    img = img * (1 - lin(0, 0.25, 0.5) * (1 - wide) * skin)
    halo = gaussian_blur(person, torch.full((n,), 4.0 * px), math.ceil(12 * px))
    img = img * (1 - lin(1, 0.15, 0.4) * halo * bg)
    ang = u[:, 2, None, None, None] * 2 * math.pi
    img = img * (1 + lin(3, 0.15, 0.4) * (x * torch.cos(ang) + y * torch.sin(ang)))

    # Textures: pores and blotches on skin, strands in the hair, clutter in the background.
    fields = []
    for g in rngs:
        fine = smooth_noise(1, res, max(4, res // 4), g)
        mid = smooth_noise(1, res, max(3, res // 10), g)
        strands = smooth_noise(1, res, max(2, res // 16), g, stretch=(1, 6))
        clutter = smooth_noise(1, res, 5, g, channels=3)
        fields.append(torch.cat([fine, mid, strands, clutter], dim=1))
    f = torch.cat(fields)  # [N, 6, R, R]
    img = img * (1 + lin(4, 0.03, 0.07) * (0.6 * f[:, 0:1] + 0.4 * f[:, 1:2]) * skin)
    img = img * (1 + lin(5, 0.15, 0.3) * f[:, 2:3] * hair)
    clutter = 0.6 * f[:, 3:6].mean(1, keepdim=True) + 0.4 * f[:, 3:6]  # mostly light and dark, a little colour
    img = img + lin(6, 0.08, 0.2) * clutter * bg

    # A specular highlight on the forehead, towards the light.
    hx = -0.06 * torch.sin((attrs["yaw"].float() * 2 - 1) * MAX_YAW)[:, None, None, None] + 0.12 * torch.cos(ang)
    hy = -0.38 + 0.06 * torch.sin(ang)
    spot = torch.exp(-((x - hx) ** 2 + (y - hy) ** 2) / (2 * 0.1**2))
    img = img + lin(7, 0.05, 0.22) * spot * skin

    # Camera: white balance, saturation, gamma, contrast, vignette, lens blur, sensor noise, JPEG.
    wb = lin(8, -0.08, 0.08)
    img = img * torch.cat([1 + wb, torch.ones_like(wb), 1 - wb], dim=1)
    luma = (img * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
    img = luma + lin(9, 0.5, 0.95) * (img - luma)
    img = img.clamp(0, 1) ** lin(10, 0.8, 1.25)
    img = (img - 0.5) * lin(11, 0.75, 1.1) + 0.5
    img = img * (1 - lin(12, 0.0, 0.35) * (x * x + y * y) / 2)
    sigma = (0.5 + 0.6 * u[:, 13]) * px
    img = gaussian_blur(img, sigma, math.ceil(3.3 * px))
    noise = torch.stack([torch.randn(2, res, res, generator=g) for g in rngs])  # luma + chroma
    amp = lin(14, 0.01, 0.04)
    img = img + amp * (0.8 * noise[:, :1] + 0.4 * noise[:, 1:2] * torch.tensor([1.0, -0.5, 0.3])[None, :, None, None])
    out = img.clamp(0, 1) * 2 - 1
    quality = (30 + 55 * u[:, 15]).round().long()
    return jpeg_roundtrip(out, quality)


def closeup(image: torch.Tensor, attrs: Mapping[str, torch.Tensor], size: int, grayscale: bool = True,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight crops of the faces, as face photos are often cut: the face fills the frame, no hair-do or shoulders.

    image [N, 3, R, R] in [-1, 1] (render at 2–4× ``size`` so the crop is not upsampled); returns the crops
    [N, C, size, size] in [-1, 1] (C = 3; gray in every channel with ``grayscale``) and the `landmarks` in the
    crop's image coordinates [N, 5, 2]. Each face's crop is centred between its eyes and mouth, with half-side
    1.35 × the eye-to-mouth distance, jittered per face (±10 % scale, ±0.08 shift, ±8° rotation; from ``detail`` and
    ``seed``) so that aligning it back has something to undo.
    """
    n, _, res, _ = image.shape
    lm = landmarks(attrs)
    eyes, mouth = lm[:, :2].mean(1), lm[:, 3:].mean(1)
    u = torch.stack([torch.rand(4, generator=g) for g in _face_rngs(attrs, seed + 1)])
    centre = (eyes + mouth) / 2 + (u[:, :2] - 0.5) * 0.16
    half = 1.35 * (mouth - eyes).norm(dim=1) * (0.9 + 0.2 * u[:, 2])
    rot = (u[:, 3] - 0.5) * 2 * math.radians(8)
    cos, sin = torch.cos(rot), torch.sin(rot)
    # crop coordinate q → image coordinate p = centre + half · R(rot) q
    theta = torch.stack([torch.stack([half * cos, -half * sin, centre[:, 0]], 1),
                         torch.stack([half * sin, half * cos, centre[:, 1]], 1)], 1)  # [N, 2, 3]
    # sample finer than ``size`` (at about the render's own pixel density) and area-reduce: antialiased crops
    fine = max(size, round(size * max(1.0, float(half.max()) * res / size)))
    grid = torch.nn.functional.affine_grid(theta, [n, 3, fine, fine], align_corners=False)
    crop = torch.nn.functional.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)
    crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="area") if fine != size else crop
    if grayscale:
        luma = (crop * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
        crop = luma.expand(-1, 3, -1, -1).contiguous()
    # landmarks: q = R(-rot) (p - centre) / half
    d = lm - centre[:, None]
    q = torch.stack([cos[:, None] * d[..., 0] + sin[:, None] * d[..., 1],
                     -sin[:, None] * d[..., 0] + cos[:, None] * d[..., 1]], -1) / half[:, None, None]
    return crop, q
