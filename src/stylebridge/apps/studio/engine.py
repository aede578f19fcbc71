"""The studio's engine: every action of the web page as a library call, with no HTTP in sight.

`Studio` loads the models once (any model the CLI loads: shipped names, native folders, official checkpoints) and
sorts them by what they can do; each action takes plain Python values and tensors and returns images:

    studio = Studio(["synthfaces-64-actmap", "synthfaces-64-e4e-inversion"])
    out = studio.generate(seeds=[0, 1], truncation_psi=0.7)          # {"images": [N, 3, R, R] in [-1, 1], …}
    out = studio.translate("synthfaces-64-actmap", picture, seed=3)  # picture: RGB PIL image or [C, H, W]
    session = studio.sessions.open()
    studio.invert(session, "e4e", picture)                           # stored in the session
    out = studio.edit(session, {"synthfaces-64-smile": 2.0})         # a slider move: one render

Inputs are PIL images (uploads, canvas drawings) or tensors [C, H, W] in [-1, 1]; outputs are float tensors in
about [-1, 1] on the CPU. Every model call holds one lock: on a 2-core CPU two concurrent forward passes only
slow each other down, and the lock keeps one session's tensors out of another's call.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from stylebridge.core import registry
from stylebridge.core.errors import BadImageError
from stylebridge.core.imageio import center_crop_resize, prepare_images, to_tensor
from stylebridge.edit.finders import generator_digest
from stylebridge.formats.loading import load
from stylebridge.invert.base import Inversion, Inverter, make_inverter
from stylebridge.models.direction import Direction, parse_layers
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.models.stylemapgan import StyleMapGAN
from stylebridge.pipelines.base import Pipeline, pipeline_for
from stylebridge.pipelines.generate import seed_to_z

__all__ = ["Session", "SessionStore", "Studio", "StudioError", "default_models", "model_thread",
           "shutdown_model_thread"]

# Inverters the Edit tab offers besides the loaded encoders: optimisation (NVlabs' projector) on the generator.
# PTI is left out: tuning the generator per image takes minutes on a 2-core CPU, not an interactive wait.
OPTIMIZE_STEPS = (25, 500)


_MODEL_THREAD: ThreadPoolExecutor | None = None


def model_thread() -> ThreadPoolExecutor:
    """The one thread every model call of the studio runs on — loading and warm-up included.

    torch's OpenMP thread team belongs to the thread that runs an operation. Once two threads have run torch
    operations, each keeps its own team, and on a 2-core machine the idle team's spinning threads take the cores from
    the working one: measured on the local-edit blend, 38 ms when one thread does everything, 70–90 ms when loading
    happened on another thread (or requests ran on a pool of threads).
    """
    global _MODEL_THREAD
    if _MODEL_THREAD is None:
        _MODEL_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-models")
    return _MODEL_THREAD


def shutdown_model_thread() -> None:
    """Stop the model thread (a later `model_thread` starts a new one). Its OpenMP team lives as long as it does and
    slows torch on other threads meanwhile (~30 % on 2 cores): programs that go on with other work stop it."""
    global _MODEL_THREAD
    if _MODEL_THREAD is not None:
        _MODEL_THREAD.shutdown(wait=True)
        _MODEL_THREAD = None


class StudioError(ValueError):
    """A request the studio cannot serve (unknown model, missing upload, no face found …): one line, shown to the
    user as it is."""


def default_models() -> list[str]:
    """Every shipped model except the domain network (a judge, not something a user runs)."""
    return [n for n in registry.names() if n != "synthfaces-domain"]


@dataclass
class Session:
    """One browser tab's state: its uploads (decoded RGB pictures by slot) and its last inversion."""

    token: str
    pictures: dict[str, Image.Image] = field(default_factory=dict)
    inversion: Inversion | None = None
    inverter: str = ""
    renderer: Inverter | None = None  # the inverter that made ``inversion`` (renders its edits)
    edited: torch.Tensor | None = None  # the last edit's W+ [1, num_ws, w_dim]
    edit_settings: dict[str, Any] = field(default_factory=dict)
    used: float = field(default_factory=time.monotonic)


class SessionStore:
    """Sessions by random token, the least recently used dropped beyond ``max_sessions`` or after ``ttl_s`` idle
    seconds (their pictures and latents with them)."""

    def __init__(self, max_sessions: int = 64, ttl_s: float = 3600.0) -> None:
        self.max_sessions, self.ttl_s = max_sessions, ttl_s
        self._items: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self) -> Session:
        with self._lock:
            self._expire()
            s = Session(secrets.token_urlsafe(18))
            self._items[s.token] = s
            while len(self._items) > self.max_sessions:
                self._items.popitem(last=False)
            return s

    def get(self, token: str | None) -> Session:
        with self._lock:
            self._expire()
            s = self._items.get(token or "")
            if s is None:
                raise StudioError("unknown or expired session: reload the page")
            s.used = time.monotonic()
            self._items.move_to_end(s.token)
            return s

    def close(self, token: str) -> None:
        with self._lock:
            self._items.pop(token, None)

    def __len__(self) -> int:
        return len(self._items)

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, s in self._items.items() if now - s.used > self.ttl_s]:
            del self._items[token]


@dataclass
class Translator:
    """A model the Translate and Compare tabs run: its pipeline, what it takes and can do."""

    name: str
    pipeline: Pipeline
    family: str  # "actmap", "psp", "e4e", "restyle", "distilled", "stylemapgan"
    channels: int
    size: int
    multimodal: bool  # samples with different styles
    walk: bool  # a latent walk between style seeds


def _family(model: torch.nn.Module, pipe: Pipeline) -> str:
    if pipe.name == "encoder":
        return str(getattr(model, "model_type", "encoder"))  # "psp", "e4e", "restyle"
    return {"pix2pixhd": "distilled"}.get(pipe.name, pipe.name)


class Studio:
    """The loaded models and the page's actions.

    Args:
        models: names or paths `stylebridge.load` takes; None: every shipped model (`default_models`). Generators
            come from the list or from the translators' and encoders' own generators.
        precision: "fp32" or "bf16" autocast around model calls (fp32 by default: at 64 px the models take a few
            milliseconds and bf16 gains nothing on that).
    """

    def __init__(self, models: Sequence[str | Path] | None = None, *, precision: str = "fp32",
                 sessions: SessionStore | None = None, aligner: Callable[..., Image.Image] | None = None) -> None:
        self.lock = threading.RLock()
        self.precision = precision
        self.sessions = sessions or SessionStore()
        self.generators: dict[str, StyleGAN2Generator] = {}
        self.translators: dict[str, Translator] = {}
        self.inverters: dict[str, Inverter] = {}
        self.directions: dict[str, Direction] = {}
        self.stylemaps: dict[str, StyleMapGAN] = {}
        self._aligner = aligner
        self._aligner_error = ""
        self._digests: set[str] = set()
        for spec in (default_models() if models is None else models):
            self._add(str(spec), load(spec))
        if not self.generators:
            raise StudioError("no generator among the models (give a StyleGAN2 generator or a model that has one)")
        main = next(iter(self.generators.values()))
        for name, d in list(self.directions.items()):  # directions for another generator would not apply
            if d.config.w_dim != main.w_dim or (d.config.num_ws and d.config.num_ws != main.num_ws):
                del self.directions[name]
        self.optimize: Inverter | None = None
        self._main_name = next(iter(self.generators))

    # ---------------------------------------------------------------------------------------------- loading
    def _add(self, name: str, model: torch.nn.Module) -> None:
        label = Path(name).name or name
        taken = {*self.generators, *self.translators, *self.directions, *self.stylemaps}
        if label in taken:
            raise StudioError(f"{name}: two models named {label!r} (give them folders with different names)")
        if isinstance(model, StyleGAN2Generator):
            self._add_generator(label, model)
            return
        if isinstance(model, Direction):
            self.directions[label] = model
            return
        if isinstance(model, StyleMapGAN):
            self.stylemaps[label] = model.eval()
        try:
            pipe = pipeline_for(model)
        except (TypeError, ValueError) as e:
            raise StudioError(f"{name}: the studio cannot run a {type(model).__name__} ({e})") from None
        spec = pipe.input_spec
        family = _family(model, pipe)
        if spec.kind in ("rgb", "gray"):
            self.translators[label] = Translator(label, pipe, family, spec.channels, spec.size,
                                                 multimodal=family in ("actmap", "psp", "e4e", "restyle", "encoder"),
                                                 walk=family == "actmap")
        generator = getattr(model, "decoder", None) or getattr(model, "generator", None)
        if isinstance(generator, StyleGAN2Generator):
            self._add_generator(f"{label} (its generator)", generator)
        if family in ("psp", "e4e", "restyle") and spec.kind == "rgb" and family not in self.inverters:
            self.inverters[family] = make_inverter(family, model=model)

    def _add_generator(self, label: str, G: StyleGAN2Generator) -> None:
        # Translators and encoders carry their own copy of the generator; list each distinct one once.
        digest = generator_digest(G)
        if digest not in self._digests:
            self._digests.add(digest)
            self.generators.setdefault(label, G.eval())

    def warm_up(self) -> None:
        """One call of every model (and the region masks), so the first user does not wait for lazy set-up."""
        face = self.example("face", 0)
        for t in self.translators.values():
            self.translate(t.name, face)
        session = self.sessions.open()
        for name in self.inverters:
            self.invert(session, name, face)
        if self.directions:
            self.edit(session, {next(iter(self.directions)): 1.0})
        if self.stylemaps:
            self.local_edit("", face, face, regions=["hair"])
        self.generate([0])
        self.sessions.close(session.token)

    @property
    def generator(self) -> StyleGAN2Generator:
        """The generator the Edit tab edits in: the first generator given or found."""
        return self.generators[self._main_name]

    def info(self) -> dict[str, Any]:
        """What the page offers: models per tab, directions with their layer and strength ranges, limits."""
        from stylebridge.data.synthfaces import SEG_LABELS

        G = self.generator
        return {
            "generators": [{"name": n, "resolution": g.resolution, "num_ws": g.num_ws}
                           for n, g in self.generators.items()],
            "translators": [{"name": t.name, "family": t.family, "channels": t.channels, "size": t.size,
                             "multimodal": t.multimodal, "walk": t.walk} for t in self.translators.values()],
            "inverters": [*self.inverters, "optimize"],
            "optimize_steps": list(OPTIMIZE_STEPS),
            "directions": [{"name": n, "short": d.name or n,
                            "layers": _layers_text(d.config.layers, G.num_ws),
                            "range": list(d.config.strength_range or (-3.0, 3.0))}
                           for n, d in self.directions.items()],
            "stylemaps": list(self.stylemaps),
            "regions": [r for r in SEG_LABELS if r != "background"],
            "num_ws": G.num_ws,
            "resolution": G.resolution,
            "align": self.align_available(),
        }

    # ---------------------------------------------------------------------------------------------- inputs
    def align_available(self) -> str:
        """"" when photos can be aligned (dlib installed), else why not."""
        if self._aligner is not None:
            return ""
        if not self._aligner_error:
            import importlib.util

            missing = [m for m in ("dlib", "face_recognition_models") if importlib.util.find_spec(m) is None]
            self._aligner_error = (f"alignment needs {' and '.join(missing)} (pip install 'stylebridge[align]')"
                                   if missing else "")
        return self._aligner_error

    def aligner(self) -> Callable[..., Image.Image]:
        why = self.align_available()
        if why:
            raise StudioError(why)
        if self._aligner is None:
            from stylebridge.data.align import make_aligner

            # Shipped synthfaces models have the renderer's exact layout; others dlib's reading of the generator.
            self._aligner = make_aligner("auto", model=self._main_name.split(" ")[0], generator=self.generator)
        return self._aligner

    def aligner_image(self, picture: Image.Image, size: int) -> Image.Image:
        """A photo with its face aligned into the generator's layout, ``size`` px square; StudioError when dlib
        finds no face."""
        try:
            return self.aligner()(picture, size)
        except BadImageError as e:
            raise StudioError(f"no face found in the picture ({str(e).split(': ', 1)[-1]})") from None

    def picture_tensor(self, picture: Image.Image | torch.Tensor, channels: int, size: int,
                       align: bool = False) -> torch.Tensor:
        """An input picture as a model takes it: [1, channels, size, size] in [-1, 1]. PIL pictures are centre-cropped
        (or aligned with ``align``) and resized; 1-channel models get the luma."""
        if isinstance(picture, torch.Tensor):
            if align:
                raise StudioError("alignment works on uploaded pictures, not on rendered examples")
            x = picture[None] if picture.ndim == 3 else picture
        else:
            img = self.aligner_image(picture, size) if align else center_crop_resize(picture, size)
            x = to_tensor(img)[None]
        return prepare_images(x.float(), channels, size)

    def example(self, kind: str, seed: int, size: int | None = None) -> torch.Tensor:
        """A synthfaces rendering to start from: "face", "sketch" or "photo" (the photo look) → [3, R, R]."""
        if kind not in ("face", "sketch", "photo"):
            raise StudioError(f"unknown example kind {kind!r} (face, sketch, photo)")
        if not 0 <= seed < 2**31:
            raise StudioError(f"example seed must be in [0, 2^31), got {seed}")
        return _example(kind, seed, size or self.generator.resolution).clone()

    # ---------------------------------------------------------------------------------------------- actions
    def _autocast(self) -> Any:
        from stylebridge.core.device import autocast

        return autocast(torch.device("cpu"), self.precision)

    def generate(self, seeds: Sequence[int], truncation_psi: float = 0.7, generator: str | None = None,
                 mix_seed: int | None = None, crossover: int | None = None) -> dict[str, torch.Tensor]:
        """Seeds → images [N, 3, R, R]; with ``mix_seed``: also ``mixed`` [N, 3, R, R], the rows from
        ``crossover`` on (the finer styles) taken from ``mix_seed``'s w, and ``mix_source`` [1, 3, R, R]."""
        G = self._generator(generator)
        seeds = [int(s) for s in seeds]
        if not seeds or len(seeds) > 16 or min(seeds) < 0 or max(seeds) >= 2**32:
            raise StudioError("give 1 to 16 seeds in [0, 2^32)")
        if not 0.0 <= truncation_psi <= 2.0:
            raise StudioError(f"truncation must be in [0, 2], got {truncation_psi:g}")
        c = G.num_ws // 2 if crossover is None else int(crossover)
        if mix_seed is not None and not 0 <= c <= G.num_ws:
            raise StudioError(f"crossover must be in [0, {G.num_ws}], got {c}")
        if mix_seed is not None and not 0 <= int(mix_seed) < 2**32:
            raise StudioError(f"the mixing seed must be in [0, 2^32), got {mix_seed}")
        with self.lock, torch.inference_mode(), self._autocast():
            w = G.map(seed_to_z(seeds, G.z_dim), truncation_psi)
            out = {"images": G.synthesize(w, noise_mode="const").float()}
            if mix_seed is not None:
                w2 = G.map(seed_to_z([int(mix_seed)], G.z_dim), truncation_psi)
                out["mixed"] = G.synthesize(G.mix(w, w2.expand(len(seeds), -1), c), noise_mode="const").float()
                out["mix_source"] = G.synthesize(w2, noise_mode="const").float()
        return out

    def translate(self, name: str, picture: Image.Image | torch.Tensor, *, seed: int = 0, samples: int = 0,
                  walk: bool = False, frames: int = 16, truncation_psi: float = 0.7, colors: str = "style",
                  align: bool = False) -> dict[str, torch.Tensor]:
        """One picture through a translator → ``image`` [1, 3, R, R], ``input`` (what the model saw), and
        ``samples`` [K, 3, R, R] (multi-modal: K more styles — actmap: style seeds ``seed + 1 … seed + K`` beside
        the main picture's ``seed``, 0 meaning the mean style; encoders: the sample seed ``seed``) or ``frames``
        [F, 3, R, R] (a walk from style seed ``seed`` to ``seed + 1`` and back, actmap, looping)."""
        t = self._translator(name)
        if not 0 <= samples <= 8:
            raise StudioError(f"samples must be in [0, 8], got {samples}")
        if not 2 <= frames <= 48:
            raise StudioError(f"frames must be in [2, 48], got {frames}")
        if not 0 <= seed < 2**31 - 64:
            raise StudioError(f"the style seed must be in [0, 2^31), got {seed}")
        if not 0.0 <= truncation_psi <= 2.0:
            raise StudioError(f"truncation must be in [0, 2], got {truncation_psi:g}")
        if walk and not t.walk:
            raise StudioError(f"{name} has no latent walk (the activation-map translator has)")
        if samples and not t.multimodal:
            raise StudioError(f"{name} has one output per input (no multi-modal samples)")
        x = self.picture_tensor(picture, t.channels, t.size, align=align)
        opts: dict[str, Any] = {}
        if t.family == "actmap":
            opts = {"truncation_psi": truncation_psi, "colors": colors if t.channels == 3 else "style"}
            if not walk:
                opts["seed"] = seed if seed else None  # seed 0: the mean w (the translator's default look)
        with self.lock, torch.inference_mode(), self._autocast():
            if walk:
                # There and back, the last frame (= the first) dropped so the animation loops without a stutter.
                res = t.pipeline(x, walk=[seed, seed + 1, seed], frames=frames + 1, **opts)
                return {"image": res.images, "input": x, "frames": res.extras["frames"][0, :-1]}
            if t.family == "actmap" and samples:
                main = t.pipeline(x, **opts).images  # the style seed's (or the mean style's) picture, as without
                opts.pop("seed")
                res = t.pipeline(x.expand(samples, -1, -1, -1), seed=[seed + 1 + k for k in range(samples)], **opts)
                return {"image": main, "input": x, "samples": res.images}
            if t.family in ("psp", "e4e", "restyle", "encoder"):
                opts = {"samples": samples, "seed": seed, "truncation_psi": truncation_psi} if samples else {}
            res = t.pipeline(x, **opts)
        out = {"image": res.images, "input": x}
        if "samples" in res.extras:
            out["samples"] = res.extras["samples"][0]
        return out

    def invert(self, session: Session, inverter: str, picture: Image.Image | torch.Tensor, *, steps: int = 100,
               align: bool = False) -> dict[str, torch.Tensor]:
        """Invert a picture into the generator's W+ and keep it in ``session`` → ``input``, ``reconstruction``."""
        with self.lock:  # held from the start: the shared optimisation inverter's steps are set here
            inv = self._inverter(inverter, steps)
            x = self.picture_tensor(picture, 3, inv.input_size, align=align)
            with self._autocast() if inverter != "optimize" else contextlib.nullcontext():
                result = inv.invert(x)
            session.inversion, session.inverter, session.renderer, session.edited = result, inverter, inv, None
            session.edit_settings = {}
            # "Before" is rendered exactly as the edits are (the encoders' own decode can differ in the last bit),
            # so before and after differ by the edit alone.
            with torch.inference_mode():
                before = inv.render(result.w_plus[:1], **result.render_options([0]))
        return {"input": x, "reconstruction": before}

    def edit(self, session: Session, strengths: Mapping[str, float],
             layers: Mapping[str, str] | None = None) -> dict[str, torch.Tensor]:
        """A slider move: the session's inversion moved by ``strength`` along each direction (on its own layer range,
        or ``layers[name]`` as "a-b" / "a,b" / "all") and rendered → ``image`` [1, 3, R, R]."""
        inv, renderer = session.inversion, session.renderer
        if inv is None or renderer is None:
            raise StudioError("invert a picture first (Edit tab: upload, then Invert)")
        G = renderer.generator
        w = inv.w_plus[:1].float()
        rows_used: dict[str, list[int]] = {}
        for name, s in strengths.items():
            d = self.directions.get(name)
            if d is None:
                raise StudioError(f"unknown direction {name!r} (known: {', '.join(self.directions)})")
            spec = (layers or {}).get(name) or None
            if not -100.0 <= float(s) <= 100.0:
                raise StudioError(f"{name}: strength must be in [-100, 100], got {float(s):g}")
            if spec is not None and len(spec) > 200:
                raise StudioError(f"{name}: the layer range is too long")
            try:
                rows = parse_layers(spec, G.num_ws) if spec else d.config.layers
            except ValueError as e:
                raise StudioError(f"{name}: {e}") from None
            if float(s):
                w = d.apply(w, float(s), rows)
            rows_used[name] = list(rows) if rows is not None else list(range(G.num_ws))
        with self.lock, torch.inference_mode():
            image = renderer.render(w, **inv.render_options([0]))
        session.edited = w
        session.edit_settings = {"strengths": dict(strengths), "layers": rows_used}
        return {"image": image}

    def latents(self, session: Session) -> dict[str, torch.Tensor]:
        """The session's inversion and last edit: ``w_plus`` [num_ws, w_dim], ``edited`` [num_ws, w_dim]."""
        if session.inversion is None:
            raise StudioError("nothing to download: invert a picture first")
        w = session.inversion.w_plus[0].float().cpu()
        edited = session.edited[0].cpu() if session.edited is not None else w
        return {"w_plus": w.contiguous(), "edited": edited.contiguous()}

    def local_edit(self, name: str, source: Image.Image | torch.Tensor, reference: Image.Image | torch.Tensor,
                   mask: torch.Tensor | None = None, regions: Sequence[str] = (), shift: tuple[int, int] = (0, 0),
                   frames: int = 0) -> dict[str, torch.Tensor]:
        """StyleMapGAN: the masked part of ``reference`` moved by ``shift`` (dy, dx pixels) into ``source`` →
        ``image`` [1, 3, R, R] (the blend), ``source``/``reference`` (as the model saw them), ``mask`` [1, R, R] in
        [0, 1] and, with ``frames`` ≥ 2, ``frames`` [F, 3, R, R] from the source to the blend. ``mask`` [H, W]
        in [0, 1] (painted: 1 = the reference's part) and ``regions`` (synthfaces parts by name) are united."""
        from stylebridge.edit.stylemap import region_mask, transplant

        model = self._stylemap(name)
        R = model.config.generator.resolution
        if frames and not 2 <= frames <= 48:
            raise StudioError(f"frames must be 0 or in [2, 48], got {frames}")
        part = torch.zeros(R, R)
        if mask is not None:
            part = torch.nn.functional.interpolate(mask.float()[None, None], size=(R, R), mode="area")[0, 0]
        regions = sorted({str(r) for r in regions})  # a repeated name adds nothing
        if regions:
            try:  # region_mask names unknown regions in its error
                part = torch.maximum(part, (region_mask(regions, R) + 1) / 2)
            except ValueError as e:
                raise StudioError(str(e)) from None
        if not (part > 0.5).any():
            raise StudioError("the mask is empty: paint on the reference or pick a region")
        dy, dx = (int(v) for v in shift)
        if max(abs(dy), abs(dx)) >= R:
            raise StudioError(f"shift must stay within ±{R - 1} pixels, got ({dy}, {dx})")
        src = self.picture_tensor(source, 3, R)
        ref = self.picture_tensor(reference, 3, R)
        with self.lock, torch.inference_mode(), self._autocast():
            s_code, r_code = model.encode(src), model.encode(ref)
            clip = transplant(model, s_code, r_code, part[None], [(dy, dx)], steps=max(frames, 2)).float()
        out = {"image": clip[-1:], "source": src, "reference": ref, "mask": part[None]}
        if frames:
            out["frames"] = clip
        return out

    def compare(self, picture: Image.Image | torch.Tensor, *, optimize_steps: int = 0,
                align: bool = False) -> list[dict[str, Any]]:
        """One picture through every translator (and optimisation with ``optimize_steps`` > 0) → a list of
        ``{"name", "family", "image" [1, 3, R, R], "ms"}``, each timed alone (its model call, not the page)."""
        rows: list[dict[str, Any]] = []
        for t in self.translators.values():
            start = time.perf_counter()
            # The activation-map translator takes its colours from the input here: the mean style's colours say
            # nothing about the picture (the evaluation's actmap-colors).
            colors = "input" if t.family == "actmap" and t.channels == 3 else "style"
            out = self.translate(t.name, picture, align=align, colors=colors)
            rows.append({"name": t.name, "family": t.family, "image": out["image"],
                         "ms": (time.perf_counter() - start) * 1e3})
        if optimize_steps:
            session = Session("compare")
            start = time.perf_counter()
            out = self.invert(session, "optimize", picture, steps=optimize_steps, align=align)
            rows.append({"name": f"optimize ({optimize_steps} steps)", "family": "optimize",
                         "image": out["reconstruction"], "ms": (time.perf_counter() - start) * 1e3})
        return rows

    # ---------------------------------------------------------------------------------------------- lookups
    def _generator(self, name: str | None) -> StyleGAN2Generator:
        if not name:
            return self.generator
        if name not in self.generators:
            raise StudioError(f"unknown generator {name!r} (loaded: {', '.join(self.generators)})")
        return self.generators[name]

    def _translator(self, name: str) -> Translator:
        if name not in self.translators:
            raise StudioError(f"unknown translator {name!r} (loaded: {', '.join(self.translators) or 'none'})")
        return self.translators[name]

    def _stylemap(self, name: str | None) -> StyleMapGAN:
        if not self.stylemaps:
            raise StudioError("no StyleMapGAN model loaded (give one with --model)")
        if not name:
            return next(iter(self.stylemaps.values()))
        if name not in self.stylemaps:
            raise StudioError(f"unknown StyleMapGAN model {name!r} (loaded: {', '.join(self.stylemaps)})")
        return self.stylemaps[name]

    def _inverter(self, name: str, steps: int = 100) -> Inverter:
        if name == "optimize":
            lo, hi = OPTIMIZE_STEPS
            if not lo <= steps <= hi:
                raise StudioError(f"optimisation steps must be in [{lo}, {hi}], got {steps}")
            if self.optimize is None:
                self.optimize = make_inverter("optimize", generator=self.generator, steps=steps, progress=False)
            self.optimize.steps = steps  # read by each invert(); one inverter keeps its loaded perceptual network
            return self.optimize
        if name not in self.inverters:
            raise StudioError(f"unknown inverter {name!r} (available: {', '.join(self.info()['inverters'])})")
        return self.inverters[name]


@functools.lru_cache(maxsize=64)
def _example(kind: str, seed: int, res: int) -> torch.Tensor:
    # Cached: the Local edit tab sends its two example faces with every brush stroke.
    from stylebridge.data import synthfaces as sf

    r = sf.render_seeds([seed], res, outputs=("image", "seg", "sketch"))
    if kind == "sketch":
        return r["sketch"][0].expand(3, -1, -1).clone()
    if kind == "photo":
        return sf.photo_look(r["image"], r["seg"], r["attrs"], seed=seed)[0]
    return r["image"][0]


def _layers_text(rows: Iterable[int] | None, num_ws: int) -> str:
    rows = list(rows) if rows is not None else list(range(num_ws))
    if rows and rows == list(range(rows[0], rows[-1] + 1)):
        return f"{rows[0]}-{rows[-1]}" if len(rows) > 1 else str(rows[0])
    return ",".join(map(str, rows))


