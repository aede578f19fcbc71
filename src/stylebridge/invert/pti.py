"""Pivotal Tuning Inversion (Roich et al. 2022, danielroich/PTI): invert to a pivot, then tune the generator so the
pivot reproduces the image; edits move the pivot and are rendered by the tuned generator.

The recipe, as PTI does it, and what differs here:

* **pivot** — any inverter's codes (`make_inverter` name or object). PTI's own is the projector in W (450 steps,
  lr 5e-3): ``pivot="optimize-w"`` (the default); ``"e4e"``, ``"restyle"`` or ``"optimize-e4e"`` are seconds
  instead of minutes on a CPU.
* **tuning** — Adam on the generator for ``steps`` (PTI: 350), loss ``mse_weight·L2 + perceptual_weight·perceptual``
  (PTI: 1 and 1, LPIPS; here LPIPS when its weight files are given, else the domain network: the name is in
  ``extras["perceptual"]``), stopping an image once its perceptual distance is at most ``stop_at`` (PTI: LPIPS 0.06;
  None here unless given, since the domain network's distances have another scale). lr 3e-4 (PTI's) for dense
  deltas, 3e-3 for low-rank ones: on 4 held-out faces after 60 steps from e4e, rank 8 reached distance 0.062 at
  3e-4 and 0.015 at 3e-3.
* **locality regulariser** (``locality`` > 0; PTI's ``use_locality_regularization``, weight 1): for ``locality_samples``
  codes w_z = mapping(z, ψ 0.5) per image, the code ``pivot + α·(w_z − pivot)/‖w_z − pivot‖`` must render the same
  with the tuned and the original generator (L2 ×0.1 + perceptual ×0.1). α: PTI's 30 is for FFHQ's W; the default
  here is the generator's σ_w (RMS distance of mapped w to their mean), so it scales with the generator.
* **what is tuned** — the modulated-convolution weights (`delta.tunable_fraction`: 81 % of synthfaces-64's
  synthesis weights; the affine style maps, biases, constant input and noise strengths stay), as a
  `GeneratorDelta`: dense (``rank=0``, PTI's full tuning) or low rank (``rank`` r, default 8: a small file per
  image). The tuned weights never replace the generator's: they are added while rendering (`delta.applied`).
* **per image or shared** — by default every image gets its own delta, and a batch of N images is tuned together
  (one batched forward per step, per-sample weights); ``shared=True`` tunes one delta for the whole batch (several
  photos of one person, or one style).
* **budget** — ``steps`` and/or ``seconds`` (tuning stops after the step that exceeds it); ``extras["curve"]``
  records the mean perceptual distance against elapsed seconds, the quality reached per second.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from stylebridge.core.device import autocast
from stylebridge.invert.base import Inversion, Inverter, make_inverter, register_inverter
from stylebridge.invert.delta import GeneratorDelta, applied
from stylebridge.invert.optimize import DEFAULT_GENERATOR, _load_generator, w_statistics
from stylebridge.losses.perceptual import DEFAULT_DOMAIN_NETWORK, PerceptualDistance, perceptual_distance
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = ["DEFAULT_PIVOT", "PTIInverter"]

DEFAULT_PIVOT = "optimize-w"
# PTI's first inversion (hyperparameters.first_inv_steps / first_inv_lr), in W as its w_projector.
PTI_PIVOT_OPTIONS = {"space": "w", "steps": 450, "lr": 5e-3}


class PTIInverter(Inverter):
    """Pivotal tuning (see the module docstring).

    Args:
        generator: the StyleGAN2 generator to invert into and tune (never modified).
        pivot: an `Inverter`, or a name: "optimize-w" (PTI's projector in W), "optimize", "optimize-e4e", "e4e",
            "psp", "restyle", … (built for ``generator``, or for the encoder's own decoder, which must be the same
            generator).
        pivot_options: options for a pivot built by name (e.g. ``{"steps": 200}``).
        steps, lr, seconds: tuning steps (PTI 350), Adam learning rate (None: 3e-4, PTI's, for dense deltas; 3e-3
            for low-rank ones), time budget for the tuning.
        stop_at: stop tuning an image once its perceptual distance is at most this (None: run every step).
        rank: 0 = dense deltas (PTI's full tuning); r > 0 = low-rank deltas of rank r.
        shared: one delta for all images of a call (batch mode) instead of one per image.
        mse_weight, perceptual_weight: the tuning loss's weights (PTI: 1, 1).
        locality: weight of the locality regulariser (0: off; PTI's regulizer_lambda is 1).
        locality_alpha: distance from the pivot of the regularised codes (None: σ_w of the generator).
        locality_samples: sampled codes per image and step (PTI: 1).
        perceptual, lpips_backbone, lpips_heads, domain_network: the perceptual network (see `OptimizeInverter`).
        precision: "fp32" or "bf16" (the generator under bf16 autocast; losses and Adam in fp32).
        seed: seeds the low-rank initialisation and the regulariser's samples.
        progress: a progress bar over the tuning steps.
    """

    name = "pti"

    def __init__(self, generator: StyleGAN2Generator, *, pivot: Inverter | str = DEFAULT_PIVOT,
                 pivot_options: dict[str, Any] | None = None, steps: int = 350, lr: float | None = None,
                 seconds: float | None = None, stop_at: float | None = None, rank: int = 8, shared: bool = False,
                 mse_weight: float = 1.0, perceptual_weight: float = 1.0, locality: float = 0.0,
                 locality_alpha: float | None = None, locality_samples: int = 1,
                 perceptual: str | PerceptualDistance = "auto", lpips_backbone: str | os.PathLike | None = None,
                 lpips_heads: str | os.PathLike | None = None, domain_network: str = DEFAULT_DOMAIN_NETWORK,
                 precision: str = "fp32", seed: int = 0, progress: bool = False) -> None:
        super().__init__(generator)
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
        if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        if not isinstance(rank, int) or rank < 0:
            raise ValueError(f"rank must be an integer >= 0 (0: dense), got {rank!r}")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        if locality < 0 or locality_samples < 1:
            raise ValueError("locality must be >= 0 and locality_samples >= 1")
        self.pivot = self._build_pivot(pivot, pivot_options or {}, precision)
        self.steps, self.seconds, self.stop_at = steps, seconds, stop_at
        self.lr = lr if lr is not None else (3e-4 if rank == 0 else 3e-3)
        self.rank, self.shared = rank, shared
        self.mse_weight, self.perceptual_weight = mse_weight, perceptual_weight
        self.locality, self.locality_alpha, self.locality_samples = locality, locality_alpha, locality_samples
        self.precision, self.seed, self.progress = precision, seed, progress
        self.perceptual = perceptual if isinstance(perceptual, PerceptualDistance) else perceptual_distance(
            perceptual, lpips_backbone=lpips_backbone, lpips_heads=lpips_heads, domain=domain_network)
        self.perceptual.to(self.device)

    def _build_pivot(self, pivot: Inverter | str, options: dict[str, Any], precision: str) -> Inverter:
        G = self.generator
        if isinstance(pivot, Inverter):
            inv = pivot
        elif pivot in ("optimize-w", "optimize"):
            opts = {**(PTI_PIVOT_OPTIONS if pivot == "optimize-w" else {}), "precision": precision, **options}
            inv = make_inverter("optimize", generator=G, **opts)
            inv.name = pivot  # type: ignore[misc]
        else:
            inv = make_inverter(pivot, **options)  # encoders (and optimize-e4e) bring their own decoder
        if inv.generator is not G and (inv.generator.config != G.config or not all(
                torch.equal(a, b) for a, b in zip(inv.generator.state_dict().values(), G.state_dict().values()))):
            raise ValueError(f"the pivot inverter {inv.name!r} inverts into another generator than the one PTI "
                             "tunes")
        return inv

    def to(self, device: torch.device | str) -> PTIInverter:
        super().to(device)
        self.pivot.to(device)
        self.perceptual.to(device)
        return self

    def _precision(self) -> contextlib.AbstractContextManager[None]:
        return autocast(self.device, "bf16") if self.precision == "bf16" else contextlib.nullcontext()

    def _synth(self, w_plus: torch.Tensor, tuned: GeneratorDelta | None) -> torch.Tensor:
        with applied(self.generator, tuned), self._precision():
            return self.generator.synthesize(w_plus, noise_mode="const").float()

    @torch.no_grad()
    def render(self, w_plus: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None,
               tuned: GeneratorDelta | None = None) -> torch.Tensor:
        """W+ [N, num_ws, w_dim] → images [N, 3, R, R], by the tuned generator(s) of ``tuned`` (M = N: image n by
        its own; M = 1: all by the shared one; None: the original generator)."""
        with torch.autocast(self.device.type, enabled=False), applied(self.generator, tuned), self._precision():
            return self.generator.synthesize(w_plus.to(self.device), noise=noise, noise_mode="const").float()

    def image_loss(self, synth: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-image loss [N], per-image perceptual distance [N])."""
        dist = self.perceptual(synth, target).float()
        loss = self.perceptual_weight * dist
        if self.mse_weight:
            loss = loss + self.mse_weight * (synth - target).square().mean(dim=(1, 2, 3))
        return loss, dist

    def _locality(self, pivot: torch.Tensor, tuned: GeneratorDelta, gen: torch.Generator,
                  alpha: float) -> torch.Tensor:
        """PTI's ball-holder loss, summed over the images: codes at distance α from each pivot towards sampled w."""
        G = self.generator
        n = pivot.shape[0]
        total = pivot.new_zeros(())
        for _ in range(self.locality_samples):
            z = torch.randn(n, G.z_dim, generator=gen).to(self.device)
            with torch.no_grad():
                w_z = G.map(z, truncation_psi=0.5)[:, None].expand_as(pivot)
                direction = w_z - pivot
                code = pivot + alpha * direction / direction.flatten(1).norm(dim=1).clamp_min(1e-8)[:, None, None]
                old = self._synth(code, None)
            new = self._synth(code, tuned)
            total = total + 0.1 * (new - old).square().mean(dim=(1, 2, 3)).sum() \
                + 0.1 * self.perceptual(new, old).float().sum()
        return total / self.locality_samples

    def invert(self, images: torch.Tensor, start: torch.Tensor | None = None) -> Inversion:
        """Pivot then tune, for ``images`` [N, 3, H, W] in [-1, 1] (resized to the generator's resolution).

        start: pivot codes W+ [N, num_ws, w_dim] (or w [N, w_dim]) to use instead of running the pivot inverter.

        extras: ``tuned`` (a `GeneratorDelta`, M = N or 1 with ``shared``), ``pivot_images`` (the pivot rendered by
        the original generator), ``dist_pivot`` / ``dist`` [N] (perceptual distance before / after tuning),
        ``loss`` [N], ``curve`` (a [steps run, 2] tensor: seconds since the call began, mean perceptual distance),
        ``steps`` (run), ``stopped`` [N] (the step each image stopped at), ``pivot_seconds``, ``tune_seconds``,
        ``seconds``, ``perceptual``, ``delta_numel`` (numbers stored per tuned generator).
        """
        G = self.generator
        x = self.check_images(images)
        n, dev = x.shape[0], self.device
        t0 = time.perf_counter()
        with torch.autocast(dev.type, enabled=False):
            if start is None:
                with torch.enable_grad():
                    pivot = self.pivot.invert(x).w_plus
            else:
                pivot = start
            pivot = G.broadcast_ws(pivot.to(dev).float()).detach()
            if pivot.shape[0] != n:
                raise ValueError(f"start holds {pivot.shape[0]} codes for {n} images")
            pivot_seconds = time.perf_counter() - t0
            target = x.float()
            count = 1 if self.shared else n
            tuned = GeneratorDelta.zeros(G, count, self.rank, seed=self.seed)
            gen = torch.Generator().manual_seed(self.seed + 1)
            alpha = self.locality_alpha
            if self.locality and alpha is None:
                alpha = w_statistics(G, 2000)[1]
            with torch.no_grad():
                pivot_images = self._synth(pivot, None)
                _, dist_pivot = self.image_loss(pivot_images, target)
            optimizer = torch.optim.Adam(tuned.parameters(), lr=self.lr)
            active = torch.ones(n, dtype=torch.bool, device=dev)
            stopped = torch.full((n,), self.steps, dtype=torch.long)
            frozen: dict[str, torch.Tensor] | None = None  # weights of the images that reached stop_at
            curve: list[tuple[float, float]] = []
            t_tune = time.perf_counter()
            bar = tqdm(range(self.steps), desc="pti", unit="step", leave=False, disable=not self.progress)
            step = 0
            for step in bar:
                if self.seconds is not None and step and time.perf_counter() - t_tune >= self.seconds:
                    break
                with torch.enable_grad():
                    synth = self._synth(pivot, tuned)
                    loss, dist = self.image_loss(synth, target)
                    total = (loss * active).sum()
                    if self.locality:
                        total = total + self.locality * self._locality(pivot, tuned, gen, float(alpha))
                    optimizer.zero_grad(set_to_none=True)
                    total.backward()
                curve.append((time.perf_counter() - t0, float(dist.detach().mean())))
                if self.stop_at is not None:
                    done = active & (dist.detach() <= self.stop_at)
                    if done.any():
                        stopped[done.cpu()] = step
                        active &= ~done
                        if self.shared or not active.any():
                            break
                        # images that reached the bar keep these weights (Adam's momentum would move them on)
                        if frozen is None:
                            frozen = {k: v.detach().clone() for k, v in tuned.tensors.items()}
                        else:
                            for k, v in tuned.tensors.items():
                                frozen[k][done] = v.detach()[done]
                optimizer.step()
                if frozen is not None:
                    with torch.no_grad():
                        for k, v in tuned.tensors.items():
                            v[~active] = frozen[k][~active]
                bar.set_postfix(dist=f"{curve[-1][1]:.4f}")
            steps_run = len(curve)
            tuned = tuned.detach()
            with torch.no_grad():
                recon = self._synth(pivot, tuned)
                loss, dist = self.image_loss(recon, target)
        now = time.perf_counter()
        extras: dict[str, Any] = {
            "tuned": tuned, "pivot_images": pivot_images, "dist_pivot": dist_pivot, "dist": dist, "loss": loss,
            "curve": torch.tensor(curve, dtype=torch.float64).reshape(-1, 2), "steps": steps_run,
            "stopped": stopped, "pivot_seconds": pivot_seconds, "tune_seconds": now - t_tune, "seconds": now - t0,
            "perceptual": self.perceptual.name, "delta_numel": tuned.numel,
        }
        return Inversion(w_plus=pivot, images=recon, extras=extras)

    def metadata(self) -> dict[str, str]:
        return {**super().metadata(), "pivot": self.pivot.name, "steps": str(self.steps), "lr": str(self.lr),
                "rank": str(self.rank), "shared": str(self.shared).lower(), "locality": str(self.locality),
                "perceptual": self.perceptual.name}


def _pti(model: Any = None, generator: Any = None, **options: Any) -> PTIInverter:
    pivot = options.pop("pivot", DEFAULT_PIVOT)
    pivot_options = options.pop("pivot_options", None) or {}
    if isinstance(pivot, str) and pivot not in ("optimize-w", "optimize"):
        # an encoder pivot (e4e, psp, restyle, optimize-e4e; model= picks the encoder): PTI tunes its decoder
        if generator is not None:
            raise ValueError(f"the {pivot} pivot inverts into its encoder's own decoder, which PTI tunes: give the "
                             "encoder (model=, --model) instead of a generator")
        inv = make_inverter(pivot, model=model, **pivot_options)
        return PTIInverter(inv.generator, pivot=inv, **options)
    if model is not None:
        raise ValueError("model= names a pivot encoder: use pivot e4e, psp, restyle or optimize-e4e with it; the "
                         "optimize pivots take generator=")
    return PTIInverter(_load_generator(generator if generator is not None else DEFAULT_GENERATOR), pivot=pivot,
                       pivot_options=pivot_options, **options)


register_inverter("pti", _pti)
