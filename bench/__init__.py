"""luath side-by-side benchmark harness.  Run ``python3 -m bench --help``.

The harness itself uses only the standard library, so it runs under any
Python 3.11+; the servers run from the venv it creates in bench/.venv.
"""
import subprocess
from pathlib import Path
from typing import Optional

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
VENV_DIR = BENCH_DIR / ".venv"
VENV_PY = VENV_DIR / "bin" / "python"
RESULTS_DIR = BENCH_DIR / "results"
LUA_DIR = BENCH_DIR / "lua"


def build_tool(binary: Path, sources, cmd: list, log=print) -> Optional[str]:
    """Compile one of the harness's C/C++ tools with `cmd` unless `binary` is newer than every file in
    `sources`; returns an error string or None."""
    if binary.exists() and all(binary.stat().st_mtime >= Path(s).stat().st_mtime for s in sources):
        return None
    binary.parent.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{cmd[0]} failed: {e}"
    if r.returncode != 0:
        return f"{cmd[0]} failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    log(f"built {binary.relative_to(REPO_ROOT)}")
    return None
