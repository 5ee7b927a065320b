"""tracekit report and the CLI conventions, without a browser: offline page, model data, tree table, -h, -o."""

from __future__ import annotations

import io
import json
import re

import pytest
from click.testing import CliRunner

from tests.conftest import SAMPLES, shared
from tracekit.cli import main
from tracekit.modules.table import module_table
from tracekit.modules.view import step_time_ns, tree_view
from tracekit.pipeline import process, read_inputs
from tracekit.progress import progress_steps
from tracekit.report.model import model_graph

QWEN = "gpu/tracelens/h100/Qwen_Qwen1.5-0.5B-Chat__1016005.json.gz"


def _view(path):
    processed = process(read_inputs([path]))
    return tree_view(module_table(processed.table, processed.modules), step_time_ns(processed.table))


def _model(page: str) -> dict:
    text = re.search(r"<script type='application/json' id='model-data'>(.*?)</script>", page, re.S).group(1)
    return json.loads(text)


def test_report_is_one_offline_file(tmp_path):
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", str(SAMPLES / "cnn" / "prof.json.gz"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert out.stat().st_size < 5_000_000
    # nothing is fetched: no URL, no src/href to anything but the page's own anchors, a CSP that forbids requests
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert not re.search(r"\s(src|href)=['\"](?!#)", page)
    assert "default-src 'none'" in page and "Chart.js v4.5.1" in page
    for section in ("overview", "model", "tree", "top-ops-kernels"):
        assert f"<section id='{section}'>" in page
    assert "id='modules'>10</script>" not in page  # the stray script of the old page


def test_model_graph_follows_forward_order_and_shapes():
    view = _view(SAMPLES / "cnn" / "prof.json.gz")
    graph = model_graph(view)
    (root,) = graph["roots"]
    assert root["type"] == "Sequential" and root["in"] == [[4, 3, 32, 32]] and root["out"] == [[4, 10]]
    kids = [c["path"] for c in root["children"]]
    assert kids == view[view["depth"] == 1]["module_path"].tolist()  # first-call order
    conv = root["children"][0]
    assert conv["type"] == "Conv2d" and conv["params"] == 448 and conv["flops"] > 0 and conv["calls"] == 2
    assert conv["device_fwd_ms"] is None and conv["tflops"] is None  # CPU-only: not measurable, not 0


def test_model_graph_folds_the_24_layers_of_a_transformer():
    view = _view(shared(QWEN))
    graph = model_graph(view)
    (root,) = graph["roots"]
    folded = [c for c in root["children"] if c.get("repeat")]
    assert [(c["type"], c["repeat"]) for c in folded] == [("Qwen2DecoderLayer", 24)]
    layers = view[view["module_type"] == "Qwen2DecoderLayer"]
    (layer,) = folded
    assert [m["path"] for m in layer["members"]] == layers["module_path"].tolist()
    assert layer["params"] == pytest.approx(layers["params"].sum())
    inner = {c["type"] for c in layer["children"]}
    assert {"Qwen2Attention", "Qwen2MLP", "Qwen2RMSNorm"} <= inner
    assert root["device_fwd_ms"] > 0  # GPU trace: device time is measured


def test_tree_table_blank_where_not_measured(tmp_path):
    out = tmp_path / "r.html"
    CliRunner().invoke(main, ["report", str(SAMPLES / "gpt" / "prof.json.gz"), "-o", str(out)])
    page = out.read_text()
    rows = re.findall(r"<tr data-id='\d+'.*?</tr>", page)
    assert len(rows) == 29
    first = re.findall(r"<td[^>]*>(.*?)</td>", rows[0])
    # module, type, in, out, calls, first, steady, backward, dev fwd, dev bwd, params, flops, tflops, share
    assert first[1] == "GPT" and first[4] == "2" and first[7] != "" and first[8] == "" and first[9] == ""
    assert "0.000" not in (first[8], first[9])


def test_every_command_takes_dash_h():
    runner = CliRunner()
    top = runner.invoke(main, ["-h"])
    assert top.exit_code == 0 and "Ascend" in top.output
    for cmd in ("convert", "info", "modules", "merge", "compare", "parallel", "report"):
        result = runner.invoke(main, [cmd, "-h"])
        assert result.exit_code == 0, (cmd, result.output)
        assert re.search(r"-o, --out", result.output), cmd
        help_o = result.output[result.output.index("-o, --out"):]
        assert re.search(r"(file|folder|File|Folder)", help_o.split("\n  -", 1)[0]), (cmd, help_o[:200])


def test_modules_out_file_and_json_lists(tmp_path):
    sample = str(SAMPLES / "cnn" / "prof.json.gz")
    runner = CliRunner()
    txt = tmp_path / "mods.txt"
    result = runner.invoke(main, ["modules", sample, "-o", str(txt)])
    assert result.exit_code == 0 and "wrote" in result.output
    text = txt.read_text()
    assert "Conv2d_0" in text and "AdaptiveAvgPool2d_0" in text and len(text.splitlines()) >= 13
    rows = json.loads(runner.invoke(main, ["modules", sample, "--format", "json"]).output)
    assert rows[0]["input_shapes"] == [[4, 3, 32, 32]] and rows[0]["output_shapes"] == [[4, 10]]
    as_json = tmp_path / "mods.json"
    runner.invoke(main, ["modules", sample, "-o", str(as_json)])
    assert json.loads(as_json.read_text())[1]["module_path"] == "Sequential_0/Conv2d_0"
    facts = tmp_path / "info.json"
    assert runner.invoke(main, ["info", sample, "-o", str(facts)]).exit_code == 0
    assert json.loads(facts.read_text())["steps"] == [2, 3]


def test_info_and_tables_do_not_wrap_when_piped():
    result = CliRunner().invoke(main, ["info", str(shared(QWEN))])
    assert result.exit_code == 0, result.output
    kernel_lines = [ln for ln in result.output.splitlines() if "ms" in ln and "%" in ln]
    assert kernel_lines and max(len(ln) for ln in result.output.splitlines()) > 100
    # each table row on one line: every row of the kernels table ends with its share
    assert all(ln.rstrip().endswith(("%", "│", "┃")) for ln in kernel_lines)


def test_progress_shows_a_percentage():
    from rich.console import Console
    from rich.progress import Progress

    shown = []
    real = Progress.__init__

    def spy(self, *columns, **kw):
        kw["console"] = Console(file=io.StringIO(), force_terminal=True, width=120)
        real(self, *columns, **kw)
        shown.append(self)

    Progress.__init__ = spy
    try:
        with progress_steps(total=4, enabled=True) as advance:
            for i in range(6):  # more steps than planned: the total grows, never past 100%
                advance(f"step {i}")
            task = shown[0].tasks[0]
            assert task.total >= task.completed and task.percentage <= 100
        assert any("TaskProgressColumn" in type(c).__name__ for c in shown[0].columns)
    finally:
        Progress.__init__ = real


def test_report_says_when_blocks_are_annotations_not_modules(tmp_path):
    out = tmp_path / "r.html"
    trace = shared("gpu/hta/trace_diff/a100_control.json.gz")
    result = CliRunner().invoke(main, ["report", str(trace), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "This trace has no nn.Module events" in page
    assert {n["type"] for n in _model(page)["roots"]} == {"record_function"}
    assert "NVIDIA A100" in page  # the devices the trace names


def test_report_help_is_light():
    from tests.test_perf_startup import loaded_after

    code = "from tracekit.cli import main\nmain(['report', '--help'], standalone_mode=False)"
    assert loaded_after(code) == []


def test_report_overview_says_what_limits_trust_in_its_times(tmp_path):
    """The overview names skipped input events, device events no op launched and host/device clock skew, with
    the counts info gives for the same trace; a clean trace gets none of these notes."""
    from tracekit.info import trace_info

    npu = shared("npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt")
    info = trace_info(process(read_inputs([npu])))
    early, unlinked = info["device_before_launch"], info["unlinked_device_events"]
    assert early["events"] > 0 and sum(unlinked.values()) > 0
    out = tmp_path / "npu.html"
    result = CliRunner().invoke(main, ["report", str(npu), "-o", str(out)])
    assert result.exit_code == 0, result.output
    overview = out.read_text().split("<section id='overview'>")[1].split("</section>")[0]
    notes = re.findall(r"<p class='note quality'>(.*?)</p>", overview)
    skew = next(n for n in notes if n.startswith("Clock skew"))
    assert f"{early['events']:,} of {early['of']:,} device events" in skew
    assert f"{early['max_ns'] / 1e3:,.1f} µs" in skew
    assert any(f"{sum(unlinked.values()):,} device events have no launching op" in n for n in notes)

    clean = tmp_path / "cnn.html"
    assert CliRunner().invoke(main, ["report", str(SAMPLES / "cnn" / "prof.json.gz"), "-o", str(clean)]).exit_code == 0
    assert "class='note quality'" not in clean.read_text()


def test_data_quality_notes_count_skipped_events():
    from tracekit.report.sections import data_quality_notes

    info = {"skipped": {"no_ts": 3, "bad_dur": 1}, "unlinked_device_events": {}, "device_before_launch": {}}
    assert data_quality_notes(info) == [
        "4 input events were skipped while reading (no_ts: 3, bad_dur: 1): they are in no figure below."]
    assert data_quality_notes({"skipped": {}, "unlinked_device_events": {}, "device_before_launch": {}}) == []
