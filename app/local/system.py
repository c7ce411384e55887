"""Machine-level helpers for the services cityrisk provisions itself (PostGIS, Mosquitto):
running commands with a one-line error, root/sudo, and apt installs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

Log = Callable[[str], None]
ErrorType = Callable[[str], Exception]


def is_root() -> bool:
    return os.geteuid() == 0


def run(
    cmd: Sequence[str],
    *,
    error: ErrorType,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; on failure raise ``error`` with the command and the last lines it printed."""
    proc = subprocess.run(
        list(cmd), env=env, input=input_text, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise error(f"`{' '.join(cmd)}` failed: {' | '.join(tail)}")
    return proc


def apt_install(packages: Sequence[str], *, log: Log, error: ErrorType, why: str) -> None:
    """``apt-get install`` (with ``sudo`` unless root), after an ``apt-get update``.

    ``why`` completes the sentence "… is not installed and this machine has no apt-get".
    """
    if shutil.which("apt-get") is None:
        raise error(f"{why} is not installed and this machine has no apt-get")
    if not is_root() and shutil.which("sudo") is None:
        raise error(f"installing {why} needs root: run as root or install sudo")
    sudo = [] if is_root() else ["sudo"]
    apt = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"installing {', '.join(packages)} with apt-get (once)")
    run([*apt, "update", "-q"], error=error, env=env)
    run([*apt, "install", "-y", "-q", "--no-install-recommends", *packages], error=error, env=env)
