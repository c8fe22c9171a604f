"""Locations that fail are one-line errors (issue 10, item 9).

Every command that writes, given an output it cannot use (a parent that cannot be created, a file
in the way, a special filesystem, no permission), exits 2 with one line naming the location; the
Python API raises the project's errors (:class:`StorageError`, :class:`ReadOnlyError`, both
``OSError``). The same for storage URLs on a loopback S3 server: a bucket that does not exist,
refused credentials and an endpoint that does not answer, for info, verify, open and copy (to and
from).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import actstore
from actstore.cli import main
from actstore.errors import ActstoreError, StorageError
from tests._fixtures.store import make_synthetic, write_synthetic

_SRC = str(Path(actstore.__file__).resolve().parents[1])

RUN_CONFIG = """
name = "loc"
[[prompt_sets]]
name = "arith"
[[prompt_sets.sources]]
generator = "multiplication"
n = 4
[extract]
layers = [0]
dtype = "float32"
device = "cpu"
[[probes]]
name = "last"
prompt_set = "arith"
target = "value"
cv = 2
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_qwen2_dir: Path) -> Path:
    from actstore.analysis import fit_probes, save_probes

    work = tmp_path_factory.mktemp("locations")
    write_synthetic(work / "c.zarr", make_synthetic())
    save_probes(
        fit_probes(work / "c.zarr", prompt_set="arith", target="value", cv=3),
        work / "c.zarr",
        name="v",
    )
    (work / "afile").write_text("a file, not a folder\n")
    (work / "run.toml").write_text(RUN_CONFIG)
    shutil.copytree(tiny_qwen2_dir, work / "model")
    ro = work / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return work


_PROBES = ("--probes", "v", "--prompt-set", "arith", "--target", "value")

#: command -> how its output location goes on the line (OUT is replaced)
COMMANDS = {
    "extract": ("extract", "--model", "model", "--prompts", "multiplication", "--n", "3",
                "--layers", "0", "--device", "cpu", "--out", "OUT"),
    "copy": ("copy", "c.zarr", "OUT"),
    "copy-zip": ("copy", "c.zarr", "OUT.zip"),
    "run": ("run", "run.toml", "--model", "model", "--out", "OUT"),
    "demo": ("demo", "--out", "OUT", "--model-cache", "models"),
    "probe-fit-npz": ("probe", "fit", "c.zarr", "--prompt-set", "arith", "--target", "value",
                      "--out", "OUT/p.npz"),
    "probe-fit-zarr": ("probe", "fit", "c.zarr", "--prompt-set", "arith", "--target", "value",
                       "--out", "OUT/p.zarr"),
    "plot": ("plot", "c.zarr", *_PROBES, "--out", "OUT"),
    "report": ("report", "c.zarr", *_PROBES, "--out", "OUT"),
    "prompts-write": ("prompts", "write", "multiplication", "OUT/p.jsonl"),
}  # fmt: skip

#: bad output locations: a parent that cannot be created (in /proc), a file in the way, a
#: special file as a folder, a read-only pseudo filesystem
BAD = {
    "no-parent": f"/proc/actstore-{uuid.uuid4().hex[:8]}/out",
    "file-in-the-way": "afile/out",
    "special-file": "/dev/null/out",
    "pseudo-fs": f"/sys/actstore-{uuid.uuid4().hex[:8]}",
}


def _args(command: str, out: str) -> list[str]:
    return [a.replace("OUT", out) for a in COMMANDS[command]]


def _check_one_line(code: int, stderr: str, location: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("actstore: error: expected "), lines[0]
    assert location in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("where", list(BAD))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_writing_command_names_a_bad_location(
    work: Path, command: str, where: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(work)
    out = BAD[where]
    code = main(_args(command, out))
    _check_one_line(code, capsys.readouterr().err, out)


def _without_permission() -> list[str]:
    """A prefix that runs a command without the right to write where its mode bits forbid it.

    As root the mode bits do not bind, so the process drops CAP_DAC_OVERRIDE (root keeps owning
    its files, but no longer writes into a read-only folder).
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no way to drop the right to write")
    probe = subprocess.run(
        [setpriv, "--bounding-set=-dac_override,-dac_read_search", "true"], check=False
    )
    if probe.returncode != 0:
        pytest.skip("setpriv cannot drop CAP_DAC_OVERRIDE here (no CAP_SETPCAP)")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize(
    "command",
    [
        "copy",
        "report",
        # the same code paths as above, each a process of its own: `make test-slow`
        *(pytest.param(c, marks=pytest.mark.slow) for c in ("probe-fit-npz", "prompts-write")),
        *(pytest.param(c, marks=pytest.mark.slow) for c in ("run", "demo")),
    ],
)
def test_no_permission_is_one_line(work: Path, command: str) -> None:
    prefix = _without_permission()
    out = "ro" if command in ("probe-fit-npz", "prompts-write") else "ro/out"  # files: in ro/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "actstore", *_args(command, out)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    line = _check_one_line(proc.returncode, proc.stderr, out)
    assert "ermission" in line or "writable" in line, line


def test_write_into_a_cache_without_permission(work: Path, tmp_path: Path) -> None:
    """detect and probe fit write into the cache itself: a cache the user cannot write."""
    prefix = _without_permission()
    cache = tmp_path / "locked.zarr"
    shutil.copytree(work / "c.zarr", cache)
    for d, _, files in os.walk(cache):
        os.chmod(d, 0o555)
        for f in files:
            os.chmod(Path(d) / f, 0o444)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    try:
        for args in (
            ["probe", "fit", str(cache), "--prompt-set", "arith", "--target", "value"],
            ["detect", str(cache), *_PROBES],
        ):
            proc = subprocess.run(
                [*prefix, sys.executable, "-m", "actstore", *args],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            _check_one_line(proc.returncode, proc.stderr, "locked.zarr")
    finally:
        for d, _, _ in os.walk(cache):
            os.chmod(d, 0o755)


# -- the Python API raises the project's errors ---------------------------------------------------
def test_api_raises_project_errors(work: Path) -> None:
    from actstore.analysis import load_probes, save_probes, write_figures
    from actstore.experiment import parse_config
    from actstore.experiment._run import ExperimentRun
    from actstore.prompts import generate
    from actstore.prompts._io import write_jsonl
    from actstore.store import copy_cache, create_cache

    probes = load_probes(work / "c.zarr", name="v")
    bad = work / "afile" / "x"
    calls = {
        "create_cache": lambda: create_cache(bad),
        "copy_cache": lambda: copy_cache(work / "c.zarr", bad),
        "save_probes": lambda: save_probes(probes, f"{bad}.npz"),
        "write_figures": lambda: write_figures(probes, None, bad),
        "write_jsonl": lambda: write_jsonl(generate("multiplication", n=2), f"{bad}.jsonl"),
        "run": lambda: ExperimentRun(
            parse_config(__import__("tomllib").loads(RUN_CONFIG)), out=bad, log=lambda s: None
        ).run(),
    }
    for name, call in calls.items():
        with pytest.raises(StorageError) as info:
            call()
        assert isinstance(info.value, OSError), name
        assert "a file is in the way" in str(info.value), (name, str(info.value))
        assert isinstance(info.value.__cause__, NotADirectoryError), name


# -- storage URLs on a loopback S3 server -------------------------------------------------------
@pytest.fixture(scope="module")
def s3(s3_server) -> str:
    """Endpoint of the shared loopback S3 server (bucket ``caches``)."""
    return s3_server.endpoint


def _options(endpoint: str, key: str = "testing") -> dict:
    return {
        "key": key,
        "secret": key,
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "config_kwargs": {"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 1}},
        "skip_instance_cache": True,
    }


def _closed_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


@pytest.fixture
def refusing(s3: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The same server, checking credentials (moto accepts any until told otherwise)."""
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    return s3


def _remote_cases(endpoint: str, dead: str) -> dict[str, tuple[str, dict, str]]:
    return {
        "missing-bucket": (f"s3://nobucket-{uuid.uuid4().hex[:6]}/c.zarr", _options(endpoint),
                           "the bucket does not exist"),
        "refused-credentials": ("s3://caches/c.zarr", _options(endpoint, "wrong"),
                                "refused the credentials"),
        "no-endpoint": ("s3://caches/c.zarr", _options(dead), "the endpoint does not answer"),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["missing-bucket", "refused-credentials", "no-endpoint"])
def test_remote_failures_are_one_line(
    work: Path, s3: str, case: str, request, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import json

    if case == "refused-credentials":
        request.getfixturevalue("refusing")
    url, options, reason = _remote_cases(s3, _closed_port())[case]
    so = json.dumps(options)
    monkeypatch.chdir(work)
    for args in (
        ["info", url, "--storage-options", so],
        ["verify", url, "--storage-options", so],
        ["copy", "c.zarr", url, "--dst-storage-options", so],
        ["copy", url, f"back-{uuid.uuid4().hex[:6]}.zarr", "--storage-options", so],
    ):
        line = _check_one_line(main(args), capsys.readouterr().err, url)
        assert reason in line, (args[0], line)


@pytest.mark.parametrize("case", ["missing-bucket", "refused-credentials", "no-endpoint"])
def test_remote_failures_raise_storage_error(work: Path, s3: str, case: str, request) -> None:
    from actstore.store import copy_cache, open_cache, verify_cache

    if case == "refused-credentials":
        request.getfixturevalue("refusing")
    url, options, reason = _remote_cases(s3, _closed_port())[case]
    calls = [
        lambda: open_cache(url, storage_options=options),
        lambda: actstore.open(url, group="arith", storage_options=options),
        lambda: verify_cache(url, storage_options=options),
        lambda: copy_cache(work / "c.zarr", url, dst_storage_options=options),
    ]
    for call in calls:
        with pytest.raises(StorageError, match=reason) as info:
            call()
        assert isinstance(info.value, ActstoreError) and isinstance(info.value, OSError)
        assert url in str(info.value)
        assert info.value.__cause__ is not None  # --debug shows the storage library's error


def test_a_cache_without_read_permission(work: Path, tmp_path: Path) -> None:
    prefix = _without_permission()
    cache = tmp_path / "hidden.zarr"
    shutil.copytree(work / "c.zarr", cache)
    cache.chmod(0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "actstore", "info", str(cache)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        cache.chmod(0o755)
    line = _check_one_line(proc.returncode, proc.stderr, str(cache))
    assert "permission denied" in line and "expected a location to read" in line, line
