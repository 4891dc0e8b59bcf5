"""export/bench.py runs on the shipped default through the front door (a smoke run: it prints figures, asserts none)."""

import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "export" / "bench.py"


def test_bench_prints_a_row_per_backend_and_batch(monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(sys, "argv", ["bench.py", "--seconds", "0.2", "--batches", "1,2", "--mixed",
                                      "--backends", "torch,ort,ort-lengths", "--repeats", "1"])
    runpy.run_path(str(BENCH), run_name="__main__")
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith(("pytorch", "onnxruntime"))]
    assert sorted((" ".join(row[:-7]), row[-7]) for row in rows) == [
        ("onnxruntime CPU (folded)", "1"), ("onnxruntime CPU (folded)", "2"),
        ("onnxruntime CPU (folded, lengths)", "1"), ("onnxruntime CPU (folded, lengths)", "2"),
        ("pytorch (hoisted)", "1"), ("pytorch (hoisted)", "2")]
    assert all(float(row[-4]) > 0 for row in rows)  # item-seconds per second


def test_bench_refuses_an_unknown_backend(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--backends", "torch,tensorrt"])
    with pytest.raises(SystemExit, match="unknown backend.*tensorrt"):
        runpy.run_path(str(BENCH), run_name="__main__")
