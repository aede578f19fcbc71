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
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    ico = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(ico, format="ICO")  # Pillow reads it; the studio takes common formats only
    r = client.post("/api/upload/edit", content=ico.getvalue())
    assert r.status_code == 400 and "not an image (PNG" in r.json()["error"]
    big = client.post("/api/upload/edit", content=b"\0" * 300_000)
    assert big.status_code == 413 and "limit" in big.json()["error"]
    # 1,200 × 1,200 of one colour: a tiny file with too many pixels, refused from its header.
    bomb = _png(Image.new("RGB", (1200, 1200), (40, 90, 200)))
    assert len(bomb) < 200_000
    r = client.post("/api/upload/edit", content=bomb)
    assert r.status_code == 413 and "megapixels" in r.json()["error"]
    r = client.post("/api/upload/Bad_Slot", content=face_png.read_bytes())
    assert r.status_code == 400 and "bad upload slot" in r.json()["error"]
    for k in range(8):  # the session already holds "edit": 7 more fit, the 9th is refused
        r = client.post(f"/api/upload/slot-{k}", content=face_png.read_bytes())
    assert r.status_code == 400 and "at most 8 uploads" in r.json()["error"]
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


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/api/generate", b"[" * 100_000, "nests too deeply"),
    ("/api/generate", b'{"seeds": [1], "psi": 1' + b"0" * 400 + b"}", "psi must be a number"),
    ("/api/generate", b'{"seeds": [1], "generator": ["x"]}', "generator must be a name"),
    ("/api/generate", b'{"seeds": "' + b"0-3," * 40 + b'"}', "at most 16 seeds"),
    ("/api/generate", b'{"seeds": [1], "mix_seed": -1}', "mixing seed"),
    ("/api/translate", b'{"method": "synthfaces-64-actmap", "source": {"example": "face"}, "walk": "false"}',
     "walk must be true or false"),
    ("/api/translate", b'{"method": "synthfaces-64-actmap", "source": {"example": "face"}, "seed": 99999999999}',
     "style seed"),
    ("/api/translate", b'{"method": "synthfaces-64-actmap", "source": 5}', "give a source"),
    ("/api/local", b'{"regions": ["hair", "tail"], "source": {"example": "face"}, "reference": {"example": "face"}}',
     "unknown region"),
    ("/api/local", b'{"regions": ' + str(["hair"] * 100).replace("'", '"').encode() + b"}", "at most 16 names"),
])
def test_malformed_requests_get_one_line_4xx(client, path, body, says):
    r = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    error = r.json()["error"]
    assert says in error and "\n" not in error


def test_layer_ranges_are_checked_before_they_are_built(client):
    client.post("/api/invert", json={"inverter": "e4e", "source": {"example": "face", "seed": 2}})
    r = client.post("/api/edit", json={"strengths": {"synthfaces-64-smile": 1},
                                       "layers": {"synthfaces-64-smile": "0-1000000000"}})
    assert r.status_code == 400 and "beyond the generator's 10 W+ rows" in r.json()["error"]
    r = client.post("/api/edit", json={"strengths": {"synthfaces-64-smile": 1e300}})
    assert r.status_code == 400 and "strength must be in" in r.json()["error"]


def test_examples_local_edits_and_compare_over_http(client, studio):
    ex = client.post("/api/example", json={"kind": "sketch", "seed": 4}).json()["picture"]
    assert _decode(ex).shape == (3, 256, 256)
    mask = Image.new("RGB", (256, 256), "black")
    mask.paste((255, 255, 255), (60, 30, 200, 90))
    body = {"source": {"example": "face", "seed": 3}, "reference": {"example": "face", "seed": 11},
            "mask": _data_url(_png(mask)), "frames": 4, "dx": 2}
    r = client.post("/api/local", json=body).json()
    assert len(r["frames"]) == 4 and r["frames"][-1] == r["image"]
    painted = _decode(r["mask"])[0] > 0
    assert painted[8:22, 15:50].all() and not painted[40:].any()  # the painted box, at the model's 64 px
    rows = client.post("/api/compare", json={"source": {"example": "photo", "seed": 1}}).json()["results"]
    assert [x["name"] for x in rows] == list(studio.translators) and all(x["ms"] > 0 for x in rows)


def test_host_origin_and_busy_guards(studio, tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(studio, upload_dir=tmp_path, allowed_hosts=("127.0.0.1", "localhost"))
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        assert c.post("/api/session").status_code == 200
        assert c.post("/api/session", headers={"Origin": "http://127.0.0.1:7860"}).status_code == 200
        r = c.post("/api/session", headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "other sites" in r.json()["error"]
        r = c.get("/", headers={"Host": "rebound.example:7860"})  # DNS rebinding: a foreign name for 127.0.0.1
        assert r.status_code == 403
    with TestClient(create_app(studio, Limits(max_pending=0), upload_dir=tmp_path)) as c:
        r = c.post("/api/session")
        assert r.status_code == 503 and "busy" in r.json()["error"]
        assert c.get("/").status_code == 200  # the page itself is never queued


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


def _pil(x: torch.Tensor) -> Image.Image:
    from stylebridge.core.imageio import to_pil

    return to_pil(x)


def _quantised(x: torch.Tensor) -> torch.Tensor:
    from stylebridge.core.imageio import to_tensor

    return to_tensor(_pil(x[0].clamp(-1, 1)))


def test_upload_with_alignment(client, astronaut, studio):
    """A real photo is aligned into the generator's layout (dlib) at upload; a picture without a face is refused."""
    if studio.align_available():
        pytest.skip(studio.align_available())
    photo = io.BytesIO()
    Image.open(astronaut).convert("RGB").save(photo, format="JPEG", quality=85)  # under this client's 200 KB limit
    fresh = {SESSION_HEADER: client.post("/api/session").json()["token"]}  # the shared one holds 8 uploads by now
    r = client.post("/api/upload/photo?align=1", content=photo.getvalue(), headers=fresh)
    assert r.status_code == 200 and r.json()["aligned"] is True, r.text
    aligned = _decode(r.json()["picture"])
    assert aligned.shape == (3, 256, 256)
    out = client.post("/api/translate", json={"method": "synthfaces-64-actmap", "source": {"slot": "photo"}},
                      headers=fresh)
    assert out.status_code == 200
    blank = _png(Image.new("RGB", (200, 200), (128, 128, 128)))
    r = client.post("/api/upload/photo?align=1", content=blank, headers=fresh)
    assert r.status_code == 400 and "no face found" in r.json()["error"]
