"""Image folders full of odd and broken files: each decodes correctly or is reported once and skipped."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.core.imageio import (
    BadImageError,
    _to_rgb,
    center_crop_resize,
    load_image,
    scan_images,
    to_pil,
    to_tensor,
)
from stylebridge.data.folder import ImageFolderDataset, prepare_folder

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _exif_rotated_jpeg(path: Path) -> None:
    # Stored 40x20, left half red, right half blue; orientation 6 = "rotate 90° clockwise to display",
    # so the displayed image is 20x40 with red on top.
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, quality=95, exif=exif.tobytes())


def _good_files(root: Path) -> dict[str, Path]:
    """One file per awkward-but-valid kind; names sort in this order."""
    files = {}

    def add(name: str, img: Image.Image, **kw) -> None:
        files[name] = root / name
        files[name].parent.mkdir(parents=True, exist_ok=True)
        img.save(files[name], **kw)

    _exif_rotated_jpeg(root / "a_exif.jpg")
    files["a_exif.jpg"] = root / "a_exif.jpg"
    add("b_gray.png", Image.new("L", (24, 24), 100))
    pal = Image.new("P", (24, 24), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.paste(1, (0, 0, 12, 24))
    add("c_palette_transparent.png", pal, transparency=0)  # right half transparent
    add("c_palette_plain.png", pal)
    rgba = Image.new("RGBA", (24, 24), (0, 0, 255, 0))
    rgba.paste((255, 0, 0, 128), (0, 0, 12, 24))
    add("d_rgba.png", rgba)
    add("e_cmyk.jpg", Image.new("CMYK", (24, 24), (0, 255, 255, 0)), quality=95)
    g16 = np.full((24, 24), 65535, dtype=np.uint16)
    g16[:, :12] = 30000
    add("f_gray16.png", Image.fromarray(g16))
    add("g_1bit.png", Image.new("1", (24, 24), 1))
    add("h_la.png", Image.new("LA", (24, 24), (0, 0)))
    add("sub/i_noise.webp", _noise(30, 20), lossless=True)
    add("sub/j_noise.BMP", _noise(20, 30, seed=1))
    return files


def _bad_files(root: Path) -> dict[str, Path]:
    files = {}
    buf = io.BytesIO()
    _noise(64, 64).save(buf, format="JPEG", quality=90)
    files["k_truncated.jpg"] = root / "k_truncated.jpg"
    files["k_truncated.jpg"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    files["l_text.png"] = root / "l_text.png"
    files["l_text.png"].write_text("this is not a PNG\n")
    files["m_empty.jpg"] = root / "m_empty.jpg"
    files["m_empty.jpg"].write_bytes(b"")
    return files


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, dict[str, Path], dict[str, Path]]:
    root = tmp_path / "src"
    root.mkdir()
    good, bad = _good_files(root), _bad_files(root)
    (root / ".hidden.png").write_bytes(b"junk")  # hidden: never scanned
    (root / ".cache").mkdir()
    _noise(8, 8).save(root / ".cache" / "x.png")
    (root / "notes.txt").write_text("not an image extension")
    return root, good, bad


# --- scanning ---------------------------------------------------------------------------------------------------


def test_scan_images_recursive_sorted_skips_hidden(folder):
    root, good, bad = folder
    files = scan_images(root)
    assert files == sorted(files, key=lambda p: p.relative_to(root).as_posix())
    assert {p.relative_to(root).as_posix() for p in files} == set(good) | set(bad)


def test_scan_images_survives_symlink_loop(tmp_path):
    _noise(8, 8).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    try:
        (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    except OSError:
        pytest.skip("cannot create symlinks here")
    assert scan_images(tmp_path) == [tmp_path / "a.png"]


def test_scan_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadImageError, match="no image files"):
        scan_images(tmp_path / "empty")


# --- decoding ---------------------------------------------------------------------------------------------------


def _px(img: Image.Image, x: int, y: int) -> tuple[int, ...]:
    return img.getpixel((x, y))


def test_load_image_odd_modes(folder):
    _, good, _ = folder
    imgs = {name: load_image(path) for name, path in good.items()}
    assert all(im.mode == "RGB" for im in imgs.values())

    exif = imgs["a_exif.jpg"]
    assert exif.size == (20, 40)  # rotated to upright
    top, bottom = np.array(_px(exif, 10, 5)), np.array(_px(exif, 10, 35))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60

    assert _px(imgs["b_gray.png"], 5, 5) == (100, 100, 100)
    assert _px(imgs["c_palette_transparent.png"], 3, 3) == RED
    assert _px(imgs["c_palette_transparent.png"], 20, 3) == WHITE  # transparent → background
    assert _px(imgs["c_palette_plain.png"], 20, 3) == (0, 0, 0)
    r, g, b = _px(imgs["d_rgba.png"], 3, 3)  # 50 % red over white
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1
    assert _px(imgs["d_rgba.png"], 20, 3) == WHITE  # alpha 0: the blue under it must not show
    r, g, b = _px(imgs["e_cmyk.jpg"], 12, 12)
    assert r > 220 and g < 40 and b < 40
    assert _px(imgs["f_gray16.png"], 20, 3) == WHITE
    assert _px(imgs["f_gray16.png"], 3, 3) == (117, 117, 117)  # 30000 / 257, not clipped to 255
    assert _px(imgs["g_1bit.png"], 3, 3) == WHITE
    assert _px(imgs["h_la.png"], 3, 3) == WHITE
    assert imgs["sub/i_noise.webp"].size == (30, 20)


def test_load_image_background_colour(folder):
    _, good, _ = folder
    assert _px(load_image(good["d_rgba.png"], background=(0, 255, 0)), 20, 3) == (0, 255, 0)


@pytest.mark.parametrize("mode", ["I", "I;16B", "I;16"])
def test_16bit_modes_scaled(mode):
    arr = np.array([[0, 257 * 100, 65535]], dtype=np.int32)
    # frombytes: Pillow's own convert("I;16B") clips at 255, which is the bug this guards against.
    dtype = {"I": "<i4", "I;16B": ">u2", "I;16": "<u2"}[mode]
    img = Image.frombytes(mode, (3, 1), arr.astype(dtype).tobytes())
    assert img.mode == mode
    assert list(np.asarray(_to_rgb(img, WHITE))[0, :, 0]) == [0, 100, 255]


def test_load_image_bad_files(folder):
    _, _, bad = folder
    reasons = {}
    for name, path in bad.items():
        with pytest.raises(BadImageError) as exc:
            load_image(path)
        msg = str(exc.value)
        assert msg.startswith(f"{path}: ") and "\n" not in msg
        reasons[name] = msg
    assert "truncated" in reasons["k_truncated.jpg"]
    assert "empty file" in reasons["m_empty.jpg"]
    assert "not an image" in reasons["l_text.png"]
    with pytest.raises(BadImageError, match="not a file"):
        load_image(bad["l_text.png"].parent / "missing.png")


def test_load_image_max_pixels_refused_before_decoding(tmp_path):
    # A PNG whose header claims 400x300 but whose pixel data is cut off: if the size check came after
    # decoding, the error would be about truncation.
    buf = io.BytesIO()
    _noise(400, 300).save(buf, format="PNG")
    path = tmp_path / "big.png"
    path.write_bytes(buf.getvalue()[:200])
    with pytest.raises(BadImageError, match=r"400x300 is 0\.1 megapixels, more than the limit"):
        load_image(path, max_pixels=50_000)
    with pytest.raises(BadImageError, match=r"truncated|broken"):
        load_image(path)


def test_load_image_decompression_bomb_error_is_ours(tmp_path, monkeypatch):
    _noise(20, 20).save(tmp_path / "x.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow raises above 2 * MAX_IMAGE_PIXELS
    with pytest.raises(BadImageError, match="decompression bomb"):
        load_image(tmp_path / "x.png")


# --- geometry and tensors ---------------------------------------------------------------------------------------


def test_center_crop_resize():
    img = Image.new("RGB", (300, 100), RED)
    img.paste(BLUE, (100, 0, 200, 100))  # the centre square is blue
    out = center_crop_resize(img, 32)
    assert out.size == (32, 32)
    arr = np.asarray(out)
    assert (arr[:, 2:-2] == BLUE).all()
    assert center_crop_resize(Image.new("RGB", (10, 20)), 64).size == (64, 64)  # upsampling works too
    big = center_crop_resize(_noise(2000, 1500), 64)  # large ratio: box pre-reduce + LANCZOS
    assert big.size == (64, 64) and abs(np.asarray(big).mean() - 127.5) < 3


def test_to_tensor_to_pil_roundtrip():
    img = _noise(17, 9)
    x = to_tensor(img)
    assert x.shape == (3, 9, 17) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert to_tensor(Image.new("RGB", (1, 1), (0, 255, 0))).flatten().tolist() == [-1.0, 1.0, -1.0]
    assert np.array_equal(np.asarray(to_pil(x)), np.asarray(img))
    assert to_pil(torch.full((3, 2, 2), 5.0)).getpixel((0, 0)) == WHITE  # clamped
    with pytest.raises(ValueError, match="shape"):
        to_pil(torch.zeros(2, 3, 4, 4))


# --- dataset ----------------------------------------------------------------------------------------------------


def test_dataset_skips_bad_files_and_reports_once(folder, caplog):
    root, good, bad = folder
    ds = ImageFolderDataset(root, 16)
    assert len(ds) == len(good) + len(bad)
    with caplog.at_level(logging.WARNING, logger="stylebridge.data"):
        for _ in range(2):  # two epochs: still one warning per bad file
            items = [ds[i] for i in range(len(ds))]
    assert all(x.shape == (3, 16, 16) and x.min() >= -1 and x.max() <= 1 for x in items)
    warned = [r.getMessage() for r in caplog.records if r.name == "stylebridge.data"]
    assert len(warned) == len(bad)
    for path in bad.values():
        assert sum(str(path) in m for m in warned) == 1
    assert ds.num_bad == len(bad)
    assert {p for p, _ in ds.bad_files} == set(bad.values())
    # A bad index yields the next good file.
    i = ds.files.index(bad["k_truncated.jpg"])
    nxt = next(j for j in range(i + 1, len(ds)) if ds.files[j] not in bad.values())
    assert torch.equal(ds[i], ds[nxt])


def test_dataset_strict_raises(folder):
    root, _, bad = folder
    ds = ImageFolderDataset(root, 16, strict=True)
    with pytest.raises(BadImageError, match="truncated"):
        ds[ds.files.index(bad["k_truncated.jpg"])]


def test_dataset_all_bad_is_a_clear_error(tmp_path):
    _bad_files(tmp_path)
    ds = ImageFolderDataset(tmp_path, 16)
    with pytest.raises(BadImageError, match="none of the 3 image files could be decoded"):
        ds[0]


def test_dataset_transform_and_max_pixels(tmp_path):
    _noise(100, 100).save(tmp_path / "a_big.png")
    _noise(20, 20).save(tmp_path / "b_small.png")
    ds = ImageFolderDataset(tmp_path, 8, max_pixels=1000, transform=lambda x: x.flip(-1))
    assert torch.equal(ds[0], to_tensor(center_crop_resize(load_image(tmp_path / "b_small.png"), 8)).flip(-1))
    assert "megapixels" in ds.bad_files[0][1]


def test_dataloader_workers_survive_bad_files(folder):
    root, _, bad = folder
    ds = ImageFolderDataset(root, 16)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(b.shape[0] for b in batches) == len(ds)
    assert all(b.shape[1:] == (3, 16, 16) for b in batches)
    # The workers' findings reach the parent through the shared flags; reasons are recovered on demand.
    assert ds.num_bad == len(bad)
    assert all(reason for _, reason in ds.bad_files)


# --- prepare_folder ---------------------------------------------------------------------------------------------


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_prepare_folder_deterministic_with_skipped_list(folder, tmp_path, caplog):
    root, good, bad = folder
    with caplog.at_level(logging.INFO, logger="stylebridge.data"):
        rep1 = prepare_folder(root, tmp_path / "out1", 16, progress=False)
    prepare_folder(root, tmp_path / "out2", 16, progress=False)
    assert rep1.written == len(good) and rep1.out == tmp_path / "out1"
    assert {p for p, _ in rep1.skipped} == set(bad.values())
    d1, d2 = _digests(tmp_path / "out1"), _digests(tmp_path / "out2")
    assert d1 == d2  # byte-identical, skipped.txt included
    assert set(d1) == {str(Path(n).with_suffix(".png").as_posix()) for n in good} | {"skipped.txt"}
    for name in d1:
        if name.endswith(".png"):
            with Image.open(tmp_path / "out1" / name) as im:
                assert im.size == (16, 16) and im.mode == "RGB"
    lines = (tmp_path / "out1" / "skipped.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(bad)
    assert any(f"{len(good)} written, {len(bad)} skipped" in r.getMessage() for r in caplog.records)


def test_prepare_folder_strict_name_clash_and_out_inside_src(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _noise(20, 20).save(src / "a.png")
    _noise(20, 20, seed=3).save(src / "a.jpg")  # both would become a.png
    rep = prepare_folder(src, src / "out", 8, progress=False)
    assert rep.written == 2
    assert sorted(p.name for p in (src / "out").glob("*.png")) == ["a_jpg.png", "a_png.png"]
    rep = prepare_folder(src, src / "out", 8, progress=False)  # rerun: its own outputs are not inputs
    assert rep.written == 2 and not rep.skipped
    assert not list((src / "out").glob(".*"))  # no temporary files left behind
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(BadImageError, match=r"broken\.png"):
        prepare_folder(src, tmp_path / "strict", 8, strict=True, progress=False)
