"""The studio's HTTP side: limits, refusals, the upload folder, downloads, and a bounded load test against a real
server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import re
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from stylebridge.apps.studio.server import SESSION_HEADER, STATIC, Limits, create_app

httpx = pytest.importorskip("httpx", reason="the studio tests need httpx (pip install 'stylebridge[studio]')")


@pytest.fixture(scope="module")
def client(studio, tmp_path_factory):
    from fastapi.testclient import TestClient

    folder = tmp_path_factory.mktemp("uploads")
    app = create_app(studio, Limits(max_bytes=200_000, max_pixels=1000 * 1000), upload_dir=folder)
    with TestClient(app) as c:
        token = c.post("/api/session").json()["token"]
        c.headers[SESSION_HEADER] = token
        c.upload_dir = folder
        yield c


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _decode(url: str) -> torch.Tensor:
    from stylebridge.core.imageio import to_tensor

    return to_tensor(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_page_is_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "stylebridge studio" in page.text
    for f in STATIC.iterdir():  # no CDN, fonts or analytics: nothing the page loads comes from elsewhere
        text = f.read_text()
        assert not re.search(r"https?://", text), f"{f.name} refers to another host"
    assert client.get("/static/studio.js").status_code == 200


def test_uploads_are_limited_checked_and_removed(client, face_png):
    ok = client.post("/api/upload/edit", content=face_png.read_bytes())
    assert ok.status_code == 200 and ok.json()["width"] == 256
    bad = client.post("/api/upload/edit", content=b"%PDF-1.4 not a picture")
    assert bad.status_code == 400 and "not an image" in bad.json()["error"]
    empty = client.post("/api/upload/edit", content=b"")
    assert empty.status_code == 400 and "empty" in bad.json()["error"] + empty.json()["error"]
    big = client.post("/api/upload/edit", content=b"\0" * 300_000)
    assert big.status_code == 413 and "limit" in big.json()["error"]
    # 1,200 × 1,200 of one colour: a tiny file with too many pixels, refused from its header.
    bomb = _png(Image.new("RGB", (1200, 1200), (40, 90, 200)))
    assert len(bomb) < 200_000
    r = client.post("/api/upload/edit", content=bomb)
    assert r.status_code == 413 and "megapixels" in r.json()["error"]
    r = client.post("/api/upload/../../etc", content=face_png.read_bytes())
    assert r.status_code in (400, 404)
    assert list(Path(client.upload_dir).iterdir()) == []  # nothing left behind, good or bad


def test_canvas_data_urls_go_through_the_same_checks(client):
    sketch = Image.new("RGB", (256, 256), "white")
    actmap = "synthfaces-64-actmap"
    r = client.post("/api/translate", json={"method": actmap, "source": {"data": _data_url(_png(sketch))}})
    assert r.status_code == 200 and r.json()["image"].startswith("data:image/png;base64,")
    assert _decode(r.json()["image"]).shape == (3, 64, 64)
    r = client.post("/api/translate", json={"method": actmap, "source": {"data": "data:image/png;base64,@@"}})
    assert r.status_code == 400 and "base64" in r.json()["error"]
    r = client.post("/api/translate", json={"method": "synthfaces-64-actmap", "source": {"slot": "never"}})
    assert r.status_code == 400 and "nothing uploaded" in r.json()["error"]
    r = client.post("/api/translate", json={"method": "synthfaces-64-actmap",
                                            "source": {"data": _data_url(b"\0" * 300_000)}})
    assert r.status_code == 413


def test_bad_requests_get_one_line(client):
    assert client.post("/api/generate", content=b"{oops").json()["error"] == "the request body is not JSON"
    r = client.post("/api/generate", json={"seeds": "0-40"})
    assert r.status_code == 400 and "16 seeds" in r.json()["error"]
    r = client.post("/api/generate", json={"seeds": [1], "psi": "x"})
    assert r.status_code == 400 and "psi" in r.json()["error"]
    r = client.post("/api/generate", json={"seeds": [1]}, headers={SESSION_HEADER: "forged"})
    assert r.status_code == 400 and "session" in r.json()["error"]
    r = client.post("/api/edit", json={"strengths": {"synthfaces-64-smile": 1}},
                    headers={SESSION_HEADER: client.post("/api/session").json()["token"]})
    assert r.status_code == 400 and "invert a picture first" in r.json()["error"]


def test_invert_edit_and_download_the_latent(client, studio):
    from safetensors import safe_open

    r = client.post("/api/invert", json={"inverter": "psp", "source": {"example": "face", "seed": 12}})
    assert r.status_code == 200, r.text
    before = _decode(r.json()["reconstruction"])
    r = client.post("/api/edit", json={"strengths": {"synthfaces-64-yaw": 2.5}})
    after = _decode(r.json()["image"])
    assert (after - before).abs().mean() > 0.02
    token = client.headers[SESSION_HEADER]
    blob = client.get(f"/api/latents/{token}")
    assert blob.status_code == 200 and "attachment" in blob.headers["content-disposition"]
    path = Path(client.upload_dir).parent / "latents.safetensors"
    path.write_bytes(blob.content)
    with safe_open(str(path), "pt") as f:
        w, edited = f.get_tensor("w_plus"), f.get_tensor("edited")
        assert f.metadata()["inverter"] == "psp" and "synthfaces-64-yaw" in f.metadata()["edit"]
    G = studio.generator
    assert w.shape == (G.num_ws, G.w_dim) and not torch.equal(w, edited)
    assert client.get("/api/latents/forged").status_code == 400


def test_twenty_sessions_fifty_requests_each(live_server, face_png, studio):
    """20 concurrent browser sessions × 50 requests (uploads, translations, slider edits, generation) against the
    running server: no error, and every answer is the one its own session asked for."""
    sessions, per_session = 20, 50
    url = live_server.url
    errors: list[str] = []
    # What each session must get: its own picture (a face seed per session), its own seed, its own strengths.
    expected: dict[int, dict[str, str]] = {}
    faces = {i: _png(_pil(studio.example("face", 100 + i, 256))) for i in range(sessions)}

    def worker(i: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=120) as c:
                c.headers[SESSION_HEADER] = c.post("/api/session").json()["token"]
                assert c.post("/api/upload/face", content=faces[i]).status_code == 200
                inv = c.post("/api/invert", json={"inverter": "e4e", "source": {"slot": "face"}}).json()
                seen: dict[str, str] = {}
                for k in range(per_session - 2):
                    kind = k % 3
                    if kind == 0:
                        r = c.post("/api/translate", json={"method": "synthfaces-64-distill-smile-fast",
                                                           "source": {"slot": "face"}})
                        key = "translate"
                    elif kind == 1:
                        r = c.post("/api/edit", json={"strengths": {"synthfaces-64-smile": 0.1 * (i % 7)}})
                        key = "edit"
                    else:
                        r = c.post("/api/generate", json={"seeds": [1000 + i], "psi": 0.7})
                        key = "generate"
                    if r.status_code != 200:
                        errors.append(f"session {i} request {k}: {r.status_code} {r.text[:200]}")
                        return
                    body = r.json()
                    value = body["image"] if "image" in body else body["images"][0]
                    if seen.setdefault(key, value) != value:
                        errors.append(f"session {i}: {key} answered differently under load")
                        return
                expected[i] = {**seen, "reconstruction": inv["reconstruction"]}
        except Exception as e:
            errors.append(f"session {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:5]
    assert len(expected) == sessions
    # Each session's answers are its own: compare with the same calls made alone, one session at a time.
    for i in (0, 7, 19):
        alone = studio.sessions.open()
        face = Image.open(io.BytesIO(faces[i])).convert("RGB")
        studio.invert(alone, "e4e", face)
        edit = studio.edit(alone, {"synthfaces-64-smile": 0.1 * (i % 7)})["image"]
        smile = studio.translate("synthfaces-64-distill-smile-fast", face)["image"]
        gen = studio.generate([1000 + i], 0.7)["images"]
        for key, ref in (("edit", edit), ("translate", smile), ("generate", gen)):
            got = _decode(expected[i][key])
            assert (got - _quantised(ref)).abs().max() <= 2 / 255 + 1e-6, (i, key)
    for key in ("edit", "translate", "generate"):  # every session had its own face and seed: 20 different answers
        assert len({expected[i][key] for i in range(sessions)}) == sessions, key
    assert len(studio.sessions) <= studio.sessions.max_sessions


def _pil(x: torch.Tensor) -> Image.Image:
    from stylebridge.core.imageio import to_pil

    return to_pil(x)


def _quantised(x: torch.Tensor) -> torch.Tensor:
    from stylebridge.core.imageio import to_tensor

    return to_tensor(_pil(x[0].clamp(-1, 1)))
