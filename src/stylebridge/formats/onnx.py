"""ONNX export of the toolkit's image models, checked against onnxruntime.

What each model becomes (the batch axis is dynamic by default, ``batch="dynamic"``, or fixed):

==========================  ====================================================  ==============================
model                       inputs                                                output
==========================  ====================================================  ==============================
pix2pixHD translators       ``images`` [N, C, R, R] in [-1, 1]                    ``output`` [N, 3, R, R]
(distilled edits, blends)
StyleGAN2 generator         ``w_plus`` [N, num_ws, w_dim] (a w broadcast to every  ``images`` [N, C, R, R]
                            row, or mixed styles)
pSp / e4e encoders          ``images`` [N, C, S, S] (S the encoder's input size)  ``w_plus`` [N, num_ws, w_dim]
                                                                                  (``latent_avg`` added)
activation-map translators  ``images`` [N, 3, S, S] and ``w_plus`` [N, num_ws,    ``output`` [N, C, R, R]
                            w_dim] (the styles: mean w, a seed's, an encoder's)
StyleMapGAN                 ``images`` [N, 3, R, R]                               ``output`` [N, 3, R, R]
                                                                                  (decode(encode(images)))
ReStyle (pSp / e4e)         ``images`` [N, C, S, S]                               ``w_plus`` [N, num_ws, w_dim]
                                                                                  (after ``config.n_iters`` steps)
==========================  ====================================================  ==============================

ReStyle's iterations are unrolled into one graph: encoder, residual, decode with the generator, pool, ``n_iters``
times (the last decode is left out: only the code is returned); the first step's average image is stored in the
file as a constant.

Generators run the modulated convolutions in their "shared" form (``ops.modulated_conv2d``: the styles scale the
activations, one convolution with the constant weight, the demodulation scales its output), so the file holds each
weight once and any batch size runs; the noise is the generator's stored constant noise (``noise_mode="const"``).

    path = export_onnx(stylebridge.load("synthfaces-64"), "g.onnx")
    check_onnx(model, path, batches=(1, 4))      # max |onnxruntime − torch| over random inputs, per batch

Needs the ``onnx`` extra (onnx, onnxruntime, onnxscript): ``pip install 'stylebridge[onnx]'``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from stylebridge.core.atomic import atomic_write
from stylebridge.models.actmap import ActivationMapTranslator
from stylebridge.models.encoder_base import StyleEncoderModel
from stylebridge.models.pix2pixhd import Pix2PixHDGenerator
from stylebridge.models.restyle import ReStyle
from stylebridge.models.stylegan2 import StyleGAN2Generator
from stylebridge.models.stylemapgan import StyleMapGAN

__all__ = ["EXPORTABLE", "OnnxPlan", "check_onnx", "export_onnx", "onnx_plan"]

EXPORTABLE = (Pix2PixHDGenerator, StyleGAN2Generator, StyleEncoderModel, ActivationMapTranslator, StyleMapGAN)
OPSET = 18
DEFAULT_SIZE = 512  # the side of official weights that do not record theirs (the paper's 512 px)


class _Synthesis(torch.nn.Module):
    """W+ → images, the exportable form of `StyleGAN2Generator.synthesize`."""

    def __init__(self, G: StyleGAN2Generator) -> None:
        super().__init__()
        self.G = G

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        return self.G.synthesize(w_plus, noise_mode="const", modconv="shared", channels_last=False)


class _Encode(torch.nn.Module):
    def __init__(self, model: StyleEncoderModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode(images)


class _Translate(torch.nn.Module):
    """images + W+ → images: the translator's encoder, then the generator's layers after its layer."""

    def __init__(self, model: ActivationMapTranslator) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, w_plus: torch.Tensor) -> torch.Tensor:
        # the encoder itself: `encode`'s input check reads a value (not traceable); the file's input is fixed-size
        act, skip = self.model.encoder(images, channels_last=False)
        return self.model.generator.synthesize_from(self.model.layer, act, w_plus, skip, noise_mode="const",
                                                    modconv="shared", channels_last=False)


class _ReStyleEncode(torch.nn.Module):
    """images → W+ through ``n_iters`` ReStyle steps, unrolled (`ReStyle.iterate` without the final decode)."""

    def __init__(self, model: ReStyle) -> None:
        super().__init__()
        self.model = model
        with torch.no_grad():
            self.register_buffer("average", model.average_image(1).detach().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        m = self.model
        w = m.latent_avg[None]
        y = self.average.expand(images.shape[0], -1, -1, -1)
        for k in range(m.config.n_iters):
            w = w + m.encoder(torch.cat([images, y], dim=1))
            if k + 1 < m.config.n_iters:
                y = m.pool(m.decoder.synthesize(w, noise_mode="const", modconv="shared", channels_last=False))
        return w


@dataclass
class OnnxPlan:
    """How one model is exported and checked (`onnx_plan`): the module to trace, its named inputs (shape without
    the batch axis), its output name, ``draw(n, generator)`` → a batch of inputs, and ``reference(*inputs)``, the
    torch output through the model's own API (what the file must reproduce; `benchmarks/onnx.py` times both)."""

    module: torch.nn.Module
    inputs: list[tuple[str, tuple[int, ...]]]
    output: str
    draw: Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]
    reference: Callable[..., torch.Tensor]


def _random_w_plus(G: StyleGAN2Generator, n: int, g: torch.Generator) -> torch.Tensor:
    """Mixed styles: a mapped z per W+ row, [n, num_ws, w_dim]."""
    z = torch.randn(n * G.num_ws, G.z_dim, generator=g)
    with torch.no_grad():
        return G.map(z).reshape(n, G.num_ws, G.w_dim)


def _images(n: int, c: int, size: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


def onnx_plan(m: torch.nn.Module) -> OnnxPlan:
    """The `OnnxPlan` of a model of `EXPORTABLE` (fp32, CPU, eval); ValueError for others."""
    if isinstance(m, Pix2PixHDGenerator):
        c, size = m.config.in_channels, _size(m)
        return OnnxPlan(m, [("images", (c, size, size))], "output", lambda n, g: (_images(n, c, size, g),), m)
    if isinstance(m, StyleGAN2Generator):
        return OnnxPlan(_Synthesis(m), [("w_plus", (m.num_ws, m.w_dim))], "images",
                     lambda n, g: (_random_w_plus(m, n, g),), lambda w: m.synthesize(w, noise_mode="const"))
    if isinstance(m, StyleMapGAN):
        size = m.config.generator.resolution
        return OnnxPlan(m, [("images", (3, size, size))], "output", lambda n, g: (_images(n, 3, size, g),),
                     m.reconstruct)
    if isinstance(m, ReStyle):
        c, size = m.config.encoder.image_channels, m.config.encoder.input_size
        return OnnxPlan(_ReStyleEncode(m), [("images", (c, size, size))], "w_plus",
                     lambda n, g: (_images(n, c, size, g),), m.encode)
    if isinstance(m, StyleEncoderModel):
        c, size = m.config.encoder.in_channels, m.config.encoder.input_size
        return OnnxPlan(_Encode(m), [("images", (c, size, size))], "w_plus",
                     lambda n, g: (_images(n, c, size, g),), m.encode)
    if isinstance(m, ActivationMapTranslator):
        G, size = m.generator, m.input_size
        return OnnxPlan(_Translate(m), [("images", (3, size, size)), ("w_plus", (G.num_ws, G.w_dim))], "output",
                     lambda n, g: (_images(n, 3, size, g), _random_w_plus(G, n, g)),
                     lambda x, w: m.synthesize(*m.encode(x), w))
    raise ValueError(f"ONNX export covers {', '.join(c.__name__ for c in EXPORTABLE)}; got {type(m).__name__}")


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ValueError(f"ONNX export needs the {module} package: pip install 'stylebridge[onnx]'")


def _size(model: torch.nn.Module) -> int:
    return int(getattr(model.config, "resolution", 0) or DEFAULT_SIZE)


def export_onnx(model: torch.nn.Module, out: str | os.PathLike, batch: int | str = "dynamic",
                opset: int = OPSET) -> Path:
    """Write ``model`` as an ONNX file at ``out`` (atomically) and return its path.

    Args:
        model: one of `EXPORTABLE` (module docstring: inputs and outputs); exported in fp32 on the CPU (a copy:
            ``model`` is untouched).
        batch: "dynamic" (any batch size) or a fixed batch size.
        opset: the ONNX opset.
    """
    if not isinstance(model, EXPORTABLE):
        raise ValueError(f"ONNX export covers {', '.join(c.__name__ for c in EXPORTABLE)}; got "
                         f"{type(model).__name__}")
    if batch != "dynamic" and not (isinstance(batch, int) and batch >= 1):
        raise ValueError(f"batch must be 'dynamic' or a positive integer, got {batch!r}")
    _require("onnx")
    _require("onnxscript")
    import copy

    m = copy.deepcopy(model).float().cpu().eval()
    plan = onnx_plan(m)
    n = 2 if batch == "dynamic" else int(batch)
    with torch.no_grad():
        example = plan.draw(n, torch.Generator().manual_seed(0))
    dim = torch.export.Dim("batch", min=1, max=1024)
    dynamic = tuple({0: dim} for _ in plan.inputs) if batch == "dynamic" else None
    out = Path(out)

    def write(tmp: Path) -> None:
        # the exporter reports its progress on stdout and warns about what it does not need: keep the CLI quiet
        loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]  # "Skipping …" lines
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                program = torch.onnx.export(plan.module, example, input_names=[k for k, _ in plan.inputs],
                                            output_names=[plan.output], dynamic_shapes=dynamic,
                                            opset_version=opset, dynamo=True, external_data=False)
                program.save(str(tmp))
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)

    try:
        atomic_write(out, write)
    except OSError as exc:
        raise ValueError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return out


@torch.no_grad()
def check_onnx(model: torch.nn.Module, path: str | os.PathLike, batches: Sequence[int] = (1, 4),
               seed: int = 0) -> dict[int, float]:
    """Run the ONNX file with onnxruntime and ``model`` with torch (fp32, CPU, through its own API) on the same
    random inputs (images in [-1, 1]; W+ of mapped random z); returns batch → max |difference|."""
    _require("onnxruntime")
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    m = model.float().cpu().eval()
    plan = onnx_plan(m)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for b in batches:
        inputs = plan.draw(b, g)
        ref = plan.reference(*inputs).float().numpy()
        got = sess.run(None, {k: x.numpy() for (k, _), x in zip(plan.inputs, inputs)})[0]
        out[b] = float(abs(got - ref).max())
    return out
