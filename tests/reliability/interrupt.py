"""Stop a real `uad` command (SIGTERM, Ctrl-C) part-way through its work and read what it says.

Run as a child, `python -m tests.reliability.interrupt CHILD MARKER VOLUME <uad args>` runs `uad`
with the scoring of the volume named VOLUME held: the child touches MARKER there and waits for a
signal, whose handler ends the wait. So the signal lands mid-way (after the earlier volumes' files,
before the rest), never before the command starts or after it ends, and no side sleeps a fixed
time. `stop_midway` drives the child and returns its exit code and stderr lines.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120.0  # the most either side waits for the other (a stuck child fails the test instead of hanging it)


def _child(marker: Path, volume: str, argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, whatever the parent ignores
    from core.commands.cli import main
    from core.evaluation.pipeline import ScoringPipeline

    score = ScoringPipeline.score

    def held(self, item, *args, **kwargs):
        if getattr(item, "name", None) == volume:
            marker.touch()
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:  # the signal's handler raises out of this sleep
                time.sleep(0.01)
            raise AssertionError(f"no signal came within {WAIT_S} s")
        return score(self, item, *args, **kwargs)

    ScoringPipeline.score = held
    return main(argv)


def stop_midway(argv: list[str], sig: signal.Signals, marker: Path, volume: str, cwd: Path) -> tuple[int, list[str]]:
    """Run `uad argv` in a child, send `sig` once it is scoring `volume`; (exit code, non-empty stderr lines)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.interrupt", "CHILD", str(marker), volume, *argv],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_S
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the child never reached {volume} (exit {proc.returncode}):\n{out}\n{err}")
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=WAIT_S)
    return proc.returncode, [line for line in err.splitlines() if line.strip()]


if __name__ == "__main__" and sys.argv[1:2] == ["CHILD"]:
    sys.exit(_child(Path(sys.argv[2]), sys.argv[3], sys.argv[4:]))
