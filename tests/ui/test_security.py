"""The interface's gate: loopback unless a login is given, 401 without the login on the page and the API,
paths confined to the served folders, uploads checked before they are written."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from simulation.ui.security import MAX_UPLOAD_BYTES, PathGuard, UIError, check_bind, check_upload, parse_auth
from tests.ui.serving import serving


def test_non_loopback_host_needs_auth():
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", ("u", "p"))
    with pytest.raises(UIError, match="--auth"):
        check_bind("0.0.0.0", None)
    with pytest.raises(UIError, match="--auth"):
        check_bind("192.168.1.5", None)
    with pytest.raises(UIError, match="USER:PASSWORD"):
        parse_auth("nopassword")


def test_cli_refuses_a_public_host_without_auth_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "simulation.cli", "ui", "--host", "0.0.0.0", "--runs", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "GENSIM_DEBUG": ""})
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "--auth" in p.stderr
    assert "Traceback" not in p.stderr


def test_paths_are_confined(tmp_path):
    runs, scen, outside = tmp_path / "runs", tmp_path / "scen", tmp_path / "outside"
    for d in (runs, scen, outside):
        d.mkdir()
    (runs / "a").mkdir()
    (scen / "s").mkdir()
    (runs / "escape").symlink_to(outside)
    g = PathGuard([runs, scen])
    assert g.resolve("a") == (runs / "a").resolve()
    assert g.resolve(str(scen / "s")) == (scen / "s").resolve()
    assert g.resolve("s") == (scen / "s").resolve()
    for bad, why in (("../outside", r"'\.\.'"), ("a/../../outside", r"'\.\.'"), (str(outside), "outside"),
                     ("/etc/passwd", "outside"), ("escape", "outside"), ("escape/x", "outside"), ("", "empty")):
        with pytest.raises(UIError, match=why):
            g.resolve(bad)


def test_uploads_are_checked_before_they_are_written():
    check_upload("people.json", 1000)
    with pytest.raises(UIError, match="limit"):
        check_upload("people.json", MAX_UPLOAD_BYTES + 1)
    with pytest.raises(UIError, match="profile file"):
        check_upload("run.sh", 10)


def test_login_required_on_page_and_api(tmp_path):
    with serving(tmp_path / "runs", auth="ada:secret") as (url, _):
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.get("config").status_code == 401
            r = c.post("gradio_api/run/settings", json={"data": ["polling"]})
            assert r.status_code == 401
            assert c.post("login", data={"username": "ada", "password": "wrong"}).status_code == 400
            assert c.get("config").status_code == 401
            ok = c.post("login", data={"username": "ada", "password": "secret"})
            assert ok.status_code == 200
            assert c.get("config").status_code == 200


def test_oversized_upload_refused_by_the_server(tmp_path):
    with serving(tmp_path / "runs") as (url, ctx):
        big = b"[" + b" " * (MAX_UPLOAD_BYTES + 10) + b"]"
        r = httpx.post(url + "gradio_api/upload", files={"files": ("big.json", big, "application/json")}, timeout=60)
        assert r.status_code == 413
        assert not list(ctx.runs_dir.glob("uploads/*"))
