"""FFHQ-style face alignment (NVlabs ffhq-dataset, ``recreate_aligned_images``), optionally driven by dlib.

The recipe: an oriented square ("quad") from eye and mouth landmarks; shrink the photo when the quad is much
larger than the output; crop around the quad; reflect-pad with a blur fading to the median colour where the
quad leaves the photo; a QUAD transform to ``transform_size`` and an antialiased resize to ``output_size``.
Landmarks are the 68-point iBUG/dlib layout in pixel coordinates (x right, y down), an array [68, 2].
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylebridge.core.imageio import BadImageError

__all__ = [
    "FIVE_POINTS",
    "TEMPLATE_SOURCES",
    "AlignerUnavailableError",
    "Dlib68Aligner",
    "FaceTemplate",
    "align_face",
    "align_to_template",
    "ffhq_quad",
    "find_dlib68_model",
    "five_points",
    "make_aligner",
    "similarity_quad",
    "synthfaces_template",
    "template_from_generator",
    "template_similarity",
    "to_template_frame",
]

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
    return _warp_quad(img, ffhq_quad(landmarks), output_size, transform_size, enable_padding)


def _warp_quad(img: Image.Image, quad: np.ndarray, output_size: int, transform_size: int | None = None,
               enable_padding: bool = True, fill: str = "ffhq") -> Image.Image:
    """The square ``quad`` [4, 2] (corners UL, LL, LR, UR in pixel-centre coordinates of ``img``) of ``img`` as an
    RGB image ``output_size`` square: FFHQ's shrink, crop, blur-pad and supersampled QUAD transform. ``fill``:
    how the frame is padded where it leaves the photo — "ffhq" (exactly NVlabs') or "soft" (blurred and faded
    within a fifth of the frame: for tight crops, whose frame is mostly padding)."""
    if output_size < 1:
        raise ValueError(f"output_size must be positive, got {output_size}")
    transform_size = transform_size or 4 * output_size
    img = img.convert("RGB")
    quad = np.array(quad, dtype=np.float64)
    qsize = np.hypot(*(quad[3] - quad[0]))  # side of the square = 2 * |x|

    # Shrink: a face much bigger than the output is first reduced with LANCZOS (FFHQ's ANTIALIAS).
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
        scale = np.array([rsize[0] / img.size[0], rsize[1] / img.size[1]])
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        if fill == "ffhq":
            quad /= shrink  # NVlabs' arithmetic, kept for parity (off by up to half a pixel of the shrunk photo)
        else:  # pixel centres map through the resize's exact ratio
            quad = (quad + 0.5) * scale - 0.5
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
        if fill == "ffhq":
            mask = np.maximum(1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
                              1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]))
            blur = qsize * 0.02
            arr += (_gaussian_blur(arr, blur) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
            arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        else:
            # "soft": the distance outside the photo, in units of a fifth of the frame; reflections are blurred
            # hard within a tenth of it and gone (median colour) at one: a tight crop's mirror images, which
            # FFHQ's fill keeps sharp over a wide border, would be read as more eyes.
            src_h, src_w = h - pad[1] - pad[3], w - pad[0] - pad[2]
            dx = np.maximum(np.maximum(pad[0] - np.float32(x), np.float32(x) - (pad[0] + src_w - 1)), 0)
            dy = np.maximum(np.maximum(pad[1] - np.float32(y), np.float32(y) - (pad[1] + src_h - 1)), 0)
            dist = np.maximum(dx, dy) / (0.2 * qsize)
            arr += (_gaussian_blur(arr, qsize * 0.06) - arr) * np.clip(dist * 10.0, 0.0, 1.0)
            arr += (np.median(arr[pad[1]:pad[1] + src_h, pad[0]:pad[0] + src_w], axis=(0, 1)) - arr) * np.clip(
                dist, 0.0, 1.0)
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


# ------------------------------------------------------------------------------------------------------------------
# Alignment into a generator's own layout: a 5-point template and a similarity transform

FIVE_POINTS = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right")  # left = smaller x in the image
TEMPLATE_SOURCES = ("auto", "synthfaces", "generator", "ffhq")


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """68 iBUG/dlib landmarks [68, 2] → the 5 template points [5, 2] (`FIVE_POINTS`): means of 36–41 and 42–47,
    the nose tip 30, the mouth corners 48 and 54. An array [5, 2] is returned as it is."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape == (5, 2):
        if not np.isfinite(lm).all():
            raise ValueError("landmarks contain NaN or infinity")
        return lm.copy()
    lm = _check_landmarks(lm)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


@dataclass(frozen=True)
class FaceTemplate:
    """Where a generator puts a face: the `FIVE_POINTS` [5, 2] in its image coordinates (x right, y down, both
    in [-1, 1] across the image), and where the template came from.

    Saved as JSON: ``{"template": NAME, "points": {"eye_left": [x, y], …}}`` (`save`, `load`).
    """

    points: np.ndarray
    source: str = "file"

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float64)
        if pts.shape != (5, 2) or not np.isfinite(pts).all():
            raise ValueError(f"a face template needs 5 finite points [5, 2], got shape {pts.shape}")
        if pts[1, 0] <= pts[0, 0]:
            raise ValueError("face template: eye_right must lie right of eye_left (x grows to the right)")
        object.__setattr__(self, "points", pts)

    def save(self, path: str | os.PathLike) -> Path:
        from stylebridge.core.atomic import atomic_write_text

        doc = {"template": self.source, "points": {k: [round(float(v), 6) for v in p]
                                                   for k, p in zip(FIVE_POINTS, self.points)}}
        return atomic_write_text(Path(path), json.dumps(doc, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> FaceTemplate:
        """A template file (`save`'s JSON). Raises ValueError naming the file and what is wrong with it."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text())
            pts = doc["points"]
            points = np.array([pts[k] for k in FIVE_POINTS], dtype=np.float64)
            return cls(points, str(doc.get("template", p.stem)))
        except FileNotFoundError:
            raise FileNotFoundError(f"{p}: face template file not found") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{p}: not a face template ({type(e).__name__}: {e}); expected "
                             f'{{"points": {{"eye_left": [x, y], …}}}} with {", ".join(FIVE_POINTS)}') from None


def synthfaces_template(count: int = 4096) -> FaceTemplate:
    """The synthfaces renderer's own layout: the mean of its exact landmarks (`data.synthfaces.landmarks`) over
    ``count`` sampled faces (training seeds; every yaw, so about frontal)."""
    from stylebridge.data import synthfaces as sf

    pts = sf.landmarks(sf.sample_attributes(list(range(count)))).mean(0).double().numpy()
    return FaceTemplate(pts, "synthfaces")


def template_similarity(points: np.ndarray, template: FaceTemplate) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity that takes the generator's frame onto the photo: (scale, rotation [2, 2], shift [2]) with
    ``photo = scale * rotation @ frame + shift``, frame in the template's [-1, 1] coordinates, photo in pixel-centre
    coordinates; the least-squares fit of the template onto the photo's points ([5, 2] or 68) (Umeyama 1991, no
    reflection). `similarity_quad` warps with it; `to_template_frame` is its exact inverse."""
    src = five_points(points)
    dst = template.points
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    var_d = (b**2).sum() / len(b)
    if var_d <= 0 or (a**2).sum() <= 0:
        raise ValueError("degenerate landmarks: the face points coincide")
    cov = a.T @ b / len(b)  # maps dst → src
    u, sv, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sv) @ d) / var_d)
    return scale, rot, mu_s - scale * rot @ mu_d


def to_template_frame(points: np.ndarray, landmarks: np.ndarray, template: FaceTemplate) -> np.ndarray:
    """Where ``points`` [K, 2] of a photo (pixel centres) land in the generator's frame ([-1, 1] image coordinates)
    once the photo is aligned by its ``landmarks`` ([5, 2] or 68) onto ``template``."""
    scale, rot, shift = template_similarity(landmarks, template)
    return (np.asarray(points, dtype=np.float64) - shift) @ rot / scale


def similarity_quad(points: np.ndarray, template: FaceTemplate) -> np.ndarray:
    """The square of the photo that maps onto the generator's frame when its face points land on the template.

    points [5, 2] (or [68, 2]) in pixel-centre coordinates of the photo → quad [4, 2] (UL, LL, LR, UR, the same
    coordinates), for `align_face`'s warp: `template_similarity` applied to the frame's corners. The same square
    at any output size.
    """
    scale, rot, shift = template_similarity(points, template)
    # frame corners in [-1, 1] coordinates → photo pixel-centre coordinates; the warp addresses pixel centres and
    # the frame's corners lie half an output pixel outside its outermost pixel centres: ±1 exactly.
    corners = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    return corners @ (scale * rot).T + shift


def align_to_template(img: Image.Image, points: np.ndarray, template: FaceTemplate, output_size: int,
                      transform_size: int | None = None, enable_padding: bool = True) -> Image.Image:
    """Rotate, scale and crop ``img`` so its face points ([5, 2] or 68 landmarks, pixel-centre coordinates) land on
    ``template``: an RGB image ``output_size`` square. Where the frame leaves the photo (a tight crop), the "soft"
    fill: the photo reflected, blurred within a tenth and faded to its median colour within a fifth of the frame."""
    if output_size < 1:
        raise ValueError(f"output_size must be positive, got {output_size}")
    return _warp_quad(img, similarity_quad(points, template), output_size, transform_size,
                      enable_padding, fill="soft")


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
    """Face detection (dlib HOG) + 68 landmarks (dlib shape predictor) + alignment.

    Needs ``pip install dlib-bin face-recognition-models`` (dlib wheels and the landmark model); raises
    AlignerUnavailableError naming the missing one. ``predictor_path`` overrides the model file.
    ``template``: a `FaceTemplate` — the face is rotated, scaled and cropped so its 5 points land on it (the
    generator's own layout); None: FFHQ's crop (`align_face`).
    ``detect_max_side``: faces are detected on a copy at most this many pixels on its longest side (HOG on a
    24 MP photo takes minutes); ``detect_min_side``: small photos are upscaled (bicubic) to at least this for
    detection and landmarks — HOG finds no face under about 80 px (a 25-px LFW crop is found 91 times in 100
    at 256). Landmarks are returned in the photo's own pixels either way.
    """

    def __init__(self, predictor_path: str | os.PathLike | None = None, upsample: int = 1,
                 detect_max_side: int = 1024, template: FaceTemplate | None = None,
                 detect_min_side: int = 256) -> None:
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
        self.detect_min_side = detect_min_side
        self.template = template
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))

    def landmarks(self, img: Image.Image) -> list[np.ndarray]:
        """68 landmarks [68, 2] (float64, pixels of ``img``) per detected face, largest face first."""
        img = img.convert("RGB")
        grow = self.detect_min_side / max(img.size)
        if grow > 1:  # small photos: fit landmarks on an upscaled copy, report them in the photo's pixels
            size = (max(1, round(img.size[0] * grow)), max(1, round(img.size[1] * grow)))
            big = img.resize(size, Image.Resampling.BICUBIC)
            sx, sy = size[0] / img.size[0], size[1] / img.size[1]
            # pixel centres: (p + 0.5) / s - 0.5
            return [(lm + 0.5) / [sx, sy] - 0.5 for lm in self._landmarks(big)]
        return self._landmarks(img)

    def _landmarks(self, img: Image.Image) -> list[np.ndarray]:
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
        """The largest face of ``img``, aligned (to ``template``, or FFHQ's crop), as an RGB image ``output_size``
        square.

        Raises BadImageError("PATH: no face found") when dlib finds none (``path`` only names the image).
        """
        faces = self.landmarks(img)
        if not faces:
            raise BadImageError(f"{path if path is not None else '<image>'}: no face found")
        if self.template is not None:
            return align_to_template(img, faces[0], self.template, output_size, transform_size)
        return align_face(img, faces[0], output_size, transform_size)

    def __call__(self, img: Image.Image, output_size: int, path: str | os.PathLike | None = None) -> Image.Image:
        """`align` — what the folder runner calls per file."""
        return self.align(img, output_size, path=path)


def template_from_generator(generator: torch.nn.Module, aligner: Dlib68Aligner, count: int = 64,
                            min_faces: int = 8, truncation_psi: float = 0.7, seed: int = 0,
                            batch: int = 8) -> FaceTemplate:
    """A generator's own layout, read off its samples: dlib's 5 points on ``count`` images (seeds ``seed`` …,
    ψ ``truncation_psi``), averaged, in its image coordinates. For a photoreal generator (FFHQ-like); raises
    ValueError when dlib finds fewer than ``min_faces`` faces (a cartoon domain — give a template file, or
    ``synthfaces`` for synthfaces generators, whose exact layout is known)."""
    from stylebridge.core.imageio import to_pil
    from stylebridge.core.seeds import seed_to_z

    found = []
    res = int(generator.resolution)
    for start in range(seed, seed + count, batch):
        seeds = list(range(start, min(start + batch, seed + count)))
        with torch.no_grad():
            z = seed_to_z(seeds, generator.z_dim).to(next(generator.parameters()).device)
            img = generator.synthesize(generator.map(z, truncation_psi=truncation_psi), noise_mode="const")
        for x in img.clamp(-1, 1):
            faces = aligner.landmarks(to_pil(x))
            if faces:
                found.append((five_points(faces[0]) + 0.5) / res * 2 - 1)
    if len(found) < min_faces:
        raise ValueError(f"dlib found a face in only {len(found)} of {count} samples of the generator (need "
                         f"{min_faces}): give the layout as a template file (--align-template FILE)")
    return FaceTemplate(np.mean(found, axis=0), f"generator ({len(found)} of {count} samples)")


def make_aligner(template: str | os.PathLike | FaceTemplate | None = "auto", model: str | os.PathLike | None = None,
                 generator: torch.nn.Module | Callable[[], torch.nn.Module] | None = None,
                 predictor_path: str | os.PathLike | None = None) -> Dlib68Aligner:
    """The aligner ``--align`` builds: dlib's landmarks and a template (`TEMPLATE_SOURCES` or a file).

    ``template``: "synthfaces" (the renderer's exact layout), "generator" (dlib on the generator's own samples,
    `template_from_generator`; ``generator`` is the model or a function returning it), "ffhq" (NVlabs' FFHQ crop),
    a template file (`FaceTemplate.load`), a `FaceTemplate`, or "auto": synthfaces for a model whose name (shipped
    name or folder) starts with "synthfaces", else "generator". Raises AlignerUnavailableError without dlib.
    """
    if isinstance(template, FaceTemplate):
        return Dlib68Aligner(predictor_path, template=template)
    spec = "auto" if template is None else str(template)
    if spec == "auto":
        spec = "synthfaces" if model is not None and Path(str(model)).name.startswith("synthfaces") else "generator"
    if spec == "ffhq":
        return Dlib68Aligner(predictor_path)
    if spec == "synthfaces":
        return Dlib68Aligner(predictor_path, template=synthfaces_template())
    if spec == "generator":
        if generator is None:
            raise ValueError("--align-template generator needs the model's generator; give a template file or "
                             "synthfaces / ffhq")
        aligner = Dlib68Aligner(predictor_path)
        G = generator if isinstance(generator, torch.nn.Module) else generator()
        aligner.template = template_from_generator(G, aligner)
        return aligner
    if not Path(spec).suffix and not Path(spec).exists():
        raise ValueError(f"unknown face template {spec!r}: choose from {', '.join(TEMPLATE_SOURCES)} or give a "
                         "template file (JSON)")
    return Dlib68Aligner(predictor_path, template=FaceTemplate.load(spec))
