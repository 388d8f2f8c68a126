"""luath side-by-side benchmark harness.  Run ``python3 -m bench --help``.

The harness itself uses only the standard library, so it runs under any
Python 3.11+; the servers run from the venv it creates in bench/.venv.
"""
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
VENV_DIR = BENCH_DIR / ".venv"
VENV_PY = VENV_DIR / "bin" / "python"
RESULTS_DIR = BENCH_DIR / "results"
LUA_DIR = BENCH_DIR / "lua"
