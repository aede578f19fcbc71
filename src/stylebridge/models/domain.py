"""The domain network: a small CNN trained by stylebridge on a domain's attributes (synthfaces by default).

It stands in for the third-party networks the field uses on real faces, and every report names it:

* its pooled features give a Fréchet distance (instead of Inception's FID): `fd_features`;
* its normalised multi-depth activations give a perceptual distance (instead of LPIPS): `distance`;
* its embedding gives an identity similarity (instead of ArcFace): `similarity`;
* its heads score attribute accuracy of reconstructions, translations and edits: `predict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge.core.native import PretrainedModel

__all__ = ["STAGES", "DomainNetConfig", "DomainNetwork"]

STAGES = ("stage1", "stage2", "stage3", "stage4")


@dataclass(frozen=True)
class DomainNetConfig:
    """Architecture of the domain network and the attribute heads it carries."""

    resolution: int = 64  # inputs are resized to this side (area/bilinear) before the network
    in_channels: int = 3
    widths: tuple[int, ...] = (32, 64, 128, 192)  # channels of the four stages (each halves the resolution)
    embed_dim: int = 128  # identity embedding size
    # The heads also see the last stage pooled to head_spatial × head_spatial, flattened (0: global pool only).
    # Small parts at fixed places (mouth curvature, nose, brows) are 1–2 px at 64 px: a global average dilutes them.
    head_spatial: int = 0
    # Region networks for attributes drawn in 1–3 px (mouth-corner height, brow slope, nose size): each region, a
    # box (top, bottom, left, right) as fractions of the side, is cropped, upsampled ``region_upsample``× and read
    # by its own small CNN (a 3x3 conv, then stride-2 convs: ``region_widths``), pooled to region_pool² cells.
    # A multi-task network over the whole face learns these late if at all (smile: corr 0.2 after 3,600 steps);
    # a crop learns them in a few hundred. Their features go to the heads only: fd_features / distance /
    # similarity do not depend on them. Empty: none.
    regions: tuple[tuple[float, float, float, float], ...] = ()
    region_widths: tuple[int, ...] = (32, 32, 64, 64)
    region_pool: int = 3
    region_upsample: int = 2
    # Heads: (name, size) in order; size 1 = continuous attribute in [0, 1] (sigmoid), size k = k-way category.
    heads: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "regions", tuple(tuple(float(v) for v in r) for r in self.regions))
        object.__setattr__(self, "region_widths", tuple(int(w) for w in self.region_widths))
        object.__setattr__(self, "heads", tuple((str(n), int(k)) for n, k in self.heads))
        if len(self.widths) != len(STAGES):
            raise ValueError(f"widths must have {len(STAGES)} entries, got {self.widths}")
        for r in self.regions:
            if len(r) != 4 or not (0 <= r[0] < r[1] <= 1 and 0 <= r[2] < r[3] <= 1):
                raise ValueError(f"a region is (top, bottom, left, right) with 0 <= top < bottom <= 1 and "
                                 f"0 <= left < right <= 1, got {r}")
        if self.regions and (not self.region_widths or self.region_pool < 1 or self.region_upsample < 1):
            raise ValueError("region_widths must not be empty; region_pool and region_upsample must be >= 1")
        if self.resolution < 16:
            raise ValueError(f"resolution must be >= 16, got {self.resolution}")

    @property
    def head_size(self) -> int:
        return sum(k for _, k in self.heads)

    @property
    def head_inputs(self) -> int:
        regions = len(self.regions) * self.region_widths[-1] * self.region_pool**2
        return self.widths[-1] * (1 + self.head_spatial**2) + self.embed_dim + regions

    def to_dict(self) -> dict:
        return asdict(self)


class _Block(nn.Module):
    """Residual block: stride-2 3x3 conv → 3x3 conv, GroupNorm + SiLU, 1x1 strided shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(8, cout)
        self.skip = nn.Conv2d(cin, cout, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.silu(h + self.skip(x))


class _RegionNet(nn.Module):
    """A crop [N, C, h, w] → features [N, widths[-1] · pool²]: a 3x3 conv, then one stride-2 3x3 conv per further
    width (GroupNorm + SiLU after each), average-pooled to pool × pool cells (positions kept)."""

    def __init__(self, cin: int, widths: tuple[int, ...], pool: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin if i == 0 else widths[i - 1], w, 3, stride=1 if i == 0 else 2, padding=1,
                                 bias=False), nn.GroupNorm(8, w), nn.SiLU()]
        self.convs = nn.Sequential(*layers)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.convs(x), self.pool).flatten(1)


class DomainNetwork(PretrainedModel):
    """Images [N, C, H, W] in [-1, 1] (any size; resized to ``config.resolution``) → attribute predictions."""

    model_type = "domain-network"
    config_class = DomainNetConfig

    def __init__(self, config: DomainNetConfig) -> None:
        super().__init__()
        self.config = c = config
        w = c.widths
        self.stem = nn.Sequential(nn.Conv2d(c.in_channels, w[0], 3, padding=1, bias=False), nn.GroupNorm(8, w[0]),
                                  nn.SiLU())
        self.stages = nn.ModuleList([_Block(w[0], w[0]), _Block(w[0], w[1]), _Block(w[1], w[2]), _Block(w[2], w[3])])
        self.embed = nn.Linear(w[3], c.embed_dim)
        self.regions = nn.ModuleList([_RegionNet(c.in_channels, c.region_widths, c.region_pool) for _ in c.regions])
        self.head = nn.Linear(c.head_inputs, c.head_size) if c.head_size else None

    # -- internals -----------------------------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected images [N, {self.config.in_channels}, H, W], got {tuple(x.shape)}")
        r = self.config.resolution
        if x.shape[-2:] != (r, r):
            x = F.interpolate(x.float(), size=(r, r), mode="bilinear", antialias=True, align_corners=False)
        return x.float()

    def _trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.stem(self._prepare(x))
        feats = []
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    def _region_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per region: its crop of the prepared images [N, C, R, R], upsampled, through its network."""
        r, up = x.shape[-1], self.config.region_upsample
        out = []
        for (top, bottom, left, right), net in zip(self.config.regions, self.regions):
            crop = x[:, :, round(top * r) : round(bottom * r), round(left * r) : round(right * r)]
            if up > 1:
                crop = F.interpolate(crop, scale_factor=up, mode="bilinear", align_corners=False)
            out.append(net(crop))
        return out

    # -- public API ----------------------------------------------------------------------------------------------
    def features(self, x: torch.Tensor, layers: Sequence[str] = STAGES) -> dict[str, torch.Tensor]:
        """Activation maps at the named depths: stage1 [N, w0, R/2, R/2] … stage4 [N, w3, R/16, R/16]."""
        unknown = set(layers) - set(STAGES)
        if unknown:
            raise KeyError(f"unknown layers {sorted(unknown)}; choose from {STAGES}")
        feats = dict(zip(STAGES, self._trunk(x)))
        return {k: feats[k] for k in layers}

    def pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled last-stage features [N, w3], unit-norm embedding [N, embed_dim])."""
        pooled = self._trunk(x)[-1].mean(dim=(2, 3))
        return pooled, F.normalize(self.embed(pooled), dim=1)

    def head_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs of the attribute heads [N, head_inputs], unit-norm embedding [N, embed_dim])."""
        x = self._prepare(x)  # resized once for the trunk and the regions (the trunk's own call is then a no-op)
        last = self._trunk(x)[-1]
        pooled = last.mean(dim=(2, 3))
        emb = F.normalize(self.embed(pooled), dim=1)
        parts = [pooled, emb]
        if self.config.head_spatial:
            parts.append(F.adaptive_avg_pool2d(last, self.config.head_spatial).flatten(1))
        if self.config.regions:
            parts += self._region_features(x)
        return torch.cat(parts, dim=1), emb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw head outputs [N, head_size] (logits; continuous heads before the sigmoid)."""
        if self.head is None:
            raise RuntimeError("this domain network has no attribute heads")
        return self.head(self.head_features(x)[0])

    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per attribute: continuous values [N] in [0, 1], or category indices [N] (int64)."""
        out, pos = {}, 0
        logits = self.forward(x)
        for name, k in self.config.heads:
            chunk = logits[:, pos : pos + k]
            out[name] = torch.sigmoid(chunk[:, 0]) if k == 1 else chunk.argmax(dim=1)
            pos += k
        return out

    def fd_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features for the Fréchet distance: pooled last stage + embedding, [N, w3 + embed_dim]."""
        pooled, emb = self.pooled(x)
        return torch.cat([pooled, emb], dim=1)

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Perceptual distance [N] ≥ 0 (LPIPS-style, without learned weights): at every stage, channel-normalised
        activations, squared difference summed over channels, averaged over space; then averaged over stages."""
        fx, fy = self._trunk(x), self._trunk(y)
        total = torch.zeros(x.shape[0], device=x.device)
        for a, b in zip(fx, fy):
            a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
            b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
            total = total + (a - b).square().sum(dim=1).mean(dim=(1, 2))
        return total / len(fx)

    def similarity(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Identity similarity [N] in [-1, 1]: cosine of the embeddings (the ArcFace role)."""
        return (self.pooled(x)[1] * self.pooled(y)[1]).sum(dim=1)
