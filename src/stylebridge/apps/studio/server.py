"""The studio's web server: a small FastAPI app serving one plain-JavaScript page and a JSON API over `Studio`.

Why FastAPI and a hand-written page rather than gradio: a canvas stroke or a slider move is one small POST
(a 64-px PNG as a data URL, or a few numbers) answered with a few-hundred-byte PNG, so the page's own cost stays
around a millisecond beside the model's few milliseconds; gradio's queue and event round trips add tens of
milliseconds per update, its sketch component changes between versions, and its front end loads fonts from a CDN
unless configured. Here everything the page needs ships in the package (no CDN, no analytics, works offline).

Every route only parses the request and calls the engine. An upload is read under a byte limit, written to the
server's own temporary folder under a random name, decoded there (common image formats only; the pixel limit
checked from the header, before decoding) and deleted at once; the decoded picture lives in the uploading session
only. The folder is removed when the server stops. At most ``Limits.max_pending`` requests wait at once (the rest
get 503), and a server bound to the loopback refuses requests for other host names and from other sites' pages
(DNS rebinding, cross-site form posts).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image

from stylebridge.apps.studio.engine import Session, Studio, StudioError, model_thread
from stylebridge.core.errors import BadImageError
from stylebridge.core.imageio import center_crop_resize, load_image, to_pil

__all__ = ["Limits", "create_app", "serve"]

STATIC = Path(__file__).parent / "static"
logger = logging.getLogger("stylebridge.studio")
SESSION_HEADER = "X-Studio-Session"
_SLOT = re.compile(r"[a-z][a-z0-9-]{0,31}")
# What uploads may be: the formats browsers and cameras write. Pillow's other plugins (EPS through Ghostscript,
# and a long tail of rare formats) are not exposed to whoever can reach the page.
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
MAX_SLOTS = 8


@dataclass(frozen=True)
class Limits:
    """What an upload may be: ``max_bytes`` of file (a canvas drawing sent inline too), ``max_pixels`` once
    decoded (checked from the header, before any pixel is decoded)."""

    max_bytes: int = 8_000_000
    max_pixels: int = 4096 * 4096
    max_pending: int = 64  # requests reading or waiting for the model thread at once


class RefusedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def png_data_url(image: torch.Tensor | Image.Image) -> str:
    """A PIL image, or [C, H, W] / [1, C, H, W] in [-1, 1] → "data:image/png;base64,…" (fast, lossless)."""
    if isinstance(image, torch.Tensor):
        image = to_pil((image[0] if image.ndim == 4 else image).detach().float().cpu())
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _urls(images: torch.Tensor) -> list[str]:
    return [png_data_url(x) for x in images]


class _Uploads:
    """Bytes → decoded RGB picture through a file in the server's temp folder, removed right after decoding."""

    def __init__(self, limits: Limits, folder: Path) -> None:
        self.limits, self.folder = limits, folder

    def too_big(self, size: int) -> RefusedError:
        return RefusedError(413, f"upload refused: {size / 1e6:.1f} MB is more than the limit of "
                             f"{self.limits.max_bytes / 1e6:.1f} MB")

    def decode(self, data: bytes, what: str = "upload") -> Image.Image:
        if len(data) > self.limits.max_bytes:
            raise self.too_big(len(data))
        if not data:
            raise RefusedError(400, f"{what}: empty file")
        # A random name: nothing the client sends ever becomes part of a path.
        path = self.folder / f"{secrets.token_hex(8)}.upload"
        try:
            path.write_bytes(data)
            return load_image(path, max_pixels=self.limits.max_pixels, formats=UPLOAD_FORMATS)
        except BadImageError as e:
            reason = str(e).split(": ", 1)[-1].splitlines()[0]
            status = 413 if "megapixels" in reason or "bomb" in reason else 400
            raise RefusedError(status, f"{what}: {reason}") from None
        finally:
            path.unlink(missing_ok=True)

    def decode_data_url(self, url: Any, what: str) -> Image.Image:
        if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
            raise RefusedError(400, f"{what}: expected an image data URL (data:image/…;base64,…)")
        b64 = url.split(";base64,", 1)[1]
        if len(b64) * 3 // 4 > self.limits.max_bytes:
            raise self.too_big(len(b64) * 3 // 4)
        try:
            data = base64.b64decode(b64, validate=True)
        except ValueError:
            raise RefusedError(400, f"{what}: the data URL is not valid base64") from None
        return self.decode(data, what)


def create_app(studio: Studio, limits: Limits = Limits(), upload_dir: str | os.PathLike | None = None,
               allowed_hosts: tuple[str, ...] | None = None) -> FastAPI:
    """The FastAPI app for ``studio``. Uploads go through ``upload_dir`` (default: a fresh temporary folder,
    removed at shutdown; ``app.state.upload_dir`` says which). ``allowed_hosts``: the host names requests may be
    addressed to (`serve` gives the loopback names when bound to the loopback); None: any."""
    own_dir = upload_dir is None
    folder = Path(tempfile.mkdtemp(prefix="stylebridge-studio-")) if own_dir else Path(upload_dir)
    folder.mkdir(parents=True, exist_ok=True)
    uploads = _Uploads(limits, folder)
    # Every model call runs on the studio's one model thread (see `model_thread`: two threads running torch slow
    # each other down on 2 cores), which also serialises them.
    worker = model_thread()

    async def run_in_worker(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(worker, fn, *args)

    @asynccontextmanager
    async def lifespan(app: Any):
        try:
            yield
        finally:
            if own_dir:
                shutil.rmtree(folder, ignore_errors=True)

    app = FastAPI(title="stylebridge studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.upload_dir = folder
    app.state.studio = studio
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    pending = asyncio.Semaphore(limits.max_pending)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Any:
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if allowed_hosts is not None and name not in allowed_hosts:
            return JSONResponse({"error": f"this studio answers only to {', '.join(allowed_hosts)}"}, status_code=403)
        origin = request.headers.get("origin")
        if request.method == "POST" and origin and origin.split("://", 1)[-1] != host:
            return JSONResponse({"error": "requests from other sites' pages are refused"}, status_code=403)
        if not request.url.path.startswith("/api/"):
            return await call_next(request)
        if pending.locked():
            return JSONResponse({"error": "the studio is busy: try again in a moment"}, status_code=503)
        async with pending:
            return await call_next(request)

    async def body(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise uploads.too_big(int(declared))
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise uploads.too_big(size)
            chunks.append(chunk)
        return b"".join(chunks)

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await body(request, limits.max_bytes * 4 // 3 + 65536)  # a data URL is base64: 4/3 of the bytes
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise RefusedError(400, "the request body is not JSON") from None
        except RecursionError:
            raise RefusedError(400, "the request body nests too deeply") from None
        if not isinstance(data, dict):
            raise RefusedError(400, "the request body must be a JSON object")
        return data

    def session_of(request: Request) -> Session:
        return studio.sessions.get(request.headers.get(SESSION_HEADER))

    def picture(session: Session, source: Any, what: str) -> Image.Image | torch.Tensor:
        """{"slot": NAME} (an upload), {"data": DATA_URL} (a canvas) or {"example": KIND, "seed": N}."""
        if not isinstance(source, dict):
            raise RefusedError(400, f"{what}: give a source (slot, data or example)")
        if "slot" in source:
            pic = session.pictures.get(str(source["slot"]))
            if pic is None:
                raise StudioError(f"{what}: nothing uploaded to {source['slot']!r} yet")
            return pic
        if "data" in source:
            return uploads.decode_data_url(source["data"], what)
        if "example" in source:
            return studio.example(str(source["example"]), _int(source.get("seed", 0), "seed"))
        raise RefusedError(400, f"{what}: give a source (slot, data or example)")

    async def action(request: Request, fn: Callable[[dict[str, Any], Session], dict[str, Any]]) -> Response:
        try:
            data = await json_body(request)
            session = session_of(request)
            start = time.perf_counter()
            out = await run_in_worker(fn, data, session)
            out["ms"] = round((time.perf_counter() - start) * 1e3, 2)
            return JSONResponse(out, headers={"Cache-Control": "no-store"})
        except Exception as e:  # every failure is one line of JSON the page can show
            return _error_response(e)

    @app.get("/")
    async def index() -> Any:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.post("/api/session")
    async def new_session() -> Any:
        s = studio.sessions.open()
        return JSONResponse({"token": s.token, "info": studio.info(), "limits": {
            "max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels}})

    @app.post("/api/upload/{slot}")
    async def upload(slot: str, request: Request) -> Any:
        try:
            if not _SLOT.fullmatch(slot):
                raise RefusedError(400, f"bad upload slot {slot!r}")
            session = session_of(request)
            data = await body(request, limits.max_bytes)
            align = request.query_params.get("align") in ("1", "true")
            start = time.perf_counter()

            def work() -> dict[str, Any]:
                img = uploads.decode(data)
                side = max(256, studio.generator.resolution)
                if align:
                    prepared = studio.aligner_image(img, side)
                else:
                    prepared = center_crop_resize(img, side)
                if slot not in session.pictures and len(session.pictures) >= MAX_SLOTS:
                    raise RefusedError(400, f"at most {MAX_SLOTS} uploads per session")
                session.pictures[slot] = prepared
                return {"picture": png_data_url(prepared), "width": img.width, "height": img.height,
                        "aligned": align}

            out = await run_in_worker(work)
            out["ms"] = round((time.perf_counter() - start) * 1e3, 2)
            return JSONResponse(out)
        except Exception as e:  # every failure is one line of JSON the page can show
            return _error_response(e)

    @app.post("/api/example")
    async def example(request: Request) -> Any:
        def fn(d: dict[str, Any], s: Session) -> dict[str, Any]:
            size = max(256, studio.generator.resolution)
            img = studio.example(str(d.get("kind", "face")), _int(d.get("seed", 0), "seed"), size)
            return {"picture": png_data_url(img)}
        return await action(request, fn)

    @app.post("/api/generate")
    async def generate(request: Request) -> Any:
        def fn(d: dict[str, Any], s: Session) -> dict[str, Any]:
            mix = d.get("mix_seed")
            out = studio.generate(_seeds(d.get("seeds", [0])), _float(d.get("psi", 0.7), "psi"),
                                  generator=_str(d.get("generator"), "generator") or None,
                                  mix_seed=None if mix in (None, "") else _int(mix, "mix_seed"),
                                  crossover=None if d.get("crossover") is None else _int(d["crossover"], "crossover"))
            return {k: _urls(v) for k, v in out.items()}
        return await action(request, fn)

    @app.post("/api/translate")
    async def translate(request: Request) -> Any:
        def fn(d: dict[str, Any], s: Session) -> dict[str, Any]:
            out = studio.translate(_str(d.get("method"), "method"), picture(s, d.get("source"), "translate"),
                                   seed=_int(d.get("seed", 0), "seed"), samples=_int(d.get("samples", 0), "samples"),
                                   walk=_bool(d.get("walk", False), "walk"), frames=_int(d.get("frames", 16), "frames"),
                                   truncation_psi=_float(d.get("psi", 0.7), "psi"),
                                   colors=str(d.get("colors", "style")))
            return {"image": png_data_url(out["image"]), "input": png_data_url(out["input"]),
                    **{k: _urls(out[k]) for k in ("samples", "frames") if k in out}}
        return await action(request, fn)

    @app.post("/api/invert")
    async def invert(request: Request) -> Any:
        def fn(d: dict[str, Any], s: Session) -> dict[str, Any]:
            out = studio.invert(s, _str(d.get("inverter", "e4e"), "inverter"), picture(s, d.get("source"), "invert"),
                                steps=_int(d.get("steps", 100), "steps"))
            return {"input": png_data_url(out["input"]), "reconstruction": png_data_url(out["reconstruction"])}
        return await action(request, fn)

    @app.post("/api/edit")
    async def edit(request: Request) -> Any:
        def fn(d: dict[str, Any], s: Session) -> dict[str, Any]:
            strengths = d.get("strengths") or {}
            layers = d.get("layers") or {}
            if not isinstance(strengths, dict) or not isinstance(layers, dict):
                raise RefusedError(400, "strengths and layers must be objects: {direction: value}")
            out = studio.edit(s, {str(k): _float(v, k) for k, v in strengths.items()},
                              {str(k): str(v) for k, v in layers.items() if v})
            return {"image": png_data_url(out["image"])}
        return await action(request, fn)

    @app.get("/api/latents/{token}")
    async def latents(token: str) -> Any:
        from safetensors.torch import save

        try:
            s = studio.sessions.get(token)
            tensors = studio.latents(s)
        except StudioError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        meta = {"inverter": s.inverter, "edit": json.dumps(s.edit_settings)}
        return Response(save(tensors, metadata=meta), media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="latents.safetensors"',
                                 "Cache-Control": "no-store"})

    @app.post("/api/local")
    async def local(request: Request) -> Any:
        def fn(d: dict[str, Any], s: Session) -> dict[str, Any]:
            mask = None
            if d.get("mask"):
                img = uploads.decode_data_url(d["mask"], "mask").convert("L")
                mask = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(
                    img.height, img.width).float() / 255
            regions = d.get("regions") or []
            if not isinstance(regions, list) or len(regions) > 16:
                raise RefusedError(400, "regions must be a list of at most 16 names")
            out = studio.local_edit(_str(d.get("model"), "model"), picture(s, d.get("source"), "source"),
                                    picture(s, d.get("reference"), "reference"), mask=mask,
                                    regions=[str(r) for r in regions],
                                    shift=(_int(d.get("dy", 0), "dy"), _int(d.get("dx", 0), "dx")),
                                    frames=_int(d.get("frames", 0), "frames"))
            res = {k: png_data_url(out[k]) for k in ("image", "source", "reference")}
            res["mask"] = png_data_url(out["mask"] * 2 - 1)
            if "frames" in out:
                res["frames"] = _urls(out["frames"])
            return res
        return await action(request, fn)

    @app.post("/api/compare")
    async def compare(request: Request) -> Any:
        def fn(d: dict[str, Any], s: Session) -> dict[str, Any]:
            rows = studio.compare(picture(s, d.get("source"), "compare"),
                                  optimize_steps=_int(d.get("optimize_steps", 0), "optimize_steps"))
            return {"results": [{"name": r["name"], "family": r["family"], "image": png_data_url(r["image"]),
                                 "ms": round(r["ms"], 2)} for r in rows]}
        return await action(request, fn)

    return app


def _int(value: Any, what: str) -> int:
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise RefusedError(400, f"{what} must be a whole number, got {value!r}") from None


def _error_response(e: BaseException) -> Any:
    if isinstance(e, RefusedError):
        return JSONResponse({"error": e.message}, status_code=e.status)
    if isinstance(e, (StudioError, BadImageError, ValueError, TypeError, OverflowError, ImportError, RuntimeError)):
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return JSONResponse({"error": text}, status_code=400)
    logger.exception("studio: unexpected error")
    return JSONResponse({"error": f"internal error ({type(e).__name__}); the server log has the details"},
                        status_code=500)


def _str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 1000:
        raise RefusedError(400, f"{what} must be a name (a string)")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise RefusedError(400, f"{what} must be true or false, got {value!r}")
    return value


def _float(value: Any, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise RefusedError(400, f"{what} must be a number, got {value!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise RefusedError(400, f"{what} must be finite")
    return v


def _seeds(value: Any) -> list[int]:
    """[1, 2] or "0-3,7" → seeds."""
    if isinstance(value, list):
        if len(value) > 16:
            raise RefusedError(400, "give at most 16 seeds")
        return [_int(v, "seed") for v in value]
    if not isinstance(value, (str, int)) or len(str(value)) > 200:
        raise RefusedError(400, "seeds must be a list or a text such as 0-3,7")
    out: list[int] = []
    for part in str(value).split(","):
        part = part.strip()
        if not part:
            continue
        if re.fullmatch(r"\d+-\d+", part):
            a, b = (int(v) for v in part.split("-"))
            if b < a or b - a >= 16:
                raise RefusedError(400, f"seed range {part!r}: at most 16 seeds, low to high")
            out += list(range(a, b + 1))
        else:
            out.append(_int(part, "seed"))
        if len(out) > 16:
            raise RefusedError(400, "give at most 16 seeds")
    return out


def serve(studio: Studio, host: str = "127.0.0.1", port: int = 7860, limits: Limits = Limits(),
          log_level: str = "warning") -> None:
    """Run the studio until interrupted (Ctrl-C)."""
    import uvicorn

    loopback = host in ("127.0.0.1", "localhost", "::1")
    app = create_app(studio, limits, allowed_hosts=LOOPBACK_NAMES if loopback else None)
    print(f"studio: http://{host}:{port}/  ({len(studio.translators)} translators, {len(studio.directions)} "
          f"directions, {len(studio.stylemaps)} StyleMapGAN; uploads ≤ {limits.max_bytes / 1e6:.1f} MB, "
          f"≤ {limits.max_pixels / 1e6:.1f} MP; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
