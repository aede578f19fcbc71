"""One Studio for the studio tests (loading every shipped model takes ~2 s; the tests share it), and a live server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the studio needs fastapi (pip install 'stylebridge[studio]')")
pytest.importorskip("uvicorn", reason="the studio needs uvicorn (pip install 'stylebridge[studio]')")


@pytest.fixture(scope="package", autouse=True)
def _stop_model_thread():
    """The studio's model thread slows torch on the test runner's thread while it lives: stop it after these tests."""
    from stylebridge.apps.studio.engine import shutdown_model_thread

    yield
    shutdown_model_thread()


@pytest.fixture(scope="package")
def studio():
    from stylebridge.apps.studio.engine import Studio

    s = Studio()
    s.warm_up()
    return s


class LiveServer:
    """The studio app served by uvicorn on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the studio server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="package")
def live_server(studio, tmp_path_factory):
    from stylebridge.apps.studio.server import Limits, create_app

    app = create_app(studio, Limits(max_bytes=2_000_000, max_pixels=2048 * 2048))
    with LiveServer(app) as srv:
        yield srv
    assert not Path(app.state.upload_dir).exists(), "the upload folder outlived the server"


@pytest.fixture(scope="package")
def face_png(tmp_path_factory, studio) -> Path:
    """A rendered face saved as a 256-px PNG (what a user uploads)."""
    from stylebridge.core.imageio import to_pil

    path = tmp_path_factory.mktemp("studio") / "face.png"
    to_pil(studio.example("face", 21, 256)).save(path)
    return path
