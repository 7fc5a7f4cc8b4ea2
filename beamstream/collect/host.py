"""Host identity: a name people read and an id that survives renames.

The hostname changes (renames, DHCP, containers); the id must not. It comes
from, in order: an explicit override (``--host_id`` / ``BEAMSTREAM_HOST_ID``),
the OS machine id (``/etc/machine-id``, hashed with an application key as
systemd asks, so the raw id never leaves the host), or an id generated on the
first run and stored in ``~/.config/beamstream/host_id``. Clones made without
resetting ``/etc/machine-id`` share it; give them an override.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOST_ID_ENV = "BEAMSTREAM_HOST_ID"
MACHINE_ID_PATHS = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_APP_KEY = b"beamstream-host-id-v1"


@dataclass(frozen=True)
class HostIdentity:
    hostname: str
    host_id: str
    source: str  # override | machine-id | stored | generated


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "beamstream"


def host_identity(
    override: str | None = None,
    machine_id_paths: Sequence[str] = MACHINE_ID_PATHS,
    state_dir: Path | None = None,
) -> HostIdentity:
    """The identity of this host; see the module docstring for the order."""
    hostname = socket.gethostname()
    override = override or os.environ.get(HOST_ID_ENV)
    if override:
        return HostIdentity(hostname, override.strip(), "override")
    for path in machine_id_paths:
        machine_id = _read(Path(path))
        if machine_id:
            digest = hmac.new(_APP_KEY, machine_id.encode(), hashlib.sha256).hexdigest()
            return HostIdentity(hostname, str(uuid.UUID(digest[:32])), "machine-id")
    stored = (state_dir or config_dir()) / "host_id"
    existing = _read(stored)
    if existing:
        return HostIdentity(hostname, existing, "stored")
    generated = str(uuid.uuid4())
    stored.parent.mkdir(parents=True, exist_ok=True)
    temporary = stored.with_name(f".host_id.{os.getpid()}")
    temporary.write_text(generated + "\n", encoding="utf-8")
    try:
        os.link(temporary, stored)  # fails if another process stored one first
    except FileExistsError:
        return HostIdentity(hostname, _read(stored) or generated, "stored")
    finally:
        temporary.unlink(missing_ok=True)
    return HostIdentity(hostname, generated, "generated")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return ""
