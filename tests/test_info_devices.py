"""`tracekit info` names each device once, however many rank traces list it, and never says "CPU only" for a
trace with device events (Ascend traces name no device model)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.conftest import SAMPLES, shared
from tracekit.cli import main
from tracekit.cli.info import device_line

DLRM = "gpu/param_dlrm_8ranks"
ALEXNET = "npu/msinsight_alexnet_dp/text/level1"


def _info(*args: str) -> str:
    result = CliRunner().invoke(main, ["info", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_ranks_that_list_their_node_s_devices_show_them_once():
    """Each of the 8 DLRM rank traces lists all 8 V100s of its node: 64 entries in the facts, one line."""
    folder = shared(DLRM)
    facts = json.loads(_info(str(folder), "--json"))
    assert len(facts["devices"]) == 64 and {d["name"] for d in facts["devices"]} == {"Tesla V100-SXM2-32GB"}
    line = next(x for x in _info(str(folder)).splitlines() if x.startswith("devices: "))
    gib = facts["devices"][0]["memory_gb"]
    assert line == f"devices: 8 × Tesla V100-SXM2-32GB (ids 0-7, {gib} GiB), named in 8 inputs"


def test_one_gpu_and_cpu_only():
    bert = shared("gpu/tracelens/h100/gaunernst_bert-small-uncased__1016001.json.gz")
    assert any(x.startswith("devices: 1 × NVIDIA H100") and "(id 0, " in x for x in _info(str(bert)).splitlines())
    assert "devices: CPU only (no device events)" in _info(str(SAMPLES / "cnn" / "prof.json.gz"))


def test_ascend_trace_with_device_events_is_not_cpu_only():
    rank0 = shared(ALEXNET) / "rank0_ascend_pt"
    facts = json.loads(_info(str(rank0), "--json"))
    tasks = sum(facts["counts_by_kind"].get(k, 0) for k in ("kernel", "memcpy", "memset"))
    assert tasks > 0
    assert facts["devices"] == [{"name": f"Ascend NPU ({tasks:,} device events; the trace names no device model)"}]
    assert "CPU only" not in _info(str(rank0))


def test_device_line_groups_by_model_and_compresses_ids():
    devices = [{"name": "A", "id": i, "memory_gb": 80.0} for i in (0, 1, 2, 3, 6)]
    devices += [{"name": "B", "id": 7, "memory_gb": 16.0}]
    assert device_line(devices, 1) == "5 × A (ids 0-3,6, 80.0 GiB), 1 × B (id 7, 16.0 GiB)"
    assert device_line(devices * 2, 2) == ("5 × A (ids 0-3,6, 80.0 GiB), named in 2 inputs, "
                                           "1 × B (id 7, 16.0 GiB), named in 2 inputs")
    assert device_line([{"name": "CPU only (no device events)"}], 3) == "CPU only (no device events)"
