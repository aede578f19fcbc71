"""ONNX export of image-to-image models, checked against onnxruntime.

Covers the pix2pixHD translators (the distilled one-pass editors and mixing / blending models): a fully
convolutional network, input ``images`` [N, C, R, R] in [-1, 1] → output ``output`` [N, 3, R, R] in (-1, 1), R the
side the model was trained on. The batch axis is dynamic by default (``batch="dynamic"``) or fixed.

    path = export_onnx(stylebridge.load("synthfaces-64-distill-smile"), "smile.onnx")
    check_onnx(model, path, batches=(1, 4))      # max |onnxruntime − torch| over random inputs, per batch

Needs the ``onnx`` extra (onnx, onnxruntime, onnxscript): ``pip install 'stylebridge[onnx]'``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from stylebridge.core.atomic import atomic_write
from stylebridge.models.pix2pixhd import Pix2PixHDGenerator

__all__ = ["EXPORTABLE", "check_onnx", "export_onnx"]

EXPORTABLE = (Pix2PixHDGenerator,)
OPSET = 18
DEFAULT_SIZE = 512  # the side of official weights that do not record theirs (the paper's 512 px)


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
        model: a pix2pixHD generator (`EXPORTABLE`); exported in fp32 on the CPU (a copy: ``model`` is untouched).
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
    size = _size(m)
    example = torch.zeros(2 if batch == "dynamic" else int(batch), m.config.in_channels, size, size)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=1024)},) if batch == "dynamic" else None
    out = Path(out)

    def write(tmp: Path) -> None:
        # the exporter reports its progress on stdout and warns about what it does not need: keep the CLI quiet
        quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed. Skipping …" lines
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                program = torch.onnx.export(m, (example,), input_names=["images"], output_names=["output"],
                                            dynamic_shapes=dynamic, opset_version=opset, dynamo=True,
                                            external_data=False)
                program.save(str(tmp))
        finally:
            quiet.setLevel(level)

    try:
        atomic_write(out, write)
    except OSError as exc:
        raise ValueError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return out


@torch.no_grad()
def check_onnx(model: torch.nn.Module, path: str | os.PathLike, batches: Sequence[int] = (1, 4),
               seed: int = 0) -> dict[int, float]:
    """Run the ONNX file with onnxruntime and ``model`` with torch (fp32, CPU) on the same random inputs in
    [-1, 1]; returns batch → max |difference|."""
    _require("onnxruntime")
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    m = model.float().cpu().eval()
    size = _size(m)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for b in batches:
        x = torch.rand(b, m.config.in_channels, size, size, generator=g) * 2 - 1
        ref = m(x).numpy()
        got = sess.run(None, {"images": x.numpy()})[0]
        out[b] = float(abs(got - ref).max())
    return out
