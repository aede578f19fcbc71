"""Build NVlabs stylegan2-ada-pytorch network snapshot pickles for tests, without any NVlabs code.

A real snapshot (``training/training_loop.py``) is written as::

    snapshot_data = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in [('G', G), ('D', D), ('G_ema', G_ema), ('augment_pipe', augment_pipe)]:
        module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        snapshot_data[name] = module
    pickle.dump(snapshot_data, f)

Every network class is decorated with ``torch_utils.persistence.persistent_class``, whose ``__reduce__`` turns
each instance (sub-modules included) into ``_reconstruct_persistent_obj(meta)`` with
``meta = dict(type='class', version=6, module_src=<source of the defining module>, class_name=..., state=...)``;
``state`` is what ``object.__reduce__`` gives for the module: ``torch.nn.Module.__getstate__()``, a copy of its
``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, hook dicts, ``training``, plain attributes, and the
``_init_args`` / ``_init_kwargs`` the decorator records). NVlabs' unpickler ``exec``s ``module_src``.

This module rebuilds that byte for byte in spirit:

* the classes below mirror the ``__init__`` of NVlabs' ``training/networks.py`` and ``training/augment.py``
  (same attribute names, order, numpy-float gains, buffers, parameters and sub-module nesting; no forward);
* they are real ``torch.nn.Module`` instances, so the pickled state holds exactly what this torch puts in a
  module's ``__dict__``;
* they are wrapped by a copy of NVlabs' ``persistent_class`` decorator whose reconstruct function is a stand-in
  registered, only while dumping, as ``torch_utils.persistence._reconstruct_persistent_obj`` (and a stand-in
  ``dnnlib.util.EasyDict``), so the pickle names exactly NVlabs' globals; the fake modules are removed again;
* ``module_src`` is a short stand-in source whose execution would write a marker file and raise.

Weights come from stylebridge models (rosinality names), mapped onto NVlabs names and shapes by
`nvlabs_generator_tensors` / `nvlabs_discriminator_tensors` (the inverse of ``generator_from_nvlabs`` /
``discriminator_from_nvlabs``).
"""

# The NVlabs mirrors keep NVlabs' signatures, mutable defaults included.
# ruff: noqa: B006

from __future__ import annotations

import contextlib
import copy
import math
import pickle
import shlex
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylebridge import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig, StyleGAN2Generator

__all__ = [
    "FAKE_MODULES",
    "PERSISTENCE_VERSION",
    "Snapshot",
    "Spec",
    "inspect_pickle",
    "make_discriminator",
    "make_generator",
    "make_payload",
    "nvlabs_discriminator_tensors",
    "nvlabs_generator_tensors",
    "write_snapshot",
]

PERSISTENCE_VERSION = 6  # torch_utils/persistence.py: _version = 6
FAKE_MODULES = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")

# training/augment.py: wavelets['sym2'] and wavelets['sym6'] (AugmentPipe's filter buffers are built from them).
_SYM2 = [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025]
_SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
         0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
         -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

# Stand-ins for the module sources torch_utils.persistence embeds. Executing either one (what NVlabs'
# _src_to_module does) writes the marker file and raises; stylebridge must never do it.
_NETWORKS_SRC = '''\
# Copyright (c) 2021, NVIDIA CORPORATION.  All rights reserved.
# Stand-in for stylegan2-ada-pytorch training/networks.py as embedded by torch_utils.persistence.
import pathlib
pathlib.Path({marker!r}).write_text("training/networks.py module_src was executed\\n")
raise RuntimeError("module_src embedded in the pickle was executed")

import numpy as np
import torch
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import conv2d_resample
from torch_utils.ops import upfirdn2d
from torch_utils.ops import bias_act
from torch_utils.ops import fma

@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module): ...
@persistence.persistent_class
class Conv2dLayer(torch.nn.Module): ...
@persistence.persistent_class
class MappingNetwork(torch.nn.Module): ...
@persistence.persistent_class
class SynthesisLayer(torch.nn.Module): ...
@persistence.persistent_class
class ToRGBLayer(torch.nn.Module): ...
@persistence.persistent_class
class SynthesisBlock(torch.nn.Module): ...
@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module): ...
@persistence.persistent_class
class Generator(torch.nn.Module): ...
@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module): ...
@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module): ...
@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module): ...
@persistence.persistent_class
class Discriminator(torch.nn.Module): ...
'''

_AUGMENT_SRC = '''\
# Copyright (c) 2021, NVIDIA CORPORATION.  All rights reserved.
# Stand-in for stylegan2-ada-pytorch training/augment.py as embedded by torch_utils.persistence.
import pathlib
pathlib.Path({marker!r}).write_text("training/augment.py module_src was executed\\n")
raise RuntimeError("module_src embedded in the pickle was executed")

import numpy as np
import scipy.signal
import torch
from torch_utils import persistence

@persistence.persistent_class
class AugmentPipe(torch.nn.Module): ...
'''


# ------------------------------------------------------------------------------------------------------------------
# Fake torch_utils.persistence / dnnlib.util, present only while building and dumping


@dataclass
class _Fakes:
    reconstruct: Callable[[Any], Any]
    EasyDict: type
    classes: dict[str, type] = field(default_factory=dict)  # class_name → persistent class (for deepcopy)


@contextlib.contextmanager
def _fake_nvlabs_modules() -> Iterator[_Fakes]:
    """Register stand-in ``torch_utils.persistence`` and ``dnnlib.util`` modules so pickle writes NVlabs' globals."""
    clash = [name for name in FAKE_MODULES if name in sys.modules]
    if clash:
        raise RuntimeError(f"refusing to shadow already imported modules {clash}")

    classes: dict[str, type] = {}

    def _reconstruct_persistent_obj(meta: Any) -> Any:
        # Used only by copy.deepcopy while building (NVlabs deep-copies G into G_ema and every network into the
        # snapshot). NVlabs' version exec()s meta['module_src'] to find the class; here the class is looked up.
        cls = classes[meta["class_name"]]
        obj = cls.__new__(cls)
        obj.__setstate__(dict(meta["state"]))
        return obj

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"

    class EasyDict(dict):
        """dnnlib.util.EasyDict: a dict with attribute access (same three methods as NVlabs')."""

        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

        def __setattr__(self, name: str, value: Any) -> None:
            self[name] = value

        def __delattr__(self, name: str) -> None:
            del self[name]

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"

    mods = {name: types.ModuleType(name) for name in FAKE_MODULES}
    mods["torch_utils"].persistence = mods["torch_utils.persistence"]
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mods["torch_utils.persistence"]._version = PERSISTENCE_VERSION
    mods["dnnlib"].util = mods["dnnlib.util"]
    mods["dnnlib.util"].EasyDict = EasyDict
    mods["dnnlib"].EasyDict = EasyDict
    sys.modules.update(mods)
    try:
        yield _Fakes(_reconstruct_persistent_obj, EasyDict, classes)
    finally:
        for name in FAKE_MODULES:
            sys.modules.pop(name, None)


def _persistent_class(orig_class: type, module_src: str, reconstruct: Callable) -> type:
    """torch_utils.persistence.persistent_class, with the stand-in reconstruct function."""

    class Decorator(orig_class):
        _orig_module_src = module_src
        _orig_class_name = orig_class.__name__

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)

        def __reduce__(self):
            fields = list(super().__reduce__())
            fields += [None] * max(3 - len(fields), 0)
            if fields[0] is not reconstruct:
                meta = dict(type="class", version=PERSISTENCE_VERSION, module_src=self._orig_module_src,
                            class_name=self._orig_class_name, state=fields[2])
                fields[0] = reconstruct  # reconstruct func
                fields[1] = (meta,)  # reconstruct args
                fields[2] = None  # state dict
            return tuple(fields)

    Decorator.__name__ = orig_class.__name__
    Decorator.__qualname__ = orig_class.__name__
    return Decorator


# ------------------------------------------------------------------------------------------------------------------
# Mirrors of NVlabs' network classes (constructors only)


def _setup_filter(f: Any) -> torch.Tensor:
    """torch_utils.ops.upfirdn2d.setup_filter with default arguments."""
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 1 and f.numel() < 8:  # separable = (f.ndim == 1 and f.numel() >= 8)
        f = f.ger(f)
    return f / f.sum()


_DEF_GAIN = {"linear": 1, "lrelu": np.sqrt(2)}  # bias_act.activation_funcs[...].def_gain


def _augment_fbank() -> np.ndarray:
    """AugmentPipe's Hz_fbank, as training/augment.py computes it (scipy.signal.convolve replaced row-wise)."""
    hz_lo = np.asarray(_SYM2)
    hz_hi = hz_lo * ((-1) ** np.arange(hz_lo.size))
    hz_lo2 = np.convolve(hz_lo, hz_lo[::-1]) / 2
    hz_hi2 = np.convolve(hz_hi, hz_hi[::-1]) / 2
    fbank = np.eye(4, 1)
    for i in range(1, fbank.shape[0]):
        fbank = np.dstack([fbank, np.zeros_like(fbank)]).reshape(fbank.shape[0], -1)[:, :-1]
        fbank = np.stack([np.convolve(row, hz_lo2) for row in fbank])
        fbank[i, (fbank.shape[1] - hz_hi2.size) // 2: (fbank.shape[1] + hz_hi2.size) // 2] += hz_hi2
    return fbank


def _nvlabs_classes(networks_src: str, augment_src: str, reconstruct: Callable) -> types.SimpleNamespace:
    """The NVlabs classes, decorated as persistent; constructors follow training/networks.py and augment.py."""

    def persistent(src: str) -> Callable[[type], type]:
        return lambda cls: _persistent_class(cls, src, reconstruct)

    @persistent(networks_src)
    class FullyConnectedLayer(torch.nn.Module):
        def __init__(self, in_features, out_features, bias=True, activation="linear", lr_multiplier=1, bias_init=0):
            super().__init__()
            self.activation = activation
            self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
            self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
            self.weight_gain = lr_multiplier / np.sqrt(in_features)
            self.bias_gain = lr_multiplier

    @persistent(networks_src)
    class Conv2dLayer(torch.nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear", up=1, down=1,
                     resample_filter=[1, 3, 3, 1], conv_clamp=None, channels_last=False, trainable=True):
            super().__init__()
            self.activation = activation
            self.up = up
            self.down = down
            self.conv_clamp = conv_clamp
            self.register_buffer("resample_filter", _setup_filter(resample_filter))
            self.padding = kernel_size // 2
            self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
            self.act_gain = _DEF_GAIN[activation]
            weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
            bias = torch.zeros([out_channels]) if bias else None
            if trainable:
                self.weight = torch.nn.Parameter(weight)
                self.bias = torch.nn.Parameter(bias) if bias is not None else None
            else:
                self.register_buffer("weight", weight)
                if bias is not None:
                    self.register_buffer("bias", bias)
                else:
                    self.bias = None

    @persistent(networks_src)
    class MappingNetwork(torch.nn.Module):
        def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None, layer_features=None,
                     activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.995):
            super().__init__()
            self.z_dim = z_dim
            self.c_dim = c_dim
            self.w_dim = w_dim
            self.num_ws = num_ws
            self.num_layers = num_layers
            self.w_avg_beta = w_avg_beta
            if embed_features is None:
                embed_features = w_dim
            if c_dim == 0:
                embed_features = 0
            if layer_features is None:
                layer_features = w_dim
            features_list = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
            if c_dim > 0:
                self.embed = FullyConnectedLayer(c_dim, embed_features)
            for idx in range(num_layers):
                layer = FullyConnectedLayer(features_list[idx], features_list[idx + 1], activation=activation,
                                            lr_multiplier=lr_multiplier)
                setattr(self, f"fc{idx}", layer)
            if num_ws is not None and w_avg_beta is not None:
                self.register_buffer("w_avg", torch.zeros([w_dim]))

    @persistent(networks_src)
    class SynthesisLayer(torch.nn.Module):
        def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1, use_noise=True,
                     activation="lrelu", resample_filter=[1, 3, 3, 1], conv_clamp=None, channels_last=False):
            super().__init__()
            self.resolution = resolution
            self.up = up
            self.use_noise = use_noise
            self.activation = activation
            self.conv_clamp = conv_clamp
            self.register_buffer("resample_filter", _setup_filter(resample_filter))
            self.padding = kernel_size // 2
            self.act_gain = _DEF_GAIN[activation]
            self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
            self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
            if use_noise:
                self.register_buffer("noise_const", torch.randn([resolution, resolution]))
                self.noise_strength = torch.nn.Parameter(torch.zeros([]))
            self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    @persistent(networks_src)
    class ToRGBLayer(torch.nn.Module):
        def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False):
            super().__init__()
            self.conv_clamp = conv_clamp
            self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
            self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
            self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
            self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

    @persistent(networks_src)
    class SynthesisBlock(torch.nn.Module):
        def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last, architecture="skip",
                     resample_filter=[1, 3, 3, 1], conv_clamp=None, use_fp16=False, fp16_channels_last=False,
                     **layer_kwargs):
            assert architecture in ["orig", "skip", "resnet"]
            super().__init__()
            self.in_channels = in_channels
            self.w_dim = w_dim
            self.resolution = resolution
            self.img_channels = img_channels
            self.is_last = is_last
            self.architecture = architecture
            self.use_fp16 = use_fp16
            self.channels_last = (use_fp16 and fp16_channels_last)
            self.register_buffer("resample_filter", _setup_filter(resample_filter))
            self.num_conv = 0
            self.num_torgb = 0
            if in_channels == 0:
                self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
            if in_channels != 0:
                self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                            resample_filter=resample_filter, conv_clamp=conv_clamp,
                                            channels_last=self.channels_last, **layer_kwargs)
                self.num_conv += 1
            self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                        conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
            self.num_conv += 1
            if is_last or architecture == "skip":
                self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last)
                self.num_torgb += 1
            if in_channels != 0 and architecture == "resnet":
                self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                        resample_filter=resample_filter, channels_last=self.channels_last)

    @persistent(networks_src)
    class SynthesisNetwork(torch.nn.Module):
        def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_fp16_res=0,
                     **block_kwargs):
            assert img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0
            super().__init__()
            self.w_dim = w_dim
            self.img_resolution = img_resolution
            self.img_resolution_log2 = int(np.log2(img_resolution))
            self.img_channels = img_channels
            self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
            channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
            fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
            self.num_ws = 0
            for res in self.block_resolutions:
                in_channels = channels_dict[res // 2] if res > 4 else 0
                out_channels = channels_dict[res]
                use_fp16 = (res >= fp16_resolution)
                is_last = (res == self.img_resolution)
                block = SynthesisBlock(in_channels, out_channels, w_dim=w_dim, resolution=res,
                                       img_channels=img_channels, is_last=is_last, use_fp16=use_fp16, **block_kwargs)
                self.num_ws += block.num_conv
                if is_last:
                    self.num_ws += block.num_torgb
                setattr(self, f"b{res}", block)

    @persistent(networks_src)
    class Generator(torch.nn.Module):
        def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={},
                     synthesis_kwargs={}):
            super().__init__()
            self.z_dim = z_dim
            self.c_dim = c_dim
            self.w_dim = w_dim
            self.img_resolution = img_resolution
            self.img_channels = img_channels
            self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                              **synthesis_kwargs)
            self.num_ws = self.synthesis.num_ws
            self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    @persistent(networks_src)
    class DiscriminatorBlock(torch.nn.Module):
        def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels, first_layer_idx,
                     architecture="resnet", activation="lrelu", resample_filter=[1, 3, 3, 1], conv_clamp=None,
                     use_fp16=False, fp16_channels_last=False, freeze_layers=0):
            assert in_channels in [0, tmp_channels]
            assert architecture in ["orig", "skip", "resnet"]
            super().__init__()
            self.in_channels = in_channels
            self.resolution = resolution
            self.img_channels = img_channels
            self.first_layer_idx = first_layer_idx
            self.architecture = architecture
            self.use_fp16 = use_fp16
            self.channels_last = (use_fp16 and fp16_channels_last)
            self.register_buffer("resample_filter", _setup_filter(resample_filter))
            self.num_layers = 0

            def trainable_gen():
                while True:
                    layer_idx = self.first_layer_idx + self.num_layers
                    trainable = (layer_idx >= freeze_layers)
                    self.num_layers += 1
                    yield trainable

            trainable_iter = trainable_gen()
            if in_channels == 0 or architecture == "skip":
                self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                           trainable=next(trainable_iter), conv_clamp=conv_clamp,
                                           channels_last=self.channels_last)
            self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                     trainable=next(trainable_iter), conv_clamp=conv_clamp,
                                     channels_last=self.channels_last)
            self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                     trainable=next(trainable_iter), resample_filter=resample_filter,
                                     conv_clamp=conv_clamp, channels_last=self.channels_last)
            if architecture == "resnet":
                self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                        trainable=next(trainable_iter), resample_filter=resample_filter,
                                        channels_last=self.channels_last)

    @persistent(networks_src)
    class MinibatchStdLayer(torch.nn.Module):
        def __init__(self, group_size, num_channels=1):
            super().__init__()
            self.group_size = group_size
            self.num_channels = num_channels

    @persistent(networks_src)
    class DiscriminatorEpilogue(torch.nn.Module):
        def __init__(self, in_channels, cmap_dim, resolution, img_channels, architecture="resnet",
                     mbstd_group_size=4, mbstd_num_channels=1, activation="lrelu", conv_clamp=None):
            assert architecture in ["orig", "skip", "resnet"]
            super().__init__()
            self.in_channels = in_channels
            self.cmap_dim = cmap_dim
            self.resolution = resolution
            self.img_channels = img_channels
            self.architecture = architecture
            if architecture == "skip":
                self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
            self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels) \
                if mbstd_num_channels > 0 else None
            self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                    activation=activation, conv_clamp=conv_clamp)
            self.fc = FullyConnectedLayer(in_channels * (resolution ** 2), in_channels, activation=activation)
            self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    @persistent(networks_src)
    class Discriminator(torch.nn.Module):
        def __init__(self, c_dim, img_resolution, img_channels, architecture="resnet", channel_base=32768,
                     channel_max=512, num_fp16_res=0, conv_clamp=None, cmap_dim=None, block_kwargs={},
                     mapping_kwargs={}, epilogue_kwargs={}):
            super().__init__()
            self.c_dim = c_dim
            self.img_resolution = img_resolution
            self.img_resolution_log2 = int(np.log2(img_resolution))
            self.img_channels = img_channels
            self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
            channels_dict = {res: min(channel_base // res, channel_max) for res in [*self.block_resolutions, 4]}
            fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
            if cmap_dim is None:
                cmap_dim = channels_dict[4]
            if c_dim == 0:
                cmap_dim = 0
            common_kwargs = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
            cur_layer_idx = 0
            for res in self.block_resolutions:
                in_channels = channels_dict[res] if res < img_resolution else 0
                tmp_channels = channels_dict[res]
                out_channels = channels_dict[res // 2]
                use_fp16 = (res >= fp16_resolution)
                block = DiscriminatorBlock(in_channels, tmp_channels, out_channels, resolution=res,
                                           first_layer_idx=cur_layer_idx, use_fp16=use_fp16, **block_kwargs,
                                           **common_kwargs)
                setattr(self, f"b{res}", block)
                cur_layer_idx += block.num_layers
            if c_dim > 0:
                self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                              **mapping_kwargs)
            self.b4 = DiscriminatorEpilogue(channels_dict[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs,
                                            **common_kwargs)

    @persistent(augment_src)
    class AugmentPipe(torch.nn.Module):
        def __init__(self, xflip=0, rotate90=0, xint=0, xint_max=0.125, scale=0, rotate=0, aniso=0, xfrac=0,
                     scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125, brightness=0, contrast=0,
                     lumaflip=0, hue=0, saturation=0, brightness_std=0.2, contrast_std=0.5, hue_max=1,
                     saturation_std=1, imgfilter=0, imgfilter_bands=[1, 1, 1, 1], imgfilter_std=1, noise=0, cutout=0,
                     noise_std=0.1, cutout_size=0.5):
            super().__init__()
            self.register_buffer("p", torch.ones([]))
            self.xflip = float(xflip)
            self.rotate90 = float(rotate90)
            self.xint = float(xint)
            self.xint_max = float(xint_max)
            self.scale = float(scale)
            self.rotate = float(rotate)
            self.aniso = float(aniso)
            self.xfrac = float(xfrac)
            self.scale_std = float(scale_std)
            self.rotate_max = float(rotate_max)
            self.aniso_std = float(aniso_std)
            self.xfrac_std = float(xfrac_std)
            self.brightness = float(brightness)
            self.contrast = float(contrast)
            self.lumaflip = float(lumaflip)
            self.hue = float(hue)
            self.saturation = float(saturation)
            self.brightness_std = float(brightness_std)
            self.contrast_std = float(contrast_std)
            self.hue_max = float(hue_max)
            self.saturation_std = float(saturation_std)
            self.imgfilter = float(imgfilter)
            self.imgfilter_bands = list(imgfilter_bands)
            self.imgfilter_std = float(imgfilter_std)
            self.noise = float(noise)
            self.cutout = float(cutout)
            self.noise_std = float(noise_std)
            self.cutout_size = float(cutout_size)
            self.register_buffer("Hz_geom", _setup_filter(_SYM6))
            self.register_buffer("Hz_fbank", torch.as_tensor(_augment_fbank(), dtype=torch.float32))

    return types.SimpleNamespace(**{c.__name__: c for c in (
        FullyConnectedLayer, Conv2dLayer, MappingNetwork, SynthesisLayer, ToRGBLayer, SynthesisBlock,
        SynthesisNetwork, Generator, DiscriminatorBlock, MinibatchStdLayer, DiscriminatorEpilogue, Discriminator,
        AugmentPipe)})


# ------------------------------------------------------------------------------------------------------------------
# Architecture spec and stylebridge source models


@dataclass(frozen=True)
class Spec:
    """The NVlabs hyper-parameters of a snapshot (train.py's G_kwargs / D_kwargs / common_kwargs)."""

    resolution: int = 32
    z_dim: int = 32
    w_dim: int = 32
    mapping_layers: int = 2  # mapping_kwargs.num_layers (train.py cfg 'auto' uses map=2)
    channel_base: int = 256  # channels = min(channel_base // res, channel_max): 16, 16, 16, 8 at 4..32 px
    channel_max: int = 16
    conv_clamp: int | None = None  # 256 in train.py unless --fp32
    num_fp16_res: int = 4
    mbstd_group_size: int = 2
    img_channels: int = 3
    c_dim: int = 0  # > 0: conditional networks (label embedding, D mapping network)
    g_architecture: str = "skip"
    d_architecture: str = "resnet"
    lr_multiplier: float = 0.01

    def channels(self) -> dict[int, int]:
        res = [2 ** i for i in range(2, int(math.log2(self.resolution)) + 1)]
        return {r: min(self.channel_base // r, self.channel_max) for r in res}

    @property
    def supported(self) -> bool:
        return self.c_dim == 0 and self.g_architecture == "skip" and self.d_architecture == "resnet"

    def generator_config(self) -> StyleGAN2Config:
        return StyleGAN2Config(resolution=self.resolution, z_dim=self.z_dim, w_dim=self.w_dim,
                               mapping_layers=self.mapping_layers, channels=tuple(self.channels().values()),
                               lr_multiplier=self.lr_multiplier, img_channels=self.img_channels,
                               conv_clamp=None if self.conv_clamp is None else float(self.conv_clamp))

    def discriminator_config(self) -> StyleGAN2DiscriminatorConfig:
        return StyleGAN2DiscriminatorConfig(resolution=self.resolution, channels=tuple(self.channels().values()),
                                            img_channels=self.img_channels, mbstd_group_size=self.mbstd_group_size,
                                            conv_clamp=None if self.conv_clamp is None else float(self.conv_clamp))


def _perturb(model: torch.nn.Module, names: tuple[str, ...], scale: float = 0.3) -> None:
    """Give zero/one-initialised biases and noise strengths random values so a wrong mapping shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(n in name for n in names):
                p.add_(torch.randn_like(p) * scale)


def make_generator(spec: Spec, seed: int = 0) -> StyleGAN2Generator:
    """A random stylebridge generator with the spec's architecture; biases, noise strengths and w_avg non-zero."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = StyleGAN2Generator(spec.generator_config())
        _perturb(g, ("bias", "noise.weight"))
        with torch.no_grad():
            g.w_avg.copy_(torch.randn_like(g.w_avg))
    return g.eval()


def make_discriminator(spec: Spec, seed: int = 1) -> StyleGAN2Discriminator:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        d = StyleGAN2Discriminator(spec.discriminator_config())
        _perturb(d, ("bias",))
    return d.eval()


def nvlabs_generator_tensors(g: StyleGAN2Generator) -> dict[str, torch.Tensor]:
    """stylebridge (rosinality-named) generator weights → NVlabs ``Generator`` state-dict names and shapes."""
    sd = {k: v.detach().clone() for k, v in g.state_dict().items()}
    cfg = g.config
    out: dict[str, torch.Tensor] = {}
    for i in range(cfg.mapping_layers):
        out[f"mapping.fc{i}.weight"] = sd.pop(f"style.{i + 1}.weight")
        out[f"mapping.fc{i}.bias"] = sd.pop(f"style.{i + 1}.bias")
    out["mapping.w_avg"] = sd.pop("w_avg")
    out["synthesis.b4.const"] = sd.pop("input.input")[0]  # [1,C,4,4] → [C,4,4]

    def layer(nv: str, ours: str, noise_idx: int) -> None:
        out[f"{nv}.weight"] = sd.pop(f"{ours}.conv.weight")[0]  # [1,O,I,k,k] → [O,I,k,k]
        out[f"{nv}.affine.weight"] = sd.pop(f"{ours}.conv.modulation.weight")
        out[f"{nv}.affine.bias"] = sd.pop(f"{ours}.conv.modulation.bias")
        out[f"{nv}.noise_strength"] = sd.pop(f"{ours}.noise.weight").reshape([])  # [1] → []
        out[f"{nv}.bias"] = sd.pop(f"{ours}.activate.bias")
        out[f"{nv}.noise_const"] = sd.pop(f"noises.noise_{noise_idx}")[0, 0]  # [1,1,r,r] → [r,r]

    def torgb(nv: str, ours: str) -> None:
        out[f"{nv}.weight"] = sd.pop(f"{ours}.conv.weight")[0]
        out[f"{nv}.affine.weight"] = sd.pop(f"{ours}.conv.modulation.weight")
        out[f"{nv}.affine.bias"] = sd.pop(f"{ours}.conv.modulation.bias")
        out[f"{nv}.bias"] = sd.pop(f"{ours}.bias").reshape(-1)  # [1,3,1,1] → [3]

    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    resolutions = [2 ** i for i in range(3, int(math.log2(cfg.resolution)) + 1)]
    for k, r in enumerate(resolutions):
        layer(f"synthesis.b{r}.conv0", f"convs.{2 * k}", 2 * k + 1)
        layer(f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        torgb(f"synthesis.b{r}.torgb", f"to_rgbs.{k}")
    if sd:
        raise AssertionError(f"generator tensors left unmapped: {sorted(sd)}")
    return out


def nvlabs_discriminator_tensors(d: StyleGAN2Discriminator) -> dict[str, torch.Tensor]:
    """stylebridge (rosinality-named) discriminator weights → NVlabs ``Discriminator`` (resnet) names."""
    sd = {k: v.detach().clone() for k, v in d.state_dict().items()}
    res = d.config.resolution
    out: dict[str, torch.Tensor] = {
        f"b{res}.fromrgb.weight": sd.pop("convs.0.0.weight"),
        f"b{res}.fromrgb.bias": sd.pop("convs.0.1.bias"),
    }
    resolutions = [2 ** i for i in range(int(math.log2(res)), 2, -1)]  # res, res/2, ..., 8
    for j, r in enumerate(resolutions, start=1):
        out[f"b{r}.conv0.weight"] = sd.pop(f"convs.{j}.conv1.0.weight")
        out[f"b{r}.conv0.bias"] = sd.pop(f"convs.{j}.conv1.1.bias")
        out[f"b{r}.conv1.weight"] = sd.pop(f"convs.{j}.conv2.1.weight")
        out[f"b{r}.conv1.bias"] = sd.pop(f"convs.{j}.conv2.2.bias")
        out[f"b{r}.skip.weight"] = sd.pop(f"convs.{j}.skip.1.weight")
    out["b4.conv.weight"] = sd.pop("final_conv.0.weight")
    out["b4.conv.bias"] = sd.pop("final_conv.1.bias")
    for i, name in enumerate(("fc", "out")):
        out[f"b4.{name}.weight"] = sd.pop(f"final_linear.{i}.weight")
        out[f"b4.{name}.bias"] = sd.pop(f"final_linear.{i}.bias")
    if sd:
        raise AssertionError(f"discriminator tensors left unmapped: {sorted(sd)}")
    return out


def _copy_into(net: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Like NVlabs' misc.copy_params_and_buffers, but every given tensor must exist with the same shape, and only
    resample filters may be left at their constructor values."""
    own = net.state_dict()
    unexpected = sorted(set(tensors) - set(own))
    untouched = sorted(k for k in set(own) - set(tensors) if not k.endswith("resample_filter"))
    shapes = [f"{k}: {tuple(v.shape)} vs NVlabs {tuple(own[k].shape)}"
              for k, v in tensors.items() if k in own and v.shape != own[k].shape]
    if unexpected or untouched or shapes:
        raise AssertionError(f"{what}: tensors do not fit the NVlabs network: unexpected {unexpected}, "
                             f"not provided {untouched}, shapes {shapes}")
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v)


# ------------------------------------------------------------------------------------------------------------------
# Malicious payloads


class _Reduce:
    """An object whose unpickling calls ``func(*args)``: what a malicious pickle smuggles in."""

    def __init__(self, func: Callable, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def make_payload(kind: str, marker: str | Path) -> tuple[_Reduce, str]:
    """(payload object, dotted name of the global the pickle will ask for); running it creates ``marker``.

    kinds: 'os.system', 'builtins.eval', 'subprocess.Popen'.
    """
    import os
    import subprocess

    code = f"open({str(marker)!r}, 'w').close()"
    if kind == "os.system":
        return _Reduce(os.system, shlex.join([sys.executable, "-c", code])), f"{os.system.__module__}.system"
    if kind == "builtins.eval":
        return _Reduce(eval, code), "builtins.eval"
    if kind == "subprocess.Popen":
        return _Reduce(subprocess.Popen, [sys.executable, "-c", code]), "subprocess.Popen"
    raise ValueError(f"unknown payload kind {kind!r}")


# ------------------------------------------------------------------------------------------------------------------
# Snapshot writer


@dataclass
class Snapshot:
    """What `write_snapshot` wrote: the file, the marker its module_src would create, and the source networks."""

    path: Path
    marker: Path
    spec: Spec
    sources: dict[str, torch.nn.Module] = field(default_factory=dict)  # 'G', 'D', 'G_ema' stylebridge models
    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # NVlabs-named state per network
    protocol: int = pickle.DEFAULT_PROTOCOL


def write_snapshot(
    path: str | Path,
    spec: Spec = Spec(),
    *,
    G_ema: StyleGAN2Generator | None = None,
    G: StyleGAN2Generator | None = None,
    D: StyleGAN2Discriminator | None = None,
    marker: str | Path | None = None,
    protocol: int = pickle.DEFAULT_PROTOCOL,
    payload: Any = None,
    augment_p: float = 0.25,
) -> Snapshot:
    """Write an NVlabs stylegan2-ada-pytorch ``network-snapshot-*.pkl`` for ``spec`` to ``path``.

    For a supported spec (unconditional, skip G, resnet D), missing source networks are random stylebridge
    models (G_ema and G differ) whose weights are copied into the NVlabs networks; otherwise the NVlabs networks
    keep their own random initialisation. ``payload`` (any picklable object) is planted in
    ``G_ema.synthesis.b4``'s state. ``marker`` (default: next to ``path``) is the file the embedded module_src
    would create if anything executed it.
    """
    path = Path(path)
    marker = Path(marker) if marker is not None else path.with_name(path.name + ".MODULE_SRC_EXECUTED")
    sources: dict[str, torch.nn.Module] = {}
    if spec.supported:
        sources["G_ema"] = G_ema if G_ema is not None else make_generator(spec, seed=0)
        sources["G"] = G if G is not None else make_generator(spec, seed=10)
        sources["D"] = D if D is not None else make_discriminator(spec, seed=1)
    elif G_ema is not None or G is not None or D is not None:
        raise ValueError("source networks can only be given for a supported (unconditional skip/resnet) spec")
    tensors: dict[str, dict[str, torch.Tensor]] = {}

    with _fake_nvlabs_modules() as fakes, torch.random.fork_rng():
        torch.manual_seed(1234)
        nv = _nvlabs_classes(_NETWORKS_SRC.format(marker=str(marker)), _AUGMENT_SRC.format(marker=str(marker)),
                             fakes.reconstruct)
        fakes.classes.update(vars(nv))
        EasyDict = fakes.EasyDict
        # train.py: G_kwargs / D_kwargs / augment_kwargs ('bgc'); training_loop.py: common_kwargs.
        synthesis_kwargs = EasyDict(channel_base=spec.channel_base, channel_max=spec.channel_max,
                                    num_fp16_res=spec.num_fp16_res, conv_clamp=spec.conv_clamp)
        if spec.g_architecture != "skip":
            synthesis_kwargs.architecture = spec.g_architecture
        G_kwargs = EasyDict(z_dim=spec.z_dim, w_dim=spec.w_dim, mapping_kwargs=EasyDict(num_layers=spec.mapping_layers),
                            synthesis_kwargs=synthesis_kwargs)
        if spec.lr_multiplier != 0.01:
            G_kwargs.mapping_kwargs.lr_multiplier = spec.lr_multiplier
        D_kwargs = EasyDict(block_kwargs=EasyDict(), mapping_kwargs=EasyDict(),
                            epilogue_kwargs=EasyDict(mbstd_group_size=spec.mbstd_group_size),
                            channel_base=spec.channel_base, channel_max=spec.channel_max,
                            num_fp16_res=spec.num_fp16_res, conv_clamp=spec.conv_clamp)
        if spec.d_architecture != "resnet":
            D_kwargs.architecture = spec.d_architecture
        augment_kwargs = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1,
                              contrast=1, lumaflip=1, hue=1, saturation=1)
        common_kwargs = dict(c_dim=spec.c_dim, img_resolution=spec.resolution, img_channels=spec.img_channels)
        training_set_kwargs = EasyDict(class_name="training.dataset.ImageFolderDataset", path="/data/tiny.zip",
                                       use_labels=spec.c_dim > 0, max_size=1000, xflip=True,
                                       resolution=spec.resolution)

        nets = {
            "G": nv.Generator(**G_kwargs, **common_kwargs).train().requires_grad_(False),
            "D": nv.Discriminator(**D_kwargs, **common_kwargs).train().requires_grad_(False),
        }
        nets["G_ema"] = copy.deepcopy(nets["G"]).eval()
        augment_pipe = nv.AugmentPipe(**augment_kwargs).train().requires_grad_(False)
        augment_pipe.p.copy_(torch.as_tensor(augment_p))
        for name, src in sources.items():
            if isinstance(src, StyleGAN2Generator):
                tensors[name] = nvlabs_generator_tensors(src)
            else:
                tensors[name] = nvlabs_discriminator_tensors(src)
            _copy_into(nets[name], tensors[name], f"{path}[{name}]")
        snapshot_data = dict(training_set_kwargs=dict(training_set_kwargs))
        for name, module in [("G", nets["G"]), ("D", nets["D"]), ("G_ema", nets["G_ema"]),
                             ("augment_pipe", augment_pipe)]:
            snapshot_data[name] = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        if payload is not None:  # planted after the deep copies: deepcopy would call the payload's callable
            snapshot_data["G_ema"].synthesis.b4.payload = payload
        with open(path, "wb") as f:
            pickle.dump(snapshot_data, f, protocol=protocol)
    return Snapshot(path=path, marker=marker, spec=spec, sources=sources, tensors=tensors, protocol=protocol)


# ------------------------------------------------------------------------------------------------------------------
# Inspecting a pickle without building anything


class _Inert(dict):
    """Returned for every global by `inspect_pickle`: accepts any arguments, items and state, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        pass


def inspect_pickle(path: str | Path) -> tuple[set[str], list[dict[str, Any]]]:
    """(dotted names of every global the pickle refers to, the ``meta`` dicts of its persistent objects).

    Nothing the pickle names is imported or called: every global resolves to an inert stand-in, except that
    ``torch_utils.persistence._reconstruct_persistent_obj`` records its ``meta`` argument.
    """
    globals_seen: set[str] = set()
    metas: list[dict[str, Any]] = []

    def record_meta(meta: Any) -> _Inert:
        metas.append(meta)
        return _Inert()

    class _Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            globals_seen.add(f"{module}.{name}")
            if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
                return record_meta
            return _Inert

    with open(path, "rb") as fh:
        _Recorder(fh).load()
    return globals_seen, metas
