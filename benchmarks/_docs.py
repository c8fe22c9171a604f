"""Write a benchmark's table into a docs page between ``<!-- BEGIN name -->`` / ``<!-- END name -->``."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def machine() -> str:
    """CPU model, cores and load average: the machine a table was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0 and out.stdout.strip():
            gpu = f", GPU {out.stdout.strip().splitlines()[0]}"
    except (OSError, subprocess.SubprocessError):
        pass
    load = os.getloadavg()
    return f"{cpu}, {os.cpu_count()} cores{gpu}; load average {load[0]:.2f} / {load[1]:.2f}"


def write_section(page: str, name: str, text: str) -> Path:
    """Replace (or append) the marked section *name* of ``docs/<page>`` with *text*."""
    path = DOCS / page
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    old = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip() + ("\n\n" if old else "") + block + "\n"
    path.write_text(new)
    return path
