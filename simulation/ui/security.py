"""What the web interface lets in: which address it binds, who logs in, which paths and uploads it accepts."""

from __future__ import annotations

import ipaddress
from pathlib import Path

LOOPBACK_NAMES = {"localhost"}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # profile files; a bigger one is refused before it is written


class UIError(ValueError):
    """A request the interface refuses, with a one-line reason for the user."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``USER:PASSWORD`` (None: no login)."""
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise UIError("--auth: expected USER:PASSWORD, both non-empty")
    return user, password


def check_bind(host: str, auth: tuple[str, str] | None) -> None:
    """Any address other than loopback needs a login: the page starts runs and trains models."""
    if not is_loopback(host) and auth is None:
        raise UIError(f"--host {host}: the interface would be reachable from other machines; give --auth USER:PASSWORD "
                      "(or keep the default 127.0.0.1)")


class PathGuard:
    """Confines typed or uploaded paths to a set of root folders (the runs folder, the scenario roots)."""

    def __init__(self, roots: list[Path]):
        self.roots = [Path(r).resolve() for r in roots]

    def resolve(self, text: str, what: str = "path") -> Path:
        """The real path ``text`` names, relative to the first root unless absolute; refused when it
        leaves every root (``..``, an absolute path elsewhere, a symlink pointing out)."""
        raw = (text or "").strip()
        if not raw:
            raise UIError(f"{what}: empty")
        p = Path(raw)
        if ".." in p.parts:
            raise UIError(f"{what}: '..' is not allowed ({raw})")
        if p.is_absolute():
            c = p
        else:  # the first root that has it, else the first root
            c = next((root / p for root in self.roots if (root / p).exists()), self.roots[0] / p)
        real = c.resolve()  # follows symlinks: one pointing out of the roots is refused here
        if not self.inside(real):
            raise UIError(f"{what}: {raw} is outside the folders this interface serves "
                          f"({', '.join(str(r) for r in self.roots)})")
        return real

    def inside(self, path: Path) -> bool:
        real = Path(path).resolve()
        return any(real == root or real.is_relative_to(root) for root in self.roots)


def check_upload(name: str, size: int) -> None:
    """An uploaded file must be small and a profile format GenSim reads."""
    if size > MAX_UPLOAD_BYTES:
        raise UIError(f"upload {name}: {size / 1e6:.1f} MB is over the {MAX_UPLOAD_BYTES / 1e6:.0f} MB limit")
    if not name.lower().endswith((".json", ".jsonl", ".csv", ".yaml", ".yml")):
        raise UIError(f"upload {name}: expected a .json, .jsonl, .csv or .yaml profile file")
