"""The command line: options, LUATH_* environment variables, --env-file, --log-config, --factory,
--reload, and one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from luath import cli
from tests.apps.proc import HOST, REPO_ROOT, Load, Proc, env, free_port, luath, request, wait_serving
from tests.conftest import SERVER_KIND

pytestmark = pytest.mark.skipif(SERVER_KIND != "luath", reason="luath's own CLI")

OPS = "tests.apps.ops:app"


def run_cli(*args, timeout=60, **envvars):
    return subprocess.run(luath(*args), cwd=str(REPO_ROOT), env=env(**envvars), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        p.kill()


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("luath ")


def test_help_is_grouped():
    r = run_cli("--help")
    assert r.returncode == 0
    for group in ("application:", "socket:", "processes:", "limits", "timeouts", "proxy:", "logging:"):
        assert group in r.stdout, group
    for opt in ("--uds", "--fd", "--max-requests-jitter", "--reload-dir", "--access-log-format",
                "--forwarded-allow-ips", "--env-file", "--log-config", "LUATH_"):
        assert opt in r.stdout, opt


@pytest.mark.parametrize("args", [
    ("--port", "notaport"), ("--port", "70000"), ("--workers", "0"), ("--uds-mode", "999"),
    ("--timeout-keep-alive", "-1"), ("--interface", "cgi"), ("--no-such-option",),
])
def test_bad_option_exits_2_with_a_reason(args):
    r = run_cli(OPS, *args)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("luath: error: "), r.stderr


def test_bad_environment_variable_names_it():
    r = run_cli(OPS, LUATH_WORKERS="many")
    assert r.returncode == 2
    assert "LUATH_WORKERS" in r.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("spec,needle", [
    ("tests.apps.no_such_module:app", "ModuleNotFoundError"),
    ("tests.apps.ops:no_such_attr", "no attribute"),
    ("no-colon", "module:attribute"),
])
def test_app_that_fails_to_import_is_one_line(spec, needle, workers):
    r = run_cli(spec, "--port", str(free_port()), "--workers", workers)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("luath: cannot load") and needle in lines[0], r.stderr


def test_app_with_a_syntax_error_is_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("def app(:\n")
    r = subprocess.run(luath("broken:app", "--port", str(free_port()), "--workers", "2"), cwd=tmp_path,
                       env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "SyntaxError" in r.stderr


def test_environment_variables_and_cli_precedence(procs, tmp_path):
    port, other = free_port(), free_port()
    p = Proc(luath("--port", str(port)), tmp_path, LUATH_APP=OPS, LUATH_PORT=str(other),
             LUATH_HOST=HOST, LUATH_PROXY_HEADERS="yes", LUATH_FORWARDED_ALLOW_IPS="*")
    procs.append(p)
    wait_serving((HOST, port), p)  # the command line's port wins over LUATH_PORT
    env_ = json.loads(request((HOST, port), "/env", headers={"X-Forwarded-For": "203.0.113.9"})[1])
    assert env_["REMOTE_ADDR"] == "203.0.113.9"  # LUATH_PROXY_HEADERS and LUATH_FORWARDED_ALLOW_IPS


def test_parse_args_reads_environment(monkeypatch):
    monkeypatch.setenv("LUATH_WORKERS", "auto")
    monkeypatch.setenv("LUATH_ACCESS_LOG", "1")
    monkeypatch.setenv("LUATH_FD", "3,4")
    monkeypatch.setenv("LUATH_TIMEOUT_KEEP_ALIVE", "2.5")
    args = cli.parse_args([OPS, "--no-access-log"])
    assert args.workers >= 1 and args.fd == [3, 4] and args.timeout_keep_alive == 2.5
    assert args.access_log is False  # the command line wins


def test_env_file(procs, tmp_path):
    ef = tmp_path / "app.env"
    ef.write_text("# settings\nexport LUATH_TEST_VAR='from file'\nOTHER=\"a\\nb\"\n\nLUATH_WORKERS=2\n")
    port = free_port()
    p = Proc(luath(OPS, "--port", str(port), "--env-file", str(ef)), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    assert json.loads(request((HOST, port), "/env")[1])["var"] == "from file"
    assert "(2 workers)" in p.stderr()  # LUATH_* in the env file configure luath too


def test_env_file_parser(tmp_path):
    ef = tmp_path / "x.env"
    ef.write_text("A=1\nB = two words # comment\nC='#not a comment'\n")
    target: dict = {}
    assert cli.load_env_file(str(ef), target) == {"A": "1", "B": "two words", "C": "#not a comment"}
    ef.write_text("no equals sign\n")
    with pytest.raises(ValueError, match="x.env:1"):
        cli.load_env_file(str(ef), {})


def test_factory(procs, tmp_path):
    port = free_port()
    p = Proc(luath("tests.apps.ops:factory", "--factory", "--port", str(port), "--workers", "2"), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)


@pytest.mark.parametrize("kind", ["json", "ini"])
def test_log_config(procs, tmp_path, kind):
    log = tmp_path / "out.log"
    if kind == "json":
        conf = tmp_path / "log.json"
        conf.write_text(json.dumps({
            "version": 1,
            "formatters": {"f": {"format": "CUSTOM %(name)s %(message)s"}},
            "handlers": {"h": {"class": "logging.FileHandler", "filename": str(log), "formatter": "f"}},
            "loggers": {"luath": {"handlers": ["h"], "level": "INFO", "propagate": False}},
        }))
    else:
        conf = tmp_path / "log.ini"
        conf.write_text(
            "[loggers]\nkeys=root,luath\n[handlers]\nkeys=h\n[formatters]\nkeys=f\n"
            "[logger_root]\nlevel=WARNING\nhandlers=\n"
            "[logger_luath]\nlevel=INFO\nhandlers=h\nqualname=luath\npropagate=0\n"
            f"[handler_h]\nclass=FileHandler\nformatter=f\nargs=({str(log)!r},)\n"
            "[formatter_f]\nformat=CUSTOM %(name)s %(message)s\n")
    port = free_port()
    p = Proc(luath(OPS, "--port", str(port), "--log-config", str(conf), "--access-log"), tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    request((HOST, port), "/logged")
    deadline = time.monotonic() + 10
    while "/logged" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    text = log.read_text()
    assert "CUSTOM luath.error luath listening" in text and "CUSTOM luath.access 127.0.0.1" in text


def test_bad_log_config_is_one_line(tmp_path):
    conf = tmp_path / "bad.json"
    conf.write_text("{not json")
    r = run_cli(OPS, "--port", str(free_port()), "--log-config", str(conf))
    assert r.returncode == 2 and r.stderr.strip().startswith("luath: cannot use log config"), r.stderr


def _write(path, version):
    path.write_text(f"VERSION = {version!r}\n"
                    "def app(environ, start_response):\n"
                    "    start_response('200 OK', [('Content-Length', str(len(VERSION)))])\n"
                    "    return [VERSION.encode()]\n")


def test_reload_restarts_on_change(procs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "relapp.py", "one")
    port = free_port()
    p = Proc(luath("relapp:app", "--port", str(port), "--reload", "--reload-dir", str(src)), tmp_path, cwd=src)
    procs.append(p)
    assert wait_serving((HOST, port), p) == b"one"
    load = Load((HOST, port), threads=2)
    try:
        load.wait_more(10)
        time.sleep(0.1)
        _write(src / "relapp.py", "two!")
        deadline = time.monotonic() + 20
        while request((HOST, port))[1] != b"two!":
            assert time.monotonic() < deadline, p.stderr()[-3000:]
            time.sleep(0.1)
        # a broken save: the server fails to start; the next good save brings it back on the same port
        (src / "relapp.py").write_text("def app(:\n")
        p.wait_log("SyntaxError")
        _write(src / "relapp.py", "three")
        deadline = time.monotonic() + 20
        while True:
            try:
                if request((HOST, port), timeout=2)[1] == b"three":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, p.stderr()[-3000:]
            time.sleep(0.1)
    finally:
        load.stop()
    assert "relapp.py changed; restarting" in p.stderr()
    p.signal(signal.SIGTERM)
    assert p.wait(15) == 0


def test_python_api_serve_by_name(procs, tmp_path):
    port = free_port()
    code = (f"import luath; luath.serve('tests.apps.ops:app', host='127.0.0.1', port={port}, workers=2, "
            "access_log=True, proxy_headers=True)")
    p = Proc([sys.executable, "-c", code], tmp_path)
    procs.append(p)
    wait_serving((HOST, port), p)
    env_ = json.loads(request((HOST, port), "/env", headers={"X-Forwarded-For": "198.51.100.1"})[1])
    assert env_["REMOTE_ADDR"] == "198.51.100.1"
    p.wait_log("GET /env HTTP/1.1", stdout=True)
