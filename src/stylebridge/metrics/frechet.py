"""Fréchet distance between two image sets in a feature space (Heusel et al. 2017), and the feature spaces.

Statistics are kept apart from the feature extractor (as NVlabs' ``metric_utils.FeatureStats``): a
``FeatureStats`` accumulates the mean and covariance of features in float64, can be saved and reloaded, and two of
them give a distance. Feature extractors:

* ``InceptionFeatures`` (``stylebridge.models.inception``) from a weights file the user supplies: pytorch-fid's
  ``pt_inception-2015-12-05-*.pth`` gives the standard **FID**; torchvision's Inception-v3 weights give an
  Inception Fréchet distance that is close to, but not, the standard FID, and is named so.
* ``DomainFeatures``: the pooled features of a domain network the toolkit trained itself (by default the shipped
  ``synthfaces-domain``). Its distance is **not FID**; every report names it ``FD[synthfaces-domain]``.

The distance depends on the number of samples (it is biased upwards for small sets), so compare only values
computed with the same ``n`` and feature space; ``reference_distance`` gives the distance between two independent
real sets of that size, the floor a generator can reach.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from stylebridge.core.atomic import atomic_write

__all__ = [
    "DomainFeatures",
    "FeatureExtractor",
    "FeatureStats",
    "FrechetResult",
    "fd_of_generator",
    "feature_extractor",
    "frechet_distance",
    "real_stats",
    "reference_distance",
    "stats_of_folder",
    "stats_of_generator",
    "stats_of_images",
    "stats_of_synthfaces",
]

logger = logging.getLogger("stylebridge.metrics")

# Seeds of the "real" synthfaces sets: disjoint from the GAN's training stream (seeds 0 … steps·batch) and from the
# domain network's held-out faces (10,000,000+).
REAL_SEEDS_A = 20_000_000
REAL_SEEDS_B = 30_000_000


class FeatureExtractor:
    """A feature space for the Fréchet distance: ``extractor(images [N, C, H, W] in [-1, 1]) → [N, D]`` float32.

    ``name`` is what reports print: ``"FID"`` only for the standard FID Inception network.
    """

    name: str = "features"
    dim: int = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def to(self, device: torch.device | str) -> FeatureExtractor:
        return self


class DomainFeatures(FeatureExtractor):
    """Pooled last-stage features + embedding of a ``DomainNetwork`` ([N, w3 + embed_dim]).

    model: a ``DomainNetwork`` or anything ``stylebridge.load`` accepts (a shipped name such as
    ``"synthfaces-domain"``, or a native folder).
    """

    def __init__(self, model: object = "synthfaces-domain", label: str | None = None) -> None:
        from stylebridge.models.domain import DomainNetwork

        if isinstance(model, (str, os.PathLike)):
            from stylebridge.formats.loading import load

            label = label or Path(str(model)).name
            model = load(model)
        if not isinstance(model, DomainNetwork):
            raise TypeError(f"{label or 'model'}: expected a domain network, got {type(model).__name__}")
        self.net = model.eval().requires_grad_(False)
        self.dim = model.config.widths[-1] + model.config.embed_dim
        self.name = f"FD[{label or 'domain-network'}]"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.fd_features(images.to(next(self.net.parameters()).device)).float()

    def to(self, device: torch.device | str) -> DomainFeatures:
        self.net.to(device)
        return self


class _InceptionAdapter(FeatureExtractor):
    def __init__(self, path: str | os.PathLike) -> None:
        from stylebridge.models.inception import NUM_CLASSES, InceptionFeatures

        self.net = InceptionFeatures.from_file(path)
        self.dim = 2048
        # "FID" only for pytorch-fid's network with its 1008-class file; anything else is named for what it is.
        c = self.net.config
        standard = c.variant == "fid" and c.num_classes == NUM_CLASSES["fid"]
        self.name = "FID" if standard else f"FD[{self.net.name}]"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(images.to(next(self.net.parameters()).device)).float()

    def to(self, device: torch.device | str) -> _InceptionAdapter:
        self.net.to(device)
        return self


def feature_extractor(spec: str | os.PathLike = "synthfaces-domain") -> FeatureExtractor:
    """The feature space named by ``spec``: an Inception weights file (``*.pth``/``*.pt`` holding an Inception-v3
    state dict) → Inception features; otherwise a domain network (shipped name or native folder)."""
    p = Path(str(spec))
    if p.is_file() and p.suffix in (".pth", ".pt", ".bin"):
        return _InceptionAdapter(p)
    return DomainFeatures(spec)


# ------------------------------------------------------------------------------------------------------------------
# Statistics


class FeatureStats:
    """Running mean and covariance of feature vectors, accumulated in float64.

    ``append(features [N, D])``; ``mean_cov()`` → (mu [D], sigma [D, D]) with the unbiased (n − 1) covariance,
    as numpy's ``np.cov`` in pytorch-fid and NVlabs' metrics.
    """

    def __init__(self, dim: int, name: str = "features") -> None:
        self.dim, self.name, self.n = int(dim), name, 0
        self._sum = torch.zeros(self.dim, dtype=torch.float64)
        self._sum_outer = torch.zeros(self.dim, self.dim, dtype=torch.float64)

    def append(self, features: torch.Tensor) -> None:
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"expected features [N, {self.dim}], got {tuple(features.shape)}")
        f = features.detach().to("cpu", torch.float64)
        if not torch.isfinite(f).all():
            raise ValueError("features contain NaN or inf (did the generator diverge?)")
        self.n += f.shape[0]
        self._sum += f.sum(0)
        self._sum_outer += f.T @ f

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n < 2:
            raise ValueError(f"need at least 2 samples for a covariance, have {self.n}")
        mu = self._sum / self.n
        sigma = (self._sum_outer - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return mu, sigma

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        """Write the accumulators to a safetensors file (atomic), with ``name``/``n`` and ``meta`` as metadata."""
        from safetensors.torch import save_file

        tensors = {"sum": self._sum, "sum_outer": self._sum_outer}
        metadata = {"name": self.name, "n": str(self.n), "meta": json.dumps(meta or {})}
        atomic_write(Path(path), lambda p: save_file(tensors, str(p), metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple[FeatureStats, dict]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            s, so = f.get_tensor("sum"), f.get_tensor("sum_outer")
        st = cls(s.shape[0], md.get("name", "features"))
        st._sum, st._sum_outer, st.n = s.double(), so.double(), int(md.get("n", 0))
        return st, json.loads(md.get("meta", "{}"))


def frechet_distance(a: FeatureStats | tuple[torch.Tensor, torch.Tensor],
                     b: FeatureStats | tuple[torch.Tensor, torch.Tensor]) -> float:
    """‖mu_a − mu_b‖² + tr(Σa + Σb − 2 (Σa Σb)^½), in float64.

    tr((Σa Σb)^½) is the sum of the square roots of the eigenvalues of Σa^½ Σb Σa^½ (a symmetric PSD matrix similar
    to Σa Σb), so two symmetric eigendecompositions replace scipy's general ``sqrtm`` and its complex round-off.
    """
    mu1, s1 = a.mean_cov() if isinstance(a, FeatureStats) else a
    mu2, s2 = b.mean_cov() if isinstance(b, FeatureStats) else b
    mu1, s1, mu2, s2 = (t.double() for t in (mu1, s1, mu2, s2))
    evals, evecs = torch.linalg.eigh(s1)
    root1 = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T
    m = root1 @ s2 @ root1
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    fd = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_covmean
    return float(fd)


# ------------------------------------------------------------------------------------------------------------------
# Statistics of image sources


def stats_of_images(batches: Iterator[torch.Tensor], extractor: FeatureExtractor, n: int,
                    desc: str = "features", progress: bool = True) -> FeatureStats:
    """Feature statistics of the first ``n`` images of ``batches`` (each [B, C, H, W] in [-1, 1])."""
    stats = FeatureStats(extractor.dim, extractor.name)
    with tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
        for x in batches:
            x = x[: n - stats.n]
            stats.append(extractor(x))
            bar.update(x.shape[0])
            if stats.n >= n:
                break
    if stats.n < n:
        raise ValueError(f"{desc}: only {stats.n} images available, {n} requested")
    return stats


def stats_of_synthfaces(extractor: FeatureExtractor, n: int, resolution: int = 64, seed: int = REAL_SEEDS_A,
                        batch: int = 250, progress: bool = True) -> FeatureStats:
    """Statistics of ``n`` rendered synthfaces (seeds ``seed … seed + n − 1``)."""
    from stylebridge.data import synthfaces as sf

    def batches() -> Iterator[torch.Tensor]:
        for start in range(seed, seed + n, batch):
            seeds = list(range(start, min(start + batch, seed + n)))
            yield sf.render(sf.sample_attributes(seeds), resolution, ("image",))["image"]

    return stats_of_images(batches(), extractor, n, desc="real synthfaces", progress=progress)


class _FolderImages(torch.utils.data.Dataset):
    """Every file of a folder once: (image [3, R, R], True), or (zeros, False) for a file that does not decode
    (logged once), so a bad file is neither fatal nor replaced by a duplicate of another image."""

    def __init__(self, folder: str | os.PathLike, resolution: int) -> None:
        from stylebridge.core.imageio import scan_images

        self.files, self.resolution = scan_images(folder), resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, bool]:
        from stylebridge.core.imageio import BadImageError, center_crop_resize, load_image, to_tensor

        try:
            return to_tensor(center_crop_resize(load_image(self.files[i]), self.resolution)), True
        except BadImageError as e:
            logger.warning("skipping bad image %s", e)
            return torch.zeros(3, self.resolution, self.resolution), False


def stats_of_folder(folder: str | os.PathLike, extractor: FeatureExtractor, n: int | None = None,
                    resolution: int = 64, batch: int = 64, workers: int = 0, progress: bool = True) -> FeatureStats:
    """Statistics of the first ``n`` good images of a folder (sorted paths; centre-cropped and resized to
    ``resolution``). Files that do not decode are logged and skipped. ``n=None``: every image."""
    ds = _FolderImages(folder, resolution)
    if len(ds) == 0:
        raise ValueError(f"{folder}: no images found")
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers)
    good = (x[ok] for x, ok in loader)
    want = len(ds) if n is None else n
    stats = FeatureStats(extractor.dim, extractor.name)
    with tqdm(total=min(want, len(ds)), desc=f"real {Path(folder).name}", unit="img", disable=not progress) as bar:
        for x in good:
            x = x[: want - stats.n]
            if len(x):
                stats.append(extractor(x))
                bar.update(x.shape[0])
            if stats.n >= want:
                break
    if stats.n < 2:
        raise ValueError(f"{folder}: only {stats.n} readable images, need at least 2")
    return stats


@torch.no_grad()
def stats_of_generator(G: torch.nn.Module, extractor: FeatureExtractor, n: int, truncation_psi: float = 1.0,
                       seed: int = 0, batch: int = 100, progress: bool = True) -> FeatureStats:
    """Statistics of ``n`` images of generator ``G`` — a StyleGAN2 generator, or a StyleMapGAN (its generator; ψ
    around its mean stylemap of 4,096 z) — with z and noise from a private RNG seeded with ``seed``: the same images
    every call, and the global RNG is left untouched."""
    from stylebridge.models.stylemapgan import StyleMapGAN, StyleMapGenerator

    gen = torch.Generator().manual_seed(seed)
    if isinstance(G, StyleMapGAN):
        G = G.generator
    if isinstance(G, StyleMapGenerator):
        device = next(G.parameters()).device
        z_dim = G.config.latent_channels
        mean = None
        if truncation_psi != 1:
            with torch.no_grad():
                mean = G.mean_stylemap(torch.randn(4096, z_dim, generator=gen).to(device))

        def sample(b: int) -> torch.Tensor:
            return G(torch.randn(b, z_dim, generator=gen).to(device), truncation_psi, mean)
    else:
        device = G.w_avg.device

        def sample(b: int) -> torch.Tensor:
            z = torch.randn(b, G.z_dim, generator=gen).to(device)
            noise = [t.to(device) for t in G.make_noise(b, generator=gen)]
            return G.synthesize(G.map(z, truncation_psi), noise=noise)

    def batches() -> Iterator[torch.Tensor]:
        done = 0
        while done < n:
            b = min(batch, n - done)
            with torch.no_grad():
                yield sample(b).float().clamp(-1, 1)
            done += b

    return stats_of_images(batches(), extractor, n, desc="generated", progress=progress)


# ------------------------------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True)
class FrechetResult:
    """One Fréchet distance with what it was measured on."""

    metric: str  # "FID" or "FD[<network>]"
    value: float
    n: int  # images per set
    reference: float | None = None  # the same metric between two independent real sets of n images

    def __str__(self) -> str:
        ref = f"; real vs real: {self.reference:.3f}" if self.reference is not None else ""
        return f"{self.metric} = {self.value:.3f} ({self.n} images per set{ref})"

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "n": self.n, "reference": self.reference}


def _cached(path: Path | None, key: dict, compute: Callable[[], FeatureStats]) -> FeatureStats:
    """Load statistics from ``path`` when it holds the same ``key`` (metric, source, n …); else compute and save."""
    if path is not None and path.is_file():
        try:
            stats, meta = FeatureStats.load(path)
            if meta == key:
                return stats
        except Exception:  # a stale, truncated or foreign cache file is recomputed, never trusted
            pass
    stats = compute()
    if path is not None:
        stats.save(path, key)
    return stats


def real_stats(extractor: FeatureExtractor, real: str, n: int, resolution: int, which: str = "A",
               cache_dir: str | os.PathLike | None = None, progress: bool = True) -> FeatureStats:
    """Statistics of the real set: ``real="synthfaces"`` (set A or B, disjoint seeds) or an image folder."""
    key = {"metric": extractor.name, "real": str(real), "n": n, "resolution": resolution, "set": which}
    safe = "".join(c if c.isalnum() else "_" for c in f"{extractor.name}_{Path(real).name}_{n}_{resolution}_{which}")
    path = Path(cache_dir) / f"real_{safe}.safetensors" if cache_dir is not None else None
    if real == "synthfaces":
        seed = REAL_SEEDS_A if which == "A" else REAL_SEEDS_B
        return _cached(path, key, lambda: stats_of_synthfaces(extractor, n, resolution, seed, progress=progress))
    if which != "A":
        raise ValueError("a second independent real set exists only for synthfaces")
    return _cached(path, key, lambda: stats_of_folder(real, extractor, n, resolution, progress=progress))


def reference_distance(extractor: FeatureExtractor, n: int, resolution: int = 64,
                       cache_dir: str | os.PathLike | None = None, progress: bool = True) -> float:
    """The distance between two independent sets of ``n`` real synthfaces: the floor for a perfect generator."""
    a = real_stats(extractor, "synthfaces", n, resolution, "A", cache_dir, progress)
    b = real_stats(extractor, "synthfaces", n, resolution, "B", cache_dir, progress)
    return frechet_distance(a, b)


def fd_of_generator(G: torch.nn.Module, extractor: FeatureExtractor, real: str = "synthfaces", n: int = 10_000,
                    truncation_psi: float = 1.0, seed: int = 0, with_reference: bool = False,
                    cache_dir: str | os.PathLike | None = None, progress: bool = True) -> FrechetResult:
    """Fréchet distance between ``n`` images of ``G`` and ``n`` real images (synthfaces or a folder).

    ``with_reference`` adds the real-vs-real distance (synthfaces only) for the same ``n``.
    """
    if math.isnan(truncation_psi):
        raise ValueError("truncation_psi is NaN")
    from stylebridge.models.stylemapgan import StyleMapGAN

    res = int(G.config.generator.resolution if isinstance(G, StyleMapGAN) else G.resolution)
    real_a = real_stats(extractor, real, n, res, "A", cache_dir, progress)
    n_eff = real_a.n  # a folder may hold fewer than n images: compare equal-sized sets
    fake = stats_of_generator(G, extractor, n_eff, truncation_psi, seed, progress=progress)
    ref = None
    if with_reference and real == "synthfaces":
        ref = frechet_distance(real_a, real_stats(extractor, real, n_eff, res, "B", cache_dir, progress))
    return FrechetResult(extractor.name, frechet_distance(fake, real_a), n_eff, ref)
