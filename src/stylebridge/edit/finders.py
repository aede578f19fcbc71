"""Direction finders that run on the user's own generator.

* `find_ganspace` — GANSpace (Härkönen et al. 2020): PCA of sampled w; components become directions with a layer
  range (which rows an edit moves is the user's choice, as in GANSpace).
* `find_supervised` — InterFaceGAN (Shen et al. 2020): sample w, label the rendered images with a classifier, keep
  the most confident ``fraction`` at each end (2 % each, as InterFaceGAN), fit a linear SVM (or logistic
  regression) in W; the unit normal of its boundary is the direction. ``method="meandiff"`` instead takes the
  difference of the two groups' mean w (the StyleGAN2-distillation paper's method). ``conditions``: directions to
  leave unchanged — the normal is projected off them (InterFaceGAN's conditional manipulation, for any number of
  conditions by Gram–Schmidt).
* Labels: `attribute_scores` reads an attribute from a domain network's heads (the shipped synthfaces-domain, or a
  user's network of the same kind), or the user gives labels for seeds (`labels_from_csv`).

A direction's suggested strength range is ±2.5 standard deviations of the sampled w along it, so "strength 1" means
the same fraction of the distribution for every method.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from stylebridge.core.seeds import seed_to_z
from stylebridge.models.direction import Direction, GanSpaceComponents, GanSpaceConfig, parse_layers
from stylebridge.models.domain import DomainNetwork
from stylebridge.models.stylegan2 import StyleGAN2Generator

__all__ = [
    "attribute_scores",
    "find_ganspace",
    "find_guided",
    "find_supervised",
    "generator_digest",
    "labels_from_csv",
    "measure_per_unit",
    "parse_attribute",
    "project_off",
    "render_scores",
    "sample_w",
    "scores_from_logits",
    "seeds_to_w",
]

METHODS = ("interfacegan", "logistic", "meandiff")


def generator_digest(G: StyleGAN2Generator, name: str = "") -> str:
    """'NAME (sha256 0123abcd…)': which generator a direction belongs to (weights' digest, first 12 hex)."""
    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return f"{name} (sha256 {h.hexdigest()[:12]})".strip()


@torch.no_grad()
def sample_w(G: StyleGAN2Generator, n: int, seed: int = 0, truncation_psi: float = 1.0,
             batch: int = 10_000) -> torch.Tensor:
    """w [n, w_dim] of ``n`` latents z drawn from ``torch.Generator().manual_seed(seed)`` (fp32, CPU)."""
    gen = torch.Generator().manual_seed(seed)
    dev = G.w_avg.device
    out = [G.map(torch.randn(min(batch, n - s), G.z_dim, generator=gen).to(dev), truncation_psi).float().cpu()
           for s in range(0, n, batch)]
    return torch.cat(out)


def find_ganspace(G: StyleGAN2Generator, samples: int = 100_000, components: int = 32, seed: int = 0,
                  generator_name: str = "") -> GanSpaceComponents:
    """PCA of ``samples`` mapped w: components [components, w_dim] (unit rows, by decreasing variance), their
    standard deviations, and the mean — e4e's GANSpace file layout, applied the same way."""
    if samples < 2 or not 1 <= components <= G.w_dim:
        raise ValueError(f"need samples >= 2 and 1 <= components <= w_dim ({G.w_dim}), got {samples}, {components}")
    w = sample_w(G, samples, seed).double()
    mean = w.mean(0, keepdim=True)
    cov = (w - mean).t() @ (w - mean) / (samples - 1)
    vals, vecs = torch.linalg.eigh(cov)
    order = torch.argsort(vals, descending=True)[:components]
    pca = GanSpaceComponents(GanSpaceConfig(w_dim=G.w_dim, num_components=components, samples=samples,
                                            generator=generator_digest(G, generator_name)))
    pca.mean.copy_(mean.float())
    pca.comp.copy_(vecs[:, order].t().float())
    pca.std.copy_(vals[order].clamp_min(0).sqrt().float())
    return pca.eval()


# ------------------------------------------------------------------------------------------------------------------
# Labels


def parse_attribute(net: DomainNetwork, spec: str) -> tuple[str, int | None, int | None]:
    """'smile' (continuous) · 'glasses' (categorical: any but its first category, e.g. not 'none') ·
    'hair_color=blonde' · 'hair_color=blonde:black' (positive : negative categories) → (head, pos, neg)."""
    name, _, cats = spec.partition("=")
    heads = dict(net.config.heads)
    if name not in heads:
        raise ValueError(f"unknown attribute {name!r}; the network knows: {', '.join(heads)}")
    k = heads[name]
    choices = _choices(name, k)
    if k == 1:
        if cats:
            raise ValueError(f"{name} is continuous: give it without '=...'")
        return name, None, None
    if not cats:
        return name, None, 0  # any category but the first ('none' for glasses and beard) against the first
    pos, _, neg = cats.partition(":")

    def index(c: str) -> int:
        if c in choices:
            return choices.index(c)
        if c.isdigit() and int(c) < k:
            return int(c)
        raise ValueError(f"{name} has categories {choices}; got {c!r}")

    return name, index(pos), index(neg) if neg else None


def _choices(name: str, k: int) -> list[str]:
    from stylebridge.data import synthfaces as sf

    for a in sf.ATTRIBUTES:
        if a.name == name and a.is_categorical and len(a.choices) == k:
            return list(a.choices)
    return [str(i) for i in range(k)]


@torch.no_grad()
def attribute_scores(net: DomainNetwork, images: torch.Tensor, spec: str) -> torch.Tensor:
    """Scores [N] in [-1, 1] (higher: more of the attribute) for images [N, 3, H, W] in [-1, 1]: a continuous head's
    probability mapped to [-1, 1], or P(positive) - P(negative) over a categorical head (see `parse_attribute`)."""
    return scores_from_logits(net, net(images), spec)


def scores_from_logits(net: DomainNetwork, logits: torch.Tensor, spec: str) -> torch.Tensor:
    """`attribute_scores` from the network's raw head outputs [N, head_size] (one forward, many attributes)."""
    name, pos, neg = parse_attribute(net, spec)
    chunk = logits[:, _head_slices(net)[name]].float()
    if chunk.shape[1] == 1:
        return torch.sigmoid(chunk[:, 0]) * 2 - 1
    p = chunk.softmax(dim=1)
    p_pos = p[:, pos] if pos is not None else 1 - p[:, neg]
    p_neg = p[:, neg] if neg is not None else 1 - p_pos
    return p_pos - p_neg if pos is not None else p_pos - (1 - p_pos)


@torch.no_grad()
def render_scores(G: StyleGAN2Generator, w: torch.Tensor, score: Callable[[torch.Tensor], torch.Tensor],
                  batch: int = 256, progress: bool = True) -> torch.Tensor:
    """``score(images)`` [N] for the images G renders from w [N, w_dim] (const noise)."""
    dev = G.w_avg.device
    out = []
    for s in tqdm(range(0, len(w), batch), desc="label samples", unit="batch", disable=not progress):
        img = G.synthesize(w[s : s + batch].to(dev), noise_mode="const").clamp(-1, 1)
        out.append(score(img).float().cpu())
    return torch.cat(out)


def labels_from_csv(path: str | os.PathLike) -> tuple[list[int], torch.Tensor]:
    """A CSV with columns ``seed,label`` (a header line is allowed): the seeds and their float labels."""
    seeds, labels = [], []
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.reader(fh)):
            if not row or row[0].strip().startswith("#"):
                continue
            try:
                seeds.append(int(row[0]))
                labels.append(float(row[1]))
            except (ValueError, IndexError):
                if i == 0:
                    continue  # header
                raise ValueError(f"{path}: line {i + 1}: expected 'seed,label', got {row!r}") from None
    if len(seeds) < 4:
        raise ValueError(f"{path}: need at least 4 labelled seeds, got {len(seeds)}")
    return seeds, torch.tensor(labels)


# ------------------------------------------------------------------------------------------------------------------
# Supervised directions


def project_off(normal: torch.Tensor, conditions: Sequence[torch.Tensor]) -> torch.Tensor:
    """``normal`` [w_dim] with its components along every condition direction removed (Gram–Schmidt on the
    conditions first), renormalised: InterFaceGAN's conditional manipulation for any number of conditions."""
    basis: list[torch.Tensor] = []
    for c in conditions:
        c = c.double().reshape(-1)
        for b in basis:
            c = c - (c @ b) * b
        if float(c.norm()) > 1e-8:
            basis.append(c / c.norm())
    n = normal.double().reshape(-1)
    for b in basis:
        n = n - (n @ b) * b
    if float(n.norm()) < 1e-8:
        raise ValueError("the direction lies in the span of the conditions: nothing is left after projecting them off")
    return (n / n.norm()).to(normal.dtype)


def _fit_linear(x: torch.Tensor, y: torch.Tensor, loss: str, c: float = 1.0) -> torch.Tensor:
    """A linear classifier w·x + b on standardised features (float64, L-BFGS): ``loss`` "svm" (L2-regularised
    squared hinge, LinearSVC's default) or "logistic". Returns the normal in the original coordinates [w_dim]."""
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    xs = (x - mu) / sd
    t = y * 2 - 1  # {0, 1} → {-1, 1}
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        margin = t * (xs @ w + b)
        data = (torch.clamp(1 - margin, min=0) ** 2).sum() if loss == "svm" else torch.nn.functional.softplus(
            -margin).sum()
        obj = 0.5 * (w @ w) + c * data
        obj.backward()
        return obj

    opt.step(closure)
    return (w.detach() / sd).double()  # back to the unstandardised w: normal of the same boundary


def find_supervised(w: torch.Tensor, scores: torch.Tensor, method: str = "interfacegan", fraction: float = 0.02,
                    conditions: Sequence[Direction] = (), name: str = "direction", labels: str = "",
                    generator: str = "", layers: str | Sequence[int] | None = None,
                    val_fraction: float = 0.3, seed: int = 0) -> Direction:
    """A direction from labelled samples.

    Args:
        w: sampled w [N, w_dim]; scores: [N] (higher: more of the attribute).
        method: "interfacegan" (linear SVM), "logistic" (logistic regression) or "meandiff".
        fraction: the most confident fraction kept at each end (InterFaceGAN: 0.02 of N each).
        conditions: directions whose attributes must not change (projected off).
        val_fraction: share of the kept samples held out to report the classifier's accuracy (in ``notes``).

    Returns:
        a unit `Direction` in W, pointing to higher scores, with its strength range (±2.5 σ of w along it).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if w.ndim != 2 or scores.shape != (w.shape[0],):
        raise ValueError(f"need w [N, w_dim] and scores [N], got {tuple(w.shape)} and {tuple(scores.shape)}")
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction must be in (0, 0.5], got {fraction}")
    k = max(2, round(len(w) * fraction))
    order = torch.argsort(scores)
    neg, pos = order[:k], order[-k:]
    if float(scores[pos].min()) <= float(scores[neg].max()):
        raise ValueError(f"{name}: the {k} highest and lowest scores overlap: the labels do not separate "
                         "(a constant attribute, or too few samples)")
    x = torch.cat([w[pos], w[neg]]).double()
    y = torch.cat([torch.ones(k), torch.zeros(k)]).double()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(x) * val_fraction) if method != "meandiff" else 0
    val, train = perm[:n_val], perm[n_val:]
    if method == "meandiff":
        normal = x[y == 1].mean(0) - x[y == 0].mean(0)
        acc_text = ""
    else:
        normal = _fit_linear(x[train], y[train], "svm" if method == "interfacegan" else "logistic")
        if n_val:
            # the boundary's offset: the midpoint of the two classes' projections (training split)
            proj = x[train] @ normal
            thr = 0.5 * (proj[y[train] == 1].mean() + proj[y[train] == 0].mean())
            pred = x[val] @ normal > thr
            acc = float((pred.double() == y[val]).double().mean())
            acc_text = f", held-out accuracy {acc:.3f} on {n_val}"
        else:
            acc_text = ""
    normal = normal / normal.norm()
    if conditions:
        normal = project_off(normal, [c.vector.reshape(-1) for c in conditions])
    sigma = float((w.double() @ normal).std())
    rng = round(2.5 * sigma, 3)
    cond = f"; conditioned on {', '.join(c.name for c in conditions)}" if conditions else ""
    return Direction.from_vector(normal.float(), name=name, layers=parse_layers(layers) if layers else None,
                                 strength_range=(-rng, rng), method=method, generator=generator, labels=labels,
                                 notes=f"{len(w)} samples, {k} per class (top/bottom {fraction:.1%}){acc_text}; "
                                       f"σ of w along it {sigma:.4g}{cond}")


@torch.no_grad()
def measure_per_unit(G: StyleGAN2Generator, direction: Direction, score: Callable[[torch.Tensor], torch.Tensor],
                     samples: int = 256, seed: int = 1, steps: int = 5, batch: int = 128) -> float:
    """The mean rate of change of ``score(images)`` per unit strength along ``direction``: ``samples`` sampled
    faces (seed ``seed``; keep it apart from the finder's) edited at ``steps`` strengths spanning the middle half
    of the direction's strength range, a least-squares slope per face, averaged. For the score of
    `attribute_scores` (in [-1, 1]) this is `DirectionConfig.per_unit`."""
    lo, hi = direction.config.strength_range
    strengths = torch.linspace(lo / 2, hi / 2, steps)
    w = sample_w(G, samples, seed)
    dev = G.w_avg.device
    slopes = []
    for s0 in range(0, samples, batch):
        wp = G.broadcast_ws(w[s0 : s0 + batch].to(dev))
        ys = torch.stack([score(G.synthesize(direction.apply(wp, float(t)), noise_mode="const").clamp(-1, 1)).float()
                          .cpu() for t in strengths], dim=1)  # [n, steps]
        x = strengths - strengths.mean()
        slopes.append(((ys - ys.mean(1, keepdim=True)) * x).sum(1) / (x * x).sum())
    return float(torch.cat(slopes).mean())


def _head_slices(net: DomainNetwork) -> dict[str, slice]:
    out, pos = {}, 0
    for name, k in net.config.heads:
        out[name] = slice(pos, pos + k)
        pos += k
    return out


def _head_change(net: DomainNetwork, before: torch.Tensor, after: torch.Tensor, skip: set[str]) -> torch.Tensor:
    """[N] summed change of every head not in ``skip``: continuous heads |Δ value| (value in [0, 1]), categorical
    heads half the L1 distance of their probabilities (also in [0, 1])."""
    total = before.new_zeros(before.shape[0])
    for name, sl in _head_slices(net).items():
        if name in skip:
            continue
        a, b = before[:, sl].float(), after[:, sl].float()
        if sl.stop - sl.start == 1:
            total = total + (torch.sigmoid(b[:, 0]) - torch.sigmoid(a[:, 0])).abs()
        else:
            total = total + 0.5 * (b.softmax(1) - a.softmax(1)).abs().sum(1)
    return total


def find_guided(G: StyleGAN2Generator, net: DomainNetwork, spec: str, start: Direction | None = None,
                steps: int = 300, batch: int = 16, change: float = 1.0, keep_weight: float = 1.0,
                identity_weight: float = 1.0, lr: float = 0.01, layers: str | Sequence[int] | None = None,
                keep_free: Sequence[str] = (), name: str = "direction", generator: str = "", labels: str = "",
                seed: int = 0,
                precision: str = "fp32", progress: bool = True) -> Direction:
    """A per-row W+ direction optimised through the generator and the classifier: each sampled face is edited by
    ``±d`` towards the other side of the attribute (``+d`` where its score, `attribute_scores` in [-1, 1], is
    below 0), and the score must move by ``change`` that way (hinge, the target clamped to ±0.95); every other
    head of ``net`` must stay (summed change of their readings, weight ``keep_weight``) and so must the identity
    embedding (1 − cosine, weight ``identity_weight``). The classifier's own idea of "only this attribute", in
    the spirit of GANalyze / "Enjoy your editing": where linear boundaries in W
    (InterFaceGAN) pick up whatever correlates with the attribute in the samples, this penalises it.

    Args:
        start: the initial direction (e.g. InterFaceGAN's normal; default: a small random one).
        layers: W+ rows it may move (others stay 0); None: all.
        keep_free: heads allowed to change besides the attribute (e.g. glasses_color with glasses).
        precision: the generator under autocast ("bf16" on CPUs with fast bf16).

    Returns:
        a `Direction` [num_ws, w_dim] whose strength 1 is the learned edit (strength range ±1.5).
    """
    from stylebridge.core.device import autocast

    head, _, _ = parse_attribute(net, spec)
    rows = parse_layers(layers, G.num_ws) if layers is not None else tuple(range(G.num_ws))
    mask = torch.zeros(G.num_ws, 1)
    mask[list(rows)] = 1
    dev = G.w_avg.device
    gen = torch.Generator().manual_seed(seed)
    if start is not None:
        v = start.vector.float().cpu()
        init = (v if v.ndim == 2 else v.expand(G.num_ws, -1)) * max(start.config.strength_range[1], 1e-3)
    else:
        init = 0.01 * torch.randn(G.num_ws, G.w_dim, generator=gen)
    d = (init * mask).to(dev).requires_grad_(True)
    mask = mask.to(dev)
    opt = torch.optim.Adam([d], lr=lr)
    net.eval().requires_grad_(False)
    skip = {head, *keep_free}
    bar = tqdm(range(steps), desc=f"guided {name}", unit="step", disable=not progress)
    for _ in bar:
        z = torch.randn(batch, G.z_dim, generator=gen).to(dev)
        with torch.no_grad():
            wp = G.broadcast_ws(G.map(z))
            with autocast(dev, precision):
                img0 = G.synthesize(wp, noise_mode="const").float().clamp(-1, 1)
            feats0, emb0 = net.head_features(img0)  # one trunk pass for the logits and the embedding
            logits0 = net.head(feats0).float()
            score0 = scores_from_logits(net, logits0, spec)
            sign = torch.where(score0 < 0, 1.0, -1.0)
            target = (score0 + sign * change).clamp(-0.95, 0.95)
        with autocast(dev, precision):
            img1 = G.synthesize(wp + sign[:, None, None] * (d * mask), noise_mode="const").float().clamp(-1, 1)
        feats, emb1 = net.head_features(img1)
        logits1 = net.head(feats).float()
        score1 = scores_from_logits(net, logits1, spec)
        moved = sign * (score1 - score0)
        loss_t = torch.relu(sign * (target - score1)).mean()
        loss_k = _head_change(net, logits0, logits1, skip).mean()
        loss_i = (1 - (emb0 * emb1).sum(1)).mean()
        loss = loss_t + keep_weight * loss_k + identity_weight * loss_i
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(move=f"{float(moved.detach().mean()):.2f}", keep=f"{float(loss_k.detach()):.2f}",
                        id=f"{float(loss_i.detach()):.3f}")
    vec = (d * mask).detach().cpu()
    return Direction.from_vector(vec[None], name=name, layers=tuple(rows) if layers is not None else None,
                                 strength_range=(-1.5, 1.5), method="guided", generator=generator,
                                 labels=labels or f"{type(net).__name__}:{spec}",
                                 notes=f"{steps} steps × {batch} sampled faces, change {change}, keep weight "
                                       f"{keep_weight}, identity weight {identity_weight}, lr {lr}"
                                       + (f", started from {start.config.method}" if start is not None else ""))


def seeds_to_w(G: StyleGAN2Generator, seeds: Sequence[int], truncation_psi: float = 1.0) -> torch.Tensor:
    """w [len(seeds), w_dim] of NVlabs' z for each seed (the seeds a user labelled in a CSV)."""
    with torch.no_grad():
        return G.map(seed_to_z(list(seeds), G.z_dim).to(G.w_avg.device), truncation_psi).float().cpu()
