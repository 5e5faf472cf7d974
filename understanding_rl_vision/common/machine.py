"""What this machine has left: memory (with cgroup limits) and disk, read before a run commits
to a size."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

UNITS = ("B", "KB", "MB", "GB", "TB", "PB", "EB")


def available_memory() -> int | None:
    """Bytes this process could still take: MemAvailable (or the free pages), less for a cgroup's
    limit if that is tighter; None where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    cgroup = _cgroup_available()
    if cgroup is not None:
        found.append(cgroup)
    return min(found) if found else None


def _cgroup_available() -> int | None:
    """Room left under the tightest memory limit of this process's cgroup and its ancestors
    (v2), or of its v1 memory cgroup; page cache it may drop counts as room."""
    root = Path("/sys/fs/cgroup")
    rooms = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    own = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), None)
    if own is not None:  # v2: walk up from our cgroup to the root of the hierarchy we can see
        folder = root / own.lstrip("/")
        for candidate in [folder, *folder.parents]:
            if candidate == root.parent:
                break
            room = _room(
                candidate / "memory.max", candidate / "memory.current", candidate / "memory.stat", "inactive_file"
            )
            if room is not None:
                rooms.append(room)
    v1 = root / "memory"
    room = _room(v1 / "memory.limit_in_bytes", v1 / "memory.usage_in_bytes", v1 / "memory.stat", "total_inactive_file")
    if room is not None:
        rooms.append(room)
    return min(rooms) if rooms else None


def _room(limit_file: Path, usage_file: Path, stat_file: Path, reclaimable: str) -> int | None:
    try:
        limit = limit_file.read_text().strip()
        if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as a huge number
            return None
        usage = int(usage_file.read_text().strip())
    except (OSError, ValueError):
        return None
    dropped = 0
    try:
        for line in stat_file.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == reclaimable:
                dropped = int(value)
    except (OSError, ValueError):
        pass
    return max(0, int(limit) - usage + dropped)


def resident_memory() -> int:
    """This process's resident bytes now (0 where that cannot be read)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def free_disk(path: str | os.PathLike[str]) -> tuple[int, int, Path]:
    """(device, free bytes, folder) of the nearest existing folder at or above ``path``."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.stat(folder).st_dev, shutil.disk_usage(folder).free, folder


def format_bytes(n: int) -> str:
    """1.2 TB, 21 GB, 850 MB (decimal units, as disks and ``free -h`` write them)."""
    if n >= 10**24:
        return f"10^{len(str(n)) - 1} B"
    value, unit = float(n), 0
    while value >= 1000 and unit < len(UNITS) - 1:
        value, unit = value / 1000, unit + 1
    if value < 10 and unit:
        return f"{value:.1f} {UNITS[unit]}"
    return f"{value:,.0f} {UNITS[unit]}"
