"""The wheel: it installs the design card's top-level names and the one package, nothing else;
the dashboard ships inside it and the test helpers do not."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CARD_NAMES = {"crt_api.py", "continuous_loops.py", "ledger_client.py", "session_db.py"}


@pytest.mark.slow
def test_the_wheel_installs_only_the_card_names_and_the_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("crt_loops-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == CARD_NAMES | {"crt_loops", "heartbeat"}
    assert "crt_loops/dashboard/index.html" in names
    assert "crt_loops/dashboard/app.js" in names
    assert not [name for name in names if "support" in name.split("/") or "tests" in name]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "crt = crt_loops.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
