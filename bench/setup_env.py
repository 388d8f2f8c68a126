"""System packages (apt), the bench venv and the peers (pip).

Every install failure is recorded and reported, never fatal -- except wrk,
without which nothing can be measured.
"""
import json
import os
import shutil
import subprocess
import sys
from typing import Optional

from bench import REPO_ROOT, VENV_DIR, VENV_PY, WORK_DIR

APT_PACKAGES = ["wrk", "nginx-light", "libuv1-dev", "gcc", "g++", "libssl-dev", "libev-dev", "util-linux"]

# (status key, pip arguments).  luath is installed from the repository itself.
PEERS = [
    ("gunicorn", ["gunicorn"]),
    ("uvicorn", ["uvicorn[standard]", "httptools", "uvloop"]),
    ("granian", ["granian"]),
    ("fastpysgi", ["fastpysgi"]),
    ("bjoern", ["bjoern"]),
    ("freastal", ["freastal"]),
    ("matplotlib", ["matplotlib"]),
]

STATUS_FILE = WORK_DIR / "install-status.json"
INSTALL_LOG_DIR = WORK_DIR / "install"


def _dpkg_installed(pkg: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def ensure_apt(log=print) -> dict:
    if not shutil.which("dpkg-query"):
        log("not a Debian system: skipping apt; make sure wrk, nginx, gcc, libuv are present")
        return {}
    missing = [p for p in APT_PACKAGES if not _dpkg_installed(p)]
    if not missing:
        return {}
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        log(f"missing apt packages {missing} and not root: install them by hand")
        return {p: "missing (not root)" for p in missing}
    log(f"apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(prefix + ["apt-get", "update", "-qq"], env=env)
    r = subprocess.run(prefix + ["apt-get", "install", "-y", "-qq", *missing], env=env,
                       capture_output=True, text=True)
    result = {}
    for p in missing:
        if not _dpkg_installed(p):
            result[p] = "apt-get install failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
            log(f"  {p}: {result[p]}")
    return result


def _pip(args: list, log_name: str, timeout: int) -> Optional[str]:
    """Runs pip in the venv; returns None on success or a one-line reason."""
    INSTALL_LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = INSTALL_LOG_DIR / f"{log_name}.log"
    cmd = [str(VENV_PY), "-m", "pip", "install", "--disable-pip-version-check", *args]
    try:
        with open(log_path, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                               cwd=str(REPO_ROOT))
    except subprocess.TimeoutExpired:
        return f"pip timed out after {timeout}s (see {log_path.relative_to(REPO_ROOT)})"
    if r.returncode == 0:
        return None
    lines = [l.strip() for l in log_path.read_text(errors="replace").splitlines()
             if l.strip() and not l.startswith("WARNING: Location")]
    errs = [l for l in lines if "error" in l.lower()] or lines
    reason = errs[-1][:300] if errs else "unknown"
    return f"pip failed: {reason} (see {log_path.relative_to(REPO_ROOT)})"


def ensure_venv(log=print) -> Optional[str]:
    if VENV_PY.exists():
        return None
    log(f"creating venv {VENV_DIR.relative_to(REPO_ROOT)}")
    r = subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return "venv creation failed: " + r.stderr.strip()[-300:]
    _pip(["-q", "-U", "pip", "wheel"], "pip", 600)
    return None


def install_all(log=print, luath: bool = True) -> dict:
    """Installs each peer separately; returns {name: None | reason}."""
    status = {}
    for name, args in PEERS:
        log(f"pip install {' '.join(args)}")
        status[name] = _pip(["-U", *args], name, 900)
        if status[name]:
            log(f"  FAILED: {status[name]}")
    if luath:
        log(f"pip install {REPO_ROOT} (luath; build dir bench/.work/luath-build)")
        build_dir = WORK_DIR / "luath-build"
        status["luath"] = _pip(["--force-reinstall", "--no-deps",
                                f"--config-settings=build-dir={build_dir}",
                                str(REPO_ROOT)], "luath", 1800)
        if status["luath"]:
            log(f"  FAILED: {status['luath']}")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    STATUS_FILE.write_text(json.dumps(status, indent=1))
    return status


def load_status() -> dict:
    try:
        return json.loads(STATUS_FILE.read_text())
    except (OSError, ValueError):
        return {}


def versions() -> dict:
    """Versions of the peers installed in the venv (None if absent)."""
    if not VENV_PY.exists():
        return {}
    code = ("import json, importlib.metadata as m\n"
            "out = {}\n"
            "for d in ['luath','gunicorn','uvicorn','uvloop','httptools','granian','fastpysgi',"
            "'bjoern','freastal','matplotlib']:\n"
            "    try: out[d] = m.version(d)\n"
            "    except Exception: out[d] = None\n"
            "print(json.dumps(out))\n")
    r = subprocess.run([str(VENV_PY), "-c", code], capture_output=True, text=True,
                       cwd="/")
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {}
