"""`stylebridge studio --port N`: serves the page on 127.0.0.1:N from the command line, and stops cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from stylebridge.apps.cli import main

httpx = pytest.importorskip("httpx")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _other_address() -> str | None:
    """A non-loopback address of this machine, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


@pytest.mark.integration
def test_studio_command_serves_the_page_on_localhost_only():
    port = _free_port()
    before = set(Path(tempfile.gettempdir()).glob("stylebridge-studio-*"))
    proc = subprocess.Popen([sys.executable, "-m", "stylebridge", "studio", "--port", str(port), "--model",
                             "synthfaces-64", "synthfaces-64-actmap"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                page = httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the studio did not answer"
                time.sleep(0.2)
        assert page.status_code == 200 and "<title>stylebridge studio</title>" in page.text
        with httpx.Client(base_url=url) as c:
            info = c.post("/api/session").json()
            assert [t["name"] for t in info["info"]["translators"]] == ["synthfaces-64-actmap"]
            r = c.post("/api/generate", json={"seeds": [1]}, headers={"X-Studio-Session": info["token"]})
            assert r.status_code == 200 and r.json()["images"][0].startswith("data:image/png")
        other = _other_address()
        if other:
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://{other}:{port}/", timeout=2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert f"studio: http://127.0.0.1:{port}/" in out
    assert proc.returncode in (0, 130), out
    assert set(Path(tempfile.gettempdir()).glob("stylebridge-studio-*")) <= before  # its upload folder is gone


def test_studio_command_refuses_bad_arguments(capsys):
    assert main(["studio", "--port", "70000"]) == 2
    assert "--port must be in [1, 65535]" in capsys.readouterr().err
    assert main(["studio", "--max-upload-mb", "0"]) == 2
    assert "must be finite numbers >= 0.01" in capsys.readouterr().err
    assert main(["studio", "--max-upload-mb", "inf"]) == 2
    assert main(["studio", "--threads", "-1"]) == 2
    assert "--threads must be >= 0" in capsys.readouterr().err
    assert main(["studio", "--model", "no-such-model-anywhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-model-anywhere" in err[0]
