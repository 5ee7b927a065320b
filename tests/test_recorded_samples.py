"""Record fresh CPU traces with the project's own script (torch + VizTracer) and convert them."""

from __future__ import annotations

import subprocess
import sys

import chrome_checks
import pandas as pd
from conftest import ROOT

from tracekit.convert import convert


def test_record_script_output_converts_clean(tmp_path):
    rec = tmp_path / "rec"
    subprocess.run([sys.executable, str(ROOT / "sample_traces" / "record.py"), "--out", str(rec), "--models", "cnn"],
                   check=True, capture_output=True, timeout=600)
    files = sorted((rec / "cnn").glob("*.json.gz"))
    assert [f.name for f in files] == ["prof.json.gz", "prof_both.json.gz", "viz.json.gz", "viz_both.json.gz"]
    out = tmp_path / "out"
    summary = convert([rec / "cnn" / "prof.json.gz"], out)
    assert summary["conserved"]
    assert chrome_checks.check_trace(chrome_checks.load_trace(out / "trace.json")) == []
    ops = pd.read_parquet(out / "ops.parquet")
    conv = ops[ops["name"] == "aten::conv2d"]
    assert len(conv) == 4  # 2 Conv2d layers x 2 profiled steps
    assert sorted(pd.read_parquet(out / "steps.parquet")["step"]) == [2, 3]
    viz = convert([rec / "cnn" / "viz.json.gz"], tmp_path / "viz")
    assert viz["conserved"] and viz["sources"][0]["format"] == "viztracer"
