"""fedopt installed as a wheel into a fresh environment, used from a folder outside the checkout.

The wheel is built from a copy of the sources and installed with pip into a new virtual
environment; its dependencies come from the test environment (a path file), so nothing is
downloaded.  Then ``fedopt setup`` and ``fedopt dashboard`` must work from an unrelated folder,
and the dashboard must draw its Overview in Chromium.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.browser.helpers import free_port
from tests.support import REPO_ROOT

pytestmark = pytest.mark.browser

SOURCES = ["pyproject.toml", "README.md", "fedopt_core", "fedopt_dashboard"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the fedopt wheel installed; returns its bin/ folder."""
    root = tmp_path_factory.mktemp("installed")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(source, src / name)
    dist = root / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = dist.glob("fedopt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in [
        "fedopt_core/data/gpu_catalog.csv",
        "fedopt_core/data/lambda_instance_types.csv",
        "fedopt_core/migrations/env.py",
        "fedopt_dashboard/streamlit_app.py",
        "fedopt_dashboard/pages/predict.py",
    ]:
        assert shipped in names, f"{shipped} is missing from the wheel"
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    target = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    # The dependencies (streamlit, pandas, ...) come from the test environment, not from the network.
    (target / "fedopt-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    return venv / "bin"


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    probe = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import fedopt_core, fedopt_dashboard; print(fedopt_core.__file__); "
            "print(fedopt_dashboard.__file__); from fedopt_core import PerformancePredictor, track",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    for line in probe.stdout.splitlines():
        assert str(installed.parent) in line and str(REPO_ROOT) not in line, probe.stdout


def test_setup_and_the_dashboard_run_outside_the_checkout(installed: Path, tmp_path: Path, browser) -> None:
    work, home = tmp_path / "somewhere-else", tmp_path / "home"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FEDOPT_HOME": str(home), "FEDOPT_RETRAIN_EVERY": "1000000"}
    setup = subprocess.run(
        [str(installed / "fedopt"), "setup"], capture_output=True, text=True, cwd=work, env=env, timeout=300
    )
    assert setup.returncode == 0, setup.stderr
    assert "database ready" in setup.stdout and (home / "fedopt.db").is_file()
    listed = subprocess.run(
        [str(installed / "fedopt"), "platforms", "list", "--json"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=120,
    )
    assert listed.returncode == 0 and '"instance_type": "gpu_8x_h100_sxm5"' in listed.stdout, listed.stderr

    port = free_port()
    log = (tmp_path / "dashboard.log").open("w")
    server = subprocess.Popen(
        [str(installed / "fedopt"), "dashboard", "--port", str(port), "--address", "127.0.0.1"],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("the installed dashboard did not start: " + (tmp_path / "dashboard.log").read_text())
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
        page.get_by_role("heading", name="fedopt").first.wait_for(timeout=60_000)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("GPU platforms", exact=False).first.wait_for(timeout=30_000)
        assert page.get_by_test_id("stException").count() == 0
        page.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
