"""FFHQ-style face alignment (NVlabs ffhq-dataset, ``recreate_aligned_images``), optionally driven by dlib.

The recipe: an oriented square ("quad") from eye and mouth landmarks; shrink the photo when the quad is much
larger than the output; crop around the quad; reflect-pad with a blur fading to the median colour where the
quad leaves the photo; a QUAD transform to ``transform_size`` and an antialiased resize to ``output_size``.
Landmarks are the 68-point iBUG/dlib layout in pixel coordinates (x right, y down), an array [68, 2].
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from stylebridge.core.imageio import BadImageError

__all__ = ["AlignerUnavailableError", "Dlib68Aligner", "align_face", "ffhq_quad", "find_dlib68_model"]

DLIB68_MODEL = "shape_predictor_68_face_landmarks.dat"


class AlignerUnavailableError(ImportError):
    """dlib or its 68-point landmark model is not installed; the message says what to ``pip install``."""


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks as an array [68, 2], got shape {lm.shape}")
    if not np.isfinite(lm).all():
        raise ValueError("landmarks contain NaN or infinity")
    return lm


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop square for one face: 68 landmarks [68, 2] (x, y pixels) → corners [4, 2] float64.

    Corner order is the one ``Image.transform(QUAD)`` wants: upper-left, lower-left, lower-right, upper-right
    of the output. Exactly NVlabs' arithmetic: the square is centred a little below the eyes, rotated so the
    eyes are level, with half-side max(2 * eye distance, 1.8 * eye-to-mouth distance).
    """
    lm = _check_landmarks(landmarks)
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5  # outer mouth corners
    eye_to_mouth = mouth_avg - eye_avg

    # x: the output's horizontal axis, a blend of the eye line and the eye→mouth line turned by -90°.
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = np.hypot(*x)
    if norm == 0:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    x /= norm
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _gaussian_kernel(sigma: float) -> np.ndarray:
    # scipy.ndimage.gaussian_filter's kernel (truncate=4.0), so the padding looks as in FFHQ.
    radius = int(4.0 * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur_axis(img: np.ndarray, sigma: float, axis: int, chunk: int = 256) -> np.ndarray:
    """Gaussian blur of float32 [H, W, C] along axis 0 or 1, boundary 'reflect' as scipy (half-sample)."""
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    a = np.ascontiguousarray(np.moveaxis(img, axis, 0))  # blur along the first axis
    n = a.shape[0]
    # FFT convolution: the FFHQ blur kernel is wide (sigma = 2% of the face size, hundreds of taps at 1024 px),
    # where a direct convolution would take minutes. Processed in slices to bound memory.
    size = 1 << math.ceil(math.log2(n + 4 * r + 1))
    kf = np.fft.rfft(k, size)
    out = np.empty(a.shape, dtype=np.float32)  # C-contiguous, so the reshape below is a view, not a copy
    flat_in = a.reshape(n, -1)
    flat_out = out.reshape(n, -1)
    for s in range(0, flat_in.shape[1], chunk):
        block = np.pad(flat_in[:, s : s + chunk].astype(np.float64), ((r, r), (0, 0)), mode="symmetric")
        conv = np.fft.irfft(np.fft.rfft(block, size, axis=0) * kf[:, None], size, axis=0)
        flat_out[:, s : s + chunk] = conv[2 * r : 2 * r + n]
    return np.moveaxis(out, 0, axis)


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(img, [sigma, sigma, 0])`` for float32 [H, W, C], without scipy."""
    if sigma <= 1e-15:  # scipy skips an axis with sigma 0
        return img.copy()
    return _blur_axis(_blur_axis(img, sigma, 0), sigma, 1)


def align_face(img: Image.Image, landmarks: np.ndarray, output_size: int, transform_size: int | None = None,
               enable_padding: bool = True) -> Image.Image:
    """Crop one face as FFHQ did: RGB PIL image + landmarks [68, 2] → RGB image ``output_size`` square.

    ``transform_size``: size of the intermediate QUAD transform (FFHQ: 4096 for 1024 output); default
    4 * output_size, i.e. the same 4x supersampling. ``enable_padding``: blur-pad where the square leaves
    the photo (FFHQ default); without it those areas come out black.
    """
    if output_size < 1:
        raise ValueError(f"output_size must be positive, got {output_size}")
    transform_size = transform_size or 4 * output_size
    img = img.convert("RGB")
    quad = ffhq_quad(landmarks)
    qsize = np.hypot(*(quad[3] - quad[0]))  # side of the square = 2 * |x|

    # Shrink: a face much bigger than the output is first reduced with LANCZOS (FFHQ's ANTIALIAS).
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink

    # Crop to the square plus a border, so padding and transform work on a small image.
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (int(np.floor(min(quad[:, 0]))), int(np.floor(min(quad[:, 1]))),
            int(np.ceil(max(quad[:, 0]))), int(np.ceil(max(quad[:, 1]))))
    crop = (max(crop[0] - border, 0), max(crop[1] - border, 0),
            min(crop[2] + border, img.size[0]), min(crop[3] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    # Pad: reflect the photo where the square sticks out, blur it progressively and fade it to the median
    # colour, so the generator is never shown a hard mirrored edge.
    pad = (int(np.floor(min(quad[:, 0]))), int(np.floor(min(quad[:, 1]))),
           int(np.ceil(max(quad[:, 0]))), int(np.ceil(max(quad[:, 1]))))
    pad = (max(-pad[0] + border, 0), max(-pad[1] + border, 0),
           max(pad[2] - img.size[0] + border, 0), max(pad[3] - img.size[1] + border, 0))
    if enable_padding and max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = arr.shape
        y, x, _ = np.ogrid[:h, :w, :1]
        mask = np.maximum(1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
                          1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]))
        blur = qsize * 0.02
        arr += (_gaussian_blur(arr, blur) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad += pad[:2]

    # Transform: +0.5 because PIL's QUAD maps pixel corners while the landmarks address pixel centres.
    img = img.transform((transform_size, transform_size), Image.Transform.QUAD, tuple((quad + 0.5).flatten()),
                        Image.Resampling.BILINEAR)
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    elif output_size > transform_size:
        img = img.resize((output_size, output_size), Image.Resampling.BICUBIC)
    return img


def find_dlib68_model() -> Path | None:
    """Path of ``shape_predictor_68_face_landmarks.dat`` from the ``face-recognition-models`` package, or None.

    Found through the package's location only: importing it needs pkg_resources, gone from new setuptools.
    """
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "models" / DLIB68_MODEL
        if path.is_file():
            return path
    return None


class Dlib68Aligner:
    """Face detection (dlib HOG) + 68 landmarks (dlib shape predictor) + FFHQ alignment.

    Needs ``pip install dlib-bin face-recognition-models`` (dlib wheels and the landmark model); raises
    AlignerUnavailableError naming the missing one. ``predictor_path`` overrides the model file.
    ``detect_max_side``: faces are detected on a copy at most this many pixels on its longest side (HOG on a
    24 MP photo takes minutes); landmarks are then fitted on the full-resolution image.
    """

    def __init__(self, predictor_path: str | os.PathLike | None = None, upsample: int = 1,
                 detect_max_side: int = 1024) -> None:
        try:
            import dlib
        except ImportError as e:
            raise AlignerUnavailableError("face alignment needs dlib: pip install dlib-bin") from e
        path = Path(predictor_path) if predictor_path else find_dlib68_model()
        if path is None:
            raise AlignerUnavailableError(f"face alignment needs the dlib 68-point landmark model ({DLIB68_MODEL}): "
                                          "pip install face-recognition-models")
        if not path.is_file():
            raise AlignerUnavailableError(f"{path}: landmark model file not found")
        self.predictor_path = path
        self.upsample = upsample
        self.detect_max_side = detect_max_side
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))

    def landmarks(self, img: Image.Image) -> list[np.ndarray]:
        """68 landmarks [68, 2] (float64, pixels of ``img``) per detected face, largest face first."""
        img = img.convert("RGB")
        arr = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
        scale = min(1.0, self.detect_max_side / max(img.size))
        small = arr
        if scale < 1.0:
            size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
            small = np.ascontiguousarray(np.asarray(img.resize(size, Image.Resampling.BOX), dtype=np.uint8))
        rects = list(self._detector(small, self.upsample))
        # Largest first; ties by position so the order never depends on the detector's internals.
        rects.sort(key=lambda r: (-r.width() * r.height(), r.top(), r.left()))
        out = []
        for r in rects:
            full = self._dlib.rectangle(round(r.left() / scale), round(r.top() / scale),
                                        round(r.right() / scale), round(r.bottom() / scale))
            shape = self._predictor(arr, full)
            out.append(np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64))
        return out

    def align(self, img: Image.Image, output_size: int, transform_size: int | None = None,
              path: str | os.PathLike | None = None) -> Image.Image:
        """The largest face of ``img``, FFHQ-aligned, as an RGB image ``output_size`` square.

        Raises BadImageError("PATH: no face found") when dlib finds none (``path`` only names the image).
        """
        faces = self.landmarks(img)
        if not faces:
            raise BadImageError(f"{path if path is not None else '<image>'}: no face found")
        return align_face(img, faces[0], output_size, transform_size)
