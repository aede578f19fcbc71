"""The studio's interactive latency: p50 / p95 per action against the running server, and a load test.

Starts ``stylebridge studio`` on a free port (or uses ``--url`` of one already running), then times each action as
the page sends it — the whole HTTP round trip, PNG in and out — ``--n`` times with changing inputs (a new stroke
on the sketch, a new slider value, a new mask), after a warm-up. Beside each: the server's own compute time (the
``ms`` it reports). With ``--browser`` the canvas stroke and the slider move are also timed in headless chromium,
from the mouse event to the new picture on the page (Playwright; Debian's chromium). ``--load`` adds the load test:
20 sessions × 50 requests at once (a mix of strokes, slider moves and generation), errors and latency under load.

Target (issue 20): a canvas stroke or a slider move updates the picture in ≤ 150 ms p95 at 64 px on 2 cores.

    python benchmarks/studio.py                      # actions, 60 each
    python benchmarks/studio.py --browser --load     # + in chromium, + 20 × 50 load
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import httpx
import torch
from PIL import Image, ImageDraw

from _common import machine_info, write_results

HEADER = "X-Studio-Session"
TARGET_MS = 150.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "stylebridge", "studio", "--port", str(port)]
    if threads:
        cmd += ["--threads", str(threads)]
    log = tempfile.NamedTemporaryFile("w+", prefix="studio-bench-", suffix=".log", delete=False)
    # A file, not a pipe: a pipe nobody reads fills up and blocks the server if it logs a lot.
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stylebridge studio exited: {Path(log.name).read_text()}")
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("stylebridge studio did not answer within 120 s")


def png_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def picture_from(url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def time_action(client: httpx.Client, name: str, path: str, bodies: list[dict[str, Any]],
                warmup: int = 3) -> dict[str, Any]:
    for b in bodies[:warmup]:
        client.post(path, json=b).raise_for_status()
    wall, server = [], []
    for b in bodies:
        t0 = time.perf_counter()
        r = client.post(path, json=b)
        dt = (time.perf_counter() - t0) * 1e3
        if r.status_code != 200:
            raise RuntimeError(f"{name}: {r.status_code} {r.text[:200]}")
        wall.append(dt)
        server.append(r.json()["ms"])
    return {"action": name, "n": len(bodies), "p50_ms": round(pct(wall, 0.5), 1), "p95_ms": round(pct(wall, 0.95), 1),
            "max_ms": round(max(wall), 1), "server_p50_ms": round(statistics.median(server), 1)}


def strokes(base: Image.Image, n: int, seed: int = 0) -> list[str]:
    """``n`` drawings: the base picture with one more random ink stroke each (cumulative, like someone drawing)."""
    g = torch.Generator().manual_seed(seed)
    img = base.copy()
    draw = ImageDraw.Draw(img)
    out = []
    for _ in range(n):
        x0, y0, x1, y1 = (torch.rand(4, generator=g) * 200 + 28).tolist()
        draw.line([(x0, y0), (x1, y1)], fill=(0, 0, 0), width=4)
        out.append(png_url(img))
    return out


def masks(n: int, size: int = 256) -> list[str]:
    """Masks as the page sends them: white strokes on black growing over the hair."""
    img = Image.new("RGB", (size, size), "black")
    draw = ImageDraw.Draw(img)
    out = []
    for k in range(n):
        t = k / max(1, n - 1)
        x = size * (0.28 + 0.44 * t)
        draw.ellipse([x - 20, size * 0.15, x + 20, size * 0.35], fill="white")
        out.append(png_url(img))
    return out


def actions(url: str, n: int) -> list[dict[str, Any]]:
    rows = []
    with httpx.Client(base_url=url, timeout=120) as c:
        c.headers[HEADER] = c.post("/api/session").json()["token"]
        sketch = picture_from(c.post("/api/example", json={"kind": "sketch", "seed": 1}).json()["picture"])
        face = c.post("/api/example", json={"kind": "face", "seed": 7}).json()["picture"]
        psis = [0.5 + 0.5 * (k % 10) / 10 for k in range(n)]
        rows.append(time_action(c, "generate: ψ slider, 1 seed", "/api/generate",
                                [{"seeds": [3], "psi": p} for p in psis]))
        rows.append(time_action(c, "generate: 4 seeds + mixing", "/api/generate",
                                [{"seeds": "0-3", "psi": p, "mix_seed": 100, "crossover": 4} for p in psis]))
        drawn = strokes(sketch, n)
        for model in ("synthfaces-64-actmap", "synthfaces-64-psp-sketch"):
            rows.append(time_action(c, f"canvas stroke → {model.removeprefix('synthfaces-64-')}", "/api/translate",
                                    [{"method": model, "source": {"data": d}} for d in drawn]))
        rows.append(time_action(c, "canvas stroke → actmap, 3 samples", "/api/translate",
                                [{"method": "synthfaces-64-actmap", "source": {"data": d}, "samples": 3, "seed": 4}
                                 for d in drawn]))
        rows.append(time_action(c, "latent walk (24 frames)", "/api/translate",
                                [{"method": "synthfaces-64-actmap", "source": {"data": d}, "walk": True, "frames": 24,
                                  "seed": 2} for d in drawn[: max(10, n // 4)]]))
        c.post("/api/invert", json={"inverter": "e4e", "source": {"data": face}}).raise_for_status()
        values = [round(-2 + 4 * (k % 17) / 16, 2) for k in range(n)]
        rows.append(time_action(c, "slider move (edit: smile)", "/api/edit",
                                [{"strengths": {"synthfaces-64-smile": v}} for v in values]))
        rows.append(time_action(c, "slider move (edit: 6 directions)", "/api/edit",
                                [{"strengths": {f"synthfaces-64-{d}": v * 0.5 for d in (
                                    "smile", "yaw", "glasses", "beard", "blond_hair", "mouth_open")}}
                                 for v in values]))
        local = [{"source": {"example": "face", "seed": 3}, "reference": {"example": "face", "seed": 11}, "mask": m}
                 for m in masks(n)]
        rows.append(time_action(c, "mask paint (local edit blend)", "/api/local", local))
        rows.append(time_action(c, "local edit: 16 frames", "/api/local",
                                [{**b, "frames": 16} for b in local[: max(10, n // 4)]]))
        for inverter in ("psp", "e4e", "restyle"):
            rows.append(time_action(c, f"invert ({inverter})", "/api/invert",
                                    [{"inverter": inverter, "source": {"data": face}}] * max(10, n // 4)))
        rows.append(time_action(c, "compare (every method)", "/api/compare",
                                [{"source": {"data": face}}] * max(5, n // 10), warmup=1))
        # Upload: raw bytes of a 256-px PNG, as the file input sends it.
        blob = base64.b64decode(face.split(",", 1)[1])
        wall = []
        for _ in range(n):
            t0 = time.perf_counter()
            c.post("/api/upload/bench", content=blob).raise_for_status()
            wall.append((time.perf_counter() - t0) * 1e3)
        rows.append({"action": "upload (256-px PNG)", "n": n, "p50_ms": round(pct(wall, 0.5), 1),
                     "p95_ms": round(pct(wall, 0.95), 1), "max_ms": round(max(wall), 1), "server_p50_ms": None})
    return rows


# Timed inside the page (performance.now): from the input event to the new picture decoded and ready to paint —
# the page's own work (canvas → PNG, fetch, image decode) included, Playwright's round trips not.
_IN_PAGE = """
async ({kind, n}) => {
  const img = document.getElementById(kind === "stroke" ? "tr-out" : "ed-out");
  const canvas = document.getElementById("tr-canvas");
  const slider = document.querySelector("#ed-sliders input[data-direction='synthfaces-64-smile']");
  const idle = async () => { while (window.studio.inflight) await new Promise((r) => setTimeout(r, 5)); };
  const times = [];
  for (let k = 0; k < n; k++) {
    await idle();
    await new Promise((r) => setTimeout(r, 30));
    const v = +img.dataset.version || 0;
    const t0 = performance.now();
    if (kind === "stroke") {
      const r = canvas.getBoundingClientRect();
      const at = { clientX: r.left + r.width * (0.15 + 0.7 * ((k * 37) % 100) / 100),
                   clientY: r.top + r.height * (0.15 + 0.7 * ((k * 61) % 100) / 100), pointerId: 1, bubbles: true };
      canvas.dispatchEvent(new PointerEvent("pointerdown", at));
      canvas.dispatchEvent(new PointerEvent("pointerup", at));
    } else {
      slider.value = String(-2 + 4 * ((k * 7) % 17) / 16);
      slider.dispatchEvent(new Event("input", { bubbles: true }));
    }
    await new Promise((res) => {
      const check = () => ((+img.dataset.version || 0) > v ? res() : setTimeout(check, 1));
      check();
    });
    await img.decode();
    times.push(performance.now() - t0);
  }
  return times;
}
"""


def browser(url: str, n: int) -> list[dict[str, Any]]:
    """Stroke and slider timed in chromium, in the page: from the event to the new picture."""
    from playwright.sync_api import sync_playwright

    exe = next((shutil.which(x) for x in ("chromium", "chromium-browser") if shutil.which(x)), None)
    rows = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        pg = b.new_page(viewport={"width": 1200, "height": 820})
        pg.goto(url + "/")
        pg.wait_for_function("window.studio && window.studio.ready === true && window.studio.inflight === 0")
        pg.wait_for_timeout(1500)
        pg.click("nav button[data-tab=translate]")
        times = pg.evaluate(_IN_PAGE, {"kind": "stroke", "n": n + 3})[3:]
        rows.append({"action": "browser: canvas stroke → actmap picture", "n": n, "p50_ms": round(pct(times, 0.5), 1),
                     "p95_ms": round(pct(times, 0.95), 1), "max_ms": round(max(times), 1), "server_p50_ms": None})
        pg.click("nav button[data-tab=edit]")
        pg.click("#ed-example")
        pg.wait_for_function("document.getElementById('ed-out').dataset.version && window.studio.inflight === 0")
        times = pg.evaluate(_IN_PAGE, {"kind": "slider", "n": n + 3})[3:]
        rows.append({"action": "browser: slider move → edited picture", "n": n, "p50_ms": round(pct(times, 0.5), 1),
                     "p95_ms": round(pct(times, 0.95), 1), "max_ms": round(max(times), 1), "server_p50_ms": None})
        b.close()
    return rows


def load(url: str, sessions: int = 20, per_session: int = 50) -> dict[str, Any]:
    """``sessions`` clients at once, each ``per_session`` requests: strokes, slider moves, generation."""
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    with httpx.Client(base_url=url, timeout=120) as c:
        c.headers[HEADER] = c.post("/api/session").json()["token"]
        sketch = picture_from(c.post("/api/example", json={"kind": "sketch", "seed": 2}).json()["picture"])
    drawn = strokes(sketch, per_session, seed=3)

    def worker(i: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=300) as c:
                c.headers[HEADER] = c.post("/api/session").json()["token"]
                c.post("/api/invert", json={"inverter": "e4e", "source": {"example": "face", "seed": 50 + i}})
                for k in range(per_session):
                    body, path = [({"method": "synthfaces-64-actmap", "source": {"data": drawn[k]}}, "/api/translate"),
                                  ({"strengths": {"synthfaces-64-smile": (k % 9 - 4) / 2}}, "/api/edit"),
                                  ({"seeds": [i * 100 + k], "psi": 0.7}, "/api/generate")][k % 3]
                    t0 = time.perf_counter()
                    r = c.post(path, json=body)
                    dt = (time.perf_counter() - t0) * 1e3
                    with lock:
                        lat.append(dt)
                        if r.status_code != 200:
                            errors.append(f"{path}: {r.status_code}")
        except Exception as e:
            with lock:
                errors.append(f"session {i}: {type(e).__name__}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"sessions": sessions, "requests_per_session": per_session, "requests": len(lat), "errors": len(errors),
            "first_errors": errors[:5], "seconds": round(wall, 1), "requests_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(pct(lat, 0.5), 1), "p95_ms": round(pct(lat, 0.95), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running studio (default: start one on a free port)")
    p.add_argument("--n", type=int, default=60, help="requests per action (default 60)")
    p.add_argument("--browser", action="store_true", help="also time stroke and slider in headless chromium")
    p.add_argument("--load", action="store_true", help="also run the 20 sessions × 50 requests load test")
    p.add_argument("--threads", type=int, default=0, help="the started server's torch threads (default: torch's)")
    args = p.parse_args()
    proc = None
    url = args.url
    if url is None:
        proc, url = start_server(args.threads)
    try:
        rows = actions(url, args.n)
        if args.browser:
            rows += browser(url, args.n)
        load_result = load(url) if args.load else None
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"studio at {url} — {machine_info()['cpu']}, {os.cpu_count()} CPUs; target ≤ {TARGET_MS:.0f} ms p95 for "
          "strokes and slider moves")
    print(f"{'action':44s} {'n':>4s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s} {'server p50':>11s}")
    for r in rows:
        server = f"{r['server_p50_ms']:.1f}" if r["server_p50_ms"] is not None else "—"
        print(f"{r['action']:44s} {r['n']:4d} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['max_ms']:8.1f} {server:>11s}")
    if load_result:
        lr = load_result
        print(f"load: {lr['sessions']} sessions × {lr['requests_per_session']} requests = {lr['requests']} in "
              f"{lr['seconds']} s ({lr['requests_per_s']} req/s), errors {lr['errors']}, p50 {lr['p50_ms']} ms, "
              f"p95 {lr['p95_ms']} ms (queued behind each other: one model call at a time)")
    path = write_results("studio", {"machine": machine_info(), "url": url, "actions": rows, "load": load_result})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
