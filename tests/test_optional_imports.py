"""Optional dependencies are imported where their feature runs, not by every command."""

from __future__ import annotations

import subprocess
import sys

_BLOCK = """
import builtins, sys
real = builtins.__import__
def guard(name, *a, **k):
    if name.split(".")[0] == {name!r}:
        raise ImportError("blocked by the test: " + name)
    return real(name, *a, **k)
builtins.__import__ = guard
"""


def _run(block: str, body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK.format(name=block) + body],
                          capture_output=True, text=True)


def test_online_predict_and_evaluate_import_without_higra():
    proc = _run("higra", "import osvos_pl.stages.online, osvos_pl.predict, osvos_pl.evaluate\n"
                         "print('higra' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_snapping_without_higra_says_what_to_install():
    proc = _run("higra", "import numpy as np\nfrom osvos_pl.snapping import superpixels\n"
                         "superpixels(np.zeros((8, 8)))")
    assert proc.returncode != 0
    assert "boundary snapping needs higra (pip install higra)" in proc.stderr
