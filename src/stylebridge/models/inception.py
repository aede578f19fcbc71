"""Inception-v3 feature extractor for the Fréchet Inception Distance, from a weights file the user supplies.

Two weight files are supported, both loaded strictly (every key and shape checked) and never downloaded:

* ``"fid"`` — pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``: the TensorFlow Inception graph of the
  original FID code (``inception-2015-12-05``) ported to PyTorch. Its classifier has 1008 outputs and four blocks
  differ from the textbook network: the pooling branch of Mixed_5b–5d, Mixed_6b–6e and Mixed_7b averages over the
  valid pixels only (TF's ``avg_pool`` ignores padding: ``count_include_pad=False``), and Mixed_7c max-pools there
  (3×3, stride 1, pad 1). Only this network gives the *standard* FID that papers report.
* ``"torchvision"`` — torchvision's ``inception_v3_google-0cc3c7bd.pth`` (1000 ImageNet classes, standard blocks,
  AuxLogits included). Its features are "Inception-v3 (torchvision weights)"; distances computed with them are
  not comparable to published FID numbers, and `InceptionFeatures.name` says so.

Parameter and buffer names equal torchvision's ``Inception3`` (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch1x1.bn.running_mean``, ``fc.weight``, ``AuxLogits.conv0...``), so both files' state dicts load
as they are. Preprocessing follows pytorch-fid: bilinear resize to 299×299 (``align_corners=False``, no
antialiasing), network input in [-1, 1]; the feature is the 2048-d output of the final adaptive average pool.

Images are float tensors [N, 3, H, W] in [-1, 1] (the toolkit's convention), any H and W.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from stylebridge.core.native import CheckpointError, PretrainedModel, check_state_dict
from stylebridge.core.safe_pickle import load_torch_file

__all__ = ["FEATURE_DIM", "INPUT_SIZE", "OFFICIAL_FILES", "VARIANTS", "InceptionConfig", "InceptionFeatures"]

VARIANTS = ("fid", "torchvision")
FEATURE_DIM = 2048  # channels of Mixed_7c = length of the pooled feature vector
INPUT_SIZE = 299  # the resolution both weight files were trained/ported at; pytorch-fid resizes every input to it
# Classifier size that identifies each file: TF's 2015 graph has 1001 ImageNet classes + 7 unused padding outputs.
NUM_CLASSES = {"fid": 1008, "torchvision": 1000}
# The hex in the official file names is the start of the file's SHA-256 (torch.hub's check_hash convention).
OFFICIAL_FILES = {
    "fid": ("pt_inception-2015-12-05-6726825d.pth", "6726825d"),
    "torchvision": ("inception_v3_google-0cc3c7bd.pth", "0cc3c7bd"),
}

PoolMode = Literal["avg", "avg_valid", "max"]


@dataclass(frozen=True)
class InceptionConfig:
    """Which Inception-v3 this is; everything else about the architecture is fixed."""

    # "fid": pytorch-fid's port of the TF FID graph (FID pooling variants); "torchvision": the standard blocks.
    variant: str = "fid"
    # Outputs of ``fc`` (1008 for the FID file, 1000 for torchvision's); kept only so the file loads strictly.
    num_classes: int = 1008
    # Whether the file carries torchvision's auxiliary classifier (``AuxLogits.*``); loaded, never evaluated.
    aux_logits: bool = False

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {self.num_classes}")

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------------------------
# blocks (torchvision's module and parameter names; the pooling of the branch_pool path is a constructor argument)


def _pool3x3(x: torch.Tensor, mode: PoolMode) -> torch.Tensor:
    """3×3 stride-1 pooling with 1 px padding, as used before the ``branch_pool`` 1×1 conv. [N,C,H,W] → same."""
    if mode == "max":
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    # TF's avg_pool divides by the number of *valid* pixels in the window (4 at a corner, 6 on an edge);
    # torch's default counts the zero padding too. Only border pixels differ.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=(mode == "avg"))


class BasicConv2d(nn.Module):
    """Conv (no bias) → BatchNorm (eps 1e-3, TF's value) → ReLU. Keys: ``conv.weight``, ``bn.*``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class InceptionA(nn.Module):
    """35×35 block: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | pool→1×1. [N, C, 35, 35] → [N, 224 + pool_features, 35, 35]."""

    def __init__(self, in_channels: int, pool_features: int, pool: PoolMode = "avg") -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_pool3x3(x, self.pool))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35→17: 3×3/2 | 1×1→3×3→3×3/2 | maxpool/2. [N, C, 35, 35] → [N, C + 480, 17, 17]."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """17×17 block with factorised 7×7 convs (1×7 / 7×1). [N, 768, 17, 17] → [N, 768, 17, 17]."""

    def __init__(self, in_channels: int, channels_7x7: int, pool: PoolMode = "avg") -> None:
        super().__init__()
        c7 = channels_7x7
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = conv(bd)
        bp = self.branch_pool(_pool3x3(x, self.pool))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17→8: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | maxpool/2. [N, 768, 17, 17] → [N, 1280, 8, 8]."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8×8 block with split 1×3 / 3×1 outputs. [N, C, 8, 8] → [N, 2048, 8, 8]."""

    def __init__(self, in_channels: int, pool: PoolMode = "avg") -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = self.branch_pool(_pool3x3(x, self.pool))
        return torch.cat([b1, b3, bd, bp], 1)


class InceptionAux(nn.Module):
    """torchvision's auxiliary classifier on Mixed_6e. Held only so its file loads strictly; never evaluated."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, 1)
        self.conv1 = BasicConv2d(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)


# ------------------------------------------------------------------------------------------------------------------
# the network


class InceptionFeatures(PretrainedModel):
    """Frozen Inception-v3: images [N, 3, H, W] in [-1, 1] → pool features [N, 2048] (float32).

    Build it from an official weights file with `from_file`; `name` states which network it is, for reports.
    The module is always in eval mode (``train()`` is a no-op) and never needs gradients.
    """

    model_type = "inception-v3"
    config_class = InceptionConfig
    file_sha256: str | None = None  # set by `from_file`: SHA-256 of the weights file
    official_file: bool | None = None  # set by `from_file`: digest starts with the official file name's hash

    def __init__(self, config: InceptionConfig) -> None:
        super().__init__()
        self.config = c = config
        fid = c.variant == "fid"
        # pytorch-fid's FIDInceptionA / C / E_1 pool over valid pixels only; FIDInceptionE_2 max-pools.
        pool_a: PoolMode = "avg_valid" if fid else "avg"
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32, pool=pool_a)
        self.Mixed_5c = InceptionA(256, pool_features=64, pool=pool_a)
        self.Mixed_5d = InceptionA(288, pool_features=64, pool=pool_a)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128, pool=pool_a)
        self.Mixed_6c = InceptionC(768, channels_7x7=160, pool=pool_a)
        self.Mixed_6d = InceptionC(768, channels_7x7=160, pool=pool_a)
        self.Mixed_6e = InceptionC(768, channels_7x7=192, pool=pool_a)
        # Registered where torchvision registers it, so state_dict() lists keys in the official order.
        self.AuxLogits = InceptionAux(768, c.num_classes) if c.aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool=pool_a)
        self.Mixed_7c = InceptionE(2048, pool="max" if fid else "avg")
        self.fc = nn.Linear(FEATURE_DIM, c.num_classes)
        self.requires_grad_(False)
        self.eval()

    # -- identity for reports ------------------------------------------------------------------------------------
    @property
    def variant(self) -> str:
        """``"fid"`` or ``"torchvision"``: which block structure (and, normally, which weight file) this is."""
        return self.config.variant

    @property
    def name(self) -> str:
        """What to call these features in a report; says "standard FID" only for the FID network and its file."""
        c = self.config
        if c.variant == "fid" and c.num_classes == NUM_CLASSES["fid"]:
            return "Inception-v3 FID network (pytorch-fid port of TF inception-2015-12-05; standard FID)"
        if c.variant == "torchvision" and c.num_classes == NUM_CLASSES["torchvision"]:
            return "Inception-v3 (torchvision ImageNet weights; not standard FID)"
        blocks = "FID blocks" if c.variant == "fid" else "torchvision blocks"
        return f"Inception-v3 ({blocks} with a {c.num_classes}-class weight file; not standard FID)"

    # -- loading -------------------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike, variant: str | None = None) -> InceptionFeatures:
        """Load pytorch-fid's or torchvision's Inception-v3 weights file (a plain state dict) strictly.

        Args:
            path: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid) or ``inception_v3_google-0cc3c7bd.pth``
                (torchvision), or any state dict with the same keys. Read with the restricted unpickler.
            variant: ``"fid"`` or ``"torchvision"`` to override detection; by default a 1008-output ``fc`` means
                the FID network and a 1000-output one torchvision's.

        Returns:
            the model in eval mode on the CPU. ``file_sha256`` holds the file's digest and ``official_file``
            whether it starts with the hash in the official file name of the loaded variant.

        Raises:
            CheckpointError: the file is not a state dict, the variant cannot be told, or keys/shapes differ
                (one line naming the file, the missing and unexpected keys and the mismatched shapes).
        """
        if variant is not None and variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS} or None, got {variant!r}")
        src = str(path)
        state = load_torch_file(path)
        if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
            what = type(state).__name__ if not isinstance(state, dict) else f"dict with keys {sorted(state)[:8]}"
            raise CheckpointError(f"{src}: expected an Inception-v3 state dict of tensors "
                                  f"(pytorch-fid or torchvision weights file), got a {what}")
        state = dict(state)
        fc = state.get("fc.weight")
        num_classes = int(fc.shape[0]) if fc is not None and fc.ndim == 2 else None
        if variant is None:
            variant = {n: v for v, n in NUM_CLASSES.items()}.get(num_classes)  # type: ignore[arg-type]
            if variant is None:
                got = "no 'fc.weight'" if fc is None else f"'fc.weight' of shape {tuple(fc.shape)}"
                raise CheckpointError(f"{src}: cannot tell the Inception-v3 variant ({got}; expected 1008 outputs for "
                                      "pytorch-fid's FID network or 1000 for torchvision's); pass variant='fid' or "
                                      "'torchvision'")
        config = InceptionConfig(variant=variant, num_classes=num_classes or NUM_CLASSES[variant],
                                 aux_logits=any(k.startswith("AuxLogits.") for k in state))
        model = cls(config)
        _fill_num_batches_tracked(state, model)
        check_state_dict(model, state, src)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        model.file_sha256 = digest
        model.official_file = digest.startswith(OFFICIAL_FILES[variant][1])
        return model.eval()

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Always eval: BatchNorm must use the file's running statistics, even inside a module put in training."""
        return super().train(False)

    # -- forward -------------------------------------------------------------------------------------------------
    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """The network proper: [N, 3, S, S] network input (already resized, in [-1, 1]) → [N, 2048].

        ``S`` is 299 for standard features; any S >= 75 runs (the last grid is then smaller than 8×8).
        """
        x = self.Conv2d_1a_3x3(x)  # [N, 32, 149, 149]
        x = self.Conv2d_2a_3x3(x)  # [N, 32, 147, 147]
        x = self.Conv2d_2b_3x3(x)  # [N, 64, 147, 147]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N, 64, 73, 73]
        x = self.Conv2d_3b_1x1(x)  # [N, 80, 73, 73]
        x = self.Conv2d_4a_3x3(x)  # [N, 192, 71, 71]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N, 192, 35, 35]
        x = self.Mixed_5b(x)  # [N, 256, 35, 35]
        x = self.Mixed_5c(x)  # [N, 288, 35, 35]
        x = self.Mixed_5d(x)  # [N, 288, 35, 35]
        x = self.Mixed_6a(x)  # [N, 768, 17, 17]
        x = self.Mixed_6b(x)
        x = self.Mixed_6c(x)
        x = self.Mixed_6d(x)
        x = self.Mixed_6e(x)  # [N, 768, 17, 17]; AuxLogits would branch off here (training only)
        x = self.Mixed_7a(x)  # [N, 1280, 8, 8]
        x = self.Mixed_7b(x)  # [N, 2048, 8, 8]
        x = self.Mixed_7c(x)  # [N, 2048, 8, 8]
        return x.mean(dim=(2, 3))  # adaptive average pool to 1×1, flattened: [N, 2048]

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, H, W] in [-1, 1] → network input [N, 3, 299, 299] float32 in [-1, 1].

        pytorch-fid resizes [0, 1] images bilinearly and then maps them with ``2x - 1``; bilinear weights sum to
        one, so resizing our [-1, 1] images directly gives the same values. torchvision's weights want the same
        range: its ``transform_input`` turns ImageNet-normalised input back into exactly ``2x - 1``.
        Values are clamped to [-1, 1] because the reference path reads 8-bit image files, which cannot hold
        a generator's slight overshoot.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, H, W], got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"expected float images in [-1, 1], got dtype {images.dtype} (convert at the I/O edge)")
        x = images.float()
        if x.numel() and float(x.detach().abs().amax()) > 1.5:
            raise ValueError(f"images must be in [-1, 1], got values up to {float(x.abs().amax()):.3g} "
                             "(were they left in [0, 255]?)")
        x = x.clamp(-1, 1)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return x

    def features(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """Images [N, 3, H, W] in [-1, 1], any size → features [N, 2048] float32 on the images' device.

        Runs in chunks of ``batch_size`` on the model's device, without gradients, in float32 even inside an
        autocast region (reduced precision would shift FID statistics).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        device = next(self.parameters()).device
        out = []
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            for chunk in images.split(batch_size):
                x = self.prepare(chunk.to(device))
                out.append(self.pool_features(x).to(images.device))
        if not out:
            return images.new_zeros((0, FEATURE_DIM), dtype=torch.float32)
        return torch.cat(out)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as `features` (one chunk): [N, 3, H, W] in [-1, 1] → [N, 2048] float32."""
        return self.features(images, batch_size=max(1, images.shape[0]))

    def logits(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """Classifier outputs [N, num_classes] (1008 for the FID file, as the Inception Score uses them)."""
        with torch.no_grad():
            return self.fc(self.features(images, batch_size).to(self.fc.weight.device)).to(images.device)


def _fill_num_batches_tracked(state: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Accept files written before BatchNorm had ``num_batches_tracked`` (all such keys absent): add zeros.

    The counter only matters for training with ``momentum=None``; it never changes an eval-mode forward.
    A file with some but not all of them is malformed and is left for the strict check to report.
    """
    want = [k for k in model.state_dict() if k.endswith(".num_batches_tracked")]
    if not any(k in state for k in want):
        state.update({k: torch.zeros((), dtype=torch.long) for k in want})

