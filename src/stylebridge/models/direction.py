"""Editing directions in a StyleGAN2's latent space, as models: saved natively (``config.json`` + safetensors, the
provenance in the config), loaded by ``stylebridge.load`` like any model, and applied to w [N, w_dim] or
W+ [N, num_ws, w_dim].

* `Direction` — one direction: a vector in W (applied to every W+ row of its layer range) or a per-row W+ offset
  [num_ws, w_dim], with its layer range, a suggested strength range, a name and where it came from (method,
  generator, labels). ``apply(latents, strength)`` is e4e's ``apply_interfacegan``: ``latents + strength · d``.
* `GanSpaceComponents` — GANSpace's PCA of sampled w (mean, components, standard deviations). ``apply(w_plus,
  edits)`` takes e4e's edit tuples (component, first row, end row (exclusive), strength) and returns one edited
  code per latent and edit, latent-major (e4e's ``editings/ganspace.py``): the component's coordinate of row 0 is
  *set* to ``strength`` standard deviations.

The finders that make them from a user's generator live in `stylebridge.edit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from stylebridge.core.native import PretrainedModel

__all__ = ["Direction", "DirectionConfig", "GanSpaceComponents", "GanSpaceConfig", "parse_layers"]


def parse_layers(spec: str | Sequence[int] | None, num_ws: int | None = None) -> tuple[int, ...] | None:
    """W+ rows from "all" / None (every row: None), "a-b" (a..b inclusive), "a,b,c" or a sequence of ints."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "all")):
        return None
    if isinstance(spec, str):
        rows: list[int] = []
        for part in spec.split(","):
            lo, sep, hi = part.strip().partition("-")
            if not lo.isdigit() or (sep and not hi.isdigit()) or (sep and int(hi) < int(lo)):
                raise ValueError(f"invalid layer range {spec!r} (use 'all', 'a-b' or 'a,b,c'; rows are >= 0)")
            top = int(hi) if sep else int(lo)
            if num_ws is not None and top >= num_ws:  # before building the rows: "0-1000000000" is one line of text
                raise ValueError(f"layer range {spec!r} goes beyond the generator's {num_ws} W+ rows "
                                 f"(0-{num_ws - 1})")
            rows.extend(range(int(lo), top + 1))
    else:
        rows = [int(r) for r in spec]
    if not rows:
        raise ValueError(f"no rows in layer range {spec!r}")
    if num_ws is not None and max(rows) >= num_ws:
        raise ValueError(f"layer range {spec!r} goes beyond the generator's {num_ws} W+ rows (0-{num_ws - 1})")
    return tuple(sorted(set(rows)))


@dataclass(frozen=True)
class DirectionConfig:
    """One editing direction and its provenance."""

    w_dim: int = 512
    num_ws: int = 0  # 0: a vector in W; > 0: a per-row W+ offset with this many rows
    layers: tuple[int, ...] | None = None  # W+ rows the edit moves (None: all)
    name: str = "direction"
    strength_range: tuple[float, ...] = (-3.0, 3.0)  # suggested strengths (the edits shown and shipped)
    method: str = ""  # interfacegan, meandiff, ganspace, sefa, or the file format it was read from
    generator: str = ""  # the generator it was found on (name or path) and its weights' SHA-256 prefix
    labels: str = ""  # what labelled the samples (supervised methods), e.g. "synthfaces-domain:smile"
    notes: str = ""  # anything else a user should know (samples used, accuracy of the linear model, ...)
    # What the direction edits, as a classifier reads it (e.g. "smile", "glasses", "hair_color=blonde:black" for
    # the synthfaces-domain heads; empty when unknown), and how fast: the mean change of that attribute's score
    # (in [-1, 1], `edit.finders.attribute_scores`) per unit strength, measured on sampled faces (0: not measured).
    # With it an edit can ask for an amount of change instead of a strength (`Direction.strength_for`).
    attribute: str = ""
    per_unit: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength_range", tuple(float(s) for s in self.strength_range))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(r) for r in self.layers))
        if self.w_dim < 1 or self.num_ws < 0:
            raise ValueError(f"need w_dim >= 1 and num_ws >= 0, got {self.w_dim}, {self.num_ws}")
        if len(self.strength_range) != 2 or self.strength_range[0] > self.strength_range[1]:
            raise ValueError(f"strength_range must be [low, high], got {list(self.strength_range)}")
        if self.layers is not None and (not self.layers or min(self.layers) < 0
                                        or (self.num_ws and max(self.layers) >= self.num_ws)):
            raise ValueError(f"layers must be W+ rows >= 0 (and < num_ws), got {list(self.layers)}")

    def to_dict(self) -> dict:
        return asdict(self)


class Direction(PretrainedModel):
    """An editing direction: ``vector`` [w_dim] (in W) or [num_ws, w_dim] (per W+ row)."""

    model_type = "direction"
    config_class = DirectionConfig
    display_name = "editing direction"

    def __init__(self, config: DirectionConfig) -> None:
        super().__init__()
        self.config = config
        shape = (config.num_ws, config.w_dim) if config.num_ws else (config.w_dim,)
        self.register_buffer("vector", torch.zeros(shape))

    @classmethod
    def from_vector(cls, vector: torch.Tensor, **config: object) -> Direction:
        """A direction holding ``vector`` ([w_dim], [1, w_dim] or [1 or -, num_ws, w_dim]) as given (not
        normalised); ``config`` fills the other `DirectionConfig` fields."""
        v = vector.detach().float().cpu()
        if v.ndim == 3 and v.shape[0] == 1:
            v = v[0]
        if v.ndim == 2 and v.shape[0] == 1:
            v = v[0]
        if v.ndim not in (1, 2):
            raise ValueError(f"a direction is [w_dim] or [num_ws, w_dim], got shape {tuple(vector.shape)}")
        d = cls(DirectionConfig(w_dim=v.shape[-1], num_ws=v.shape[0] if v.ndim == 2 else 0, **config))  # type: ignore[arg-type]
        d.vector.copy_(v)
        return d

    @property
    def name(self) -> str:
        return self.config.name

    def apply(self, latents: torch.Tensor, strength: float | torch.Tensor,
              layers: str | Sequence[int] | None = None) -> torch.Tensor:
        """``latents + strength · direction`` on the rows of ``layers`` (default: the direction's own range).

        Args:
            latents: w [N, w_dim] or W+ [N, num_ws, w_dim]. A w is returned as a w when the edit covers every row
                and the direction is a W vector; anything else needs W+ (``G.broadcast_ws(w)``).
            strength: a number, or one per sample [N].
            layers: "all", "a-b", "a,b" or rows; None: ``config.layers``.

        Returns:
            the edited latents, same shape and dtype as ``latents`` (a new tensor).
        """
        c = self.config
        rows = parse_layers(layers) if layers is not None else c.layers
        v = self.vector.to(device=latents.device, dtype=latents.dtype)
        s = torch.as_tensor(strength, dtype=latents.dtype, device=latents.device)
        if latents.ndim == 2:
            if latents.shape[1] != c.w_dim:
                raise ValueError(f"w must be [N, {c.w_dim}], got {tuple(latents.shape)}")
            if c.num_ws or rows is not None:
                raise ValueError(f"{c.name}: a per-row or layer-range edit needs W+ [N, num_ws, {c.w_dim}]; "
                                 "broadcast w first (G.broadcast_ws(w))")
            return latents + (s[:, None] if s.ndim == 1 else s) * v
        if latents.ndim != 3 or latents.shape[2] != c.w_dim or (c.num_ws and latents.shape[1] != c.num_ws):
            want = f"[N, {c.num_ws or 'num_ws'}, {c.w_dim}]"
            raise ValueError(f"{c.name}: latents must be w [N, {c.w_dim}] or W+ {want}, got {tuple(latents.shape)}")
        if rows is not None and max(rows) >= latents.shape[1]:
            raise ValueError(f"{c.name}: layer rows {list(rows)} beyond the {latents.shape[1]} W+ rows")
        s = s[:, None, None] if s.ndim == 1 else s
        if rows is None:
            return latents + s * v  # e4e's apply_interfacegan: latents + factor * direction
        out = latents.clone()
        idx = list(rows)
        out[:, idx] = latents[:, idx] + s * (v[idx] if c.num_ws else v)
        return out

    def strength_for(self, change: float | torch.Tensor) -> torch.Tensor:
        """The strength(s) expected to change the attribute's score (in [-1, 1]) by ``change`` (a number or [N]),
        from the measured ``per_unit``, clamped to the suggested strength range (beyond it edits leave the
        distribution the generator was trained on and faces break up). Raises when the direction has no measured
        rate."""
        if not self.config.per_unit:
            raise ValueError(f"direction {self.name!r} has no measured per-unit change (per_unit = 0): give a strength")
        lo, hi = self.config.strength_range
        s = torch.as_tensor(change, dtype=torch.float32) / self.config.per_unit
        return s.clamp(lo, hi)

    def forward(self, latents: torch.Tensor, strength: float | torch.Tensor = 1.0) -> torch.Tensor:
        return self.apply(latents, strength)


@dataclass(frozen=True)
class GanSpaceConfig:
    """GANSpace components of a generator's W (PCA of sampled w)."""

    w_dim: int = 512
    num_components: int = 80
    generator: str = ""  # the generator they were computed on
    samples: int = 0  # sampled w the PCA saw (0: unknown, e.g. read from e4e's file)
    method: str = "ganspace"

    def to_dict(self) -> dict:
        return asdict(self)


class GanSpaceComponents(PretrainedModel):
    """``mean`` [1, w_dim], ``comp`` [num_components, w_dim] (unit rows), ``std`` [num_components]."""

    model_type = "ganspace-components"
    config_class = GanSpaceConfig
    display_name = "GANSpace components"

    def __init__(self, config: GanSpaceConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(1, config.w_dim))
        self.register_buffer("comp", torch.zeros(config.num_components, config.w_dim))
        self.register_buffer("std", torch.ones(config.num_components))

    def coordinate(self, latents: torch.Tensor, index: int) -> torch.Tensor:
        """Row 0's coordinate along component ``index`` in standard deviations: [N]."""
        w0 = (latents[:, 0] if latents.ndim == 3 else latents) - self.mean.to(latents)
        return (w0 * self.comp[index].to(latents)).sum(dim=1) / self.std[index].to(latents)

    def apply(self, w_plus: torch.Tensor, edits: Sequence[Sequence[float]]) -> torch.Tensor:
        """e4e's GANSpace edit: for each latent (outer) and each ``(component, first_row, end_row, strength)``
        (inner), set the component's coordinate of row 0 to ``strength`` standard deviations by adding
        ``(strength - coordinate) · comp · std`` to rows first … end-1.

        Args:
            w_plus: [N, num_ws, w_dim].
            edits: edit tuples; ``end_row`` is exclusive.

        Returns:
            [N · len(edits), num_ws, w_dim], latent-major (all edits of latent 0 first).
        """
        if w_plus.ndim != 3 or w_plus.shape[2] != self.config.w_dim:
            raise ValueError(f"w_plus must be [N, num_ws, {self.config.w_dim}], got {tuple(w_plus.shape)}")
        out = []
        for latent in w_plus:
            for edit in edits:
                idx, start, end, strength = int(edit[0]), int(edit[1]), int(edit[2]), float(edit[3])
                if not 0 <= idx < self.config.num_components or not 0 <= start < end <= w_plus.shape[1]:
                    raise ValueError(f"edit {tuple(edit)}: component must be < {self.config.num_components} and "
                                     f"0 <= first < end <= {w_plus.shape[1]}")
                centered = latent - self.mean.to(latent)
                comp = self.comp[idx].to(latent)[None]  # [1, w_dim] as e4e's comp[idx]
                std = self.std[idx].to(latent)
                coord = torch.sum(centered[0].reshape(-1) * comp.reshape(-1)) / std
                delta = (strength - coord) * comp * std
                padded = torch.zeros_like(latent)
                padded[start:end] += delta.repeat(end - start, 1)
                out.append(latent + padded)
        return torch.stack(out)

    def direction(self, index: int, layers: str | Sequence[int] | None = None, name: str | None = None) -> Direction:
        """Component ``index`` as a `Direction` (unit vector in W; strength in units of the component's σ is
        ``strength · std[index]``: the suggested range is ±2σ)."""
        s = float(self.std[index])
        return Direction.from_vector(self.comp[index], layers=parse_layers(layers) if layers is not None else None,
                                     name=name or f"ganspace-{index}", strength_range=(-2 * s, 2 * s),
                                     method="ganspace", generator=self.config.generator,
                                     notes=f"component {index} of {self.config.num_components}, std {s:.4g}")
