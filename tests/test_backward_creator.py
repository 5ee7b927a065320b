"""An autograd node's backward belongs to the forward op that created it: the LATEST forward op recorded with
its sequence number. Ops whose inputs need no gradient record the number the next node will take without
taking it, so the first op with the number is often an unrelated one (an `arange`, a `record_stream`, a
`squeeze` of the data) in another module. Checked on real traces; `test_flops_oracle.py` checks it on a
recorded model (an upsample of the input before a conv)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
from conftest import shared

MTIA = "gpu/hta/mtia_rank_0_large.json.gz"
CP_TP = "cpu/dist_cp_tp/rank-0.json.gz"


def _table(converted, rel: str, name: str) -> pd.DataFrame:
    out, _ = converted(shared(rel))
    return pq.read_table(out / name).to_pandas()


def test_embedding_lookup_backward_is_the_lookups(converted) -> None:
    """TorchRec's fused embedding backward (SplitLookupFunction) ran 140 ms; it was filed under the
    `start_sparse_data_dist` annotation, whose `record_stream` calls carry the lookup's number before it."""
    modules = _table(converted, MTIA, "modules.parquet").set_index("module_path")
    dist = modules.loc["## start_sparse_data_dist 2 ##"]
    assert dist["backward_ns"] == 0 and dist["device_ns_bwd"] == 0
    lookups = modules[modules.index.str.contains("/[lookup]_[sparse_arch.", regex=False)]
    assert len(lookups) == 2 and (lookups["backward_ns"] > 100_000_000).all()  # ebc and position_ebc
    ops = _table(converted, MTIA, "ops.parquet")
    node = ops[ops["name"].astype(str).str.contains("SplitLookupFunction") & (ops["phase"] == "backward")]
    assert len(node) == 4 and node["module_path"].astype(str).isin(lookups.index).all()
    assert node.groupby("sequence")["module_path"].nunique().eq(1).all()
    assert node.groupby("module_path")["sequence"].nunique().eq(1).all()  # each lookup its own node


def test_embedding_gets_its_own_backward(converted) -> None:
    """GPT's token embedding follows ops on the ids (no gradient): its EmbeddingBackward is now its own."""
    modules = _table(converted, CP_TP, "modules.parquet")
    embedding = modules[modules["module_type"] == "Embedding"]
    assert len(embedding) and (embedding["backward_ns"] > 0).all()
    ops = _table(converted, CP_TP, "ops.parquet")
    node = ops[ops["name"].astype(str).str.endswith("EmbeddingBackward0") & (ops["phase"] == "backward")]
    assert len(node) and node["module_type"].astype(str).eq("Embedding").all()


NPU_DDP = "npu/msinsight_alexnet_dp/text/level1/rank0_ascend_pt"
DLRM = "gpu/param_dlrm_8ranks/worker0_step_12.1694128201545.pt.trace.json.gz"


def test_gradient_sync_belongs_to_the_data_parallel_wrapper(converted) -> None:
    """DDP's bucket all-reduce runs in a hook under an AccumulateGrad node. It went to the module whose gradient
    completed the bucket: a 79 ms HCCL all-reduce was the last Linear's backward device time on the Ascend
    AlexNet run. It belongs to DistributedDataParallel_0; the layers keep their compute."""
    kernels = _table(converted, NPU_DDP, "kernels.parquet")
    sync = kernels[kernels["name"].astype(str).str.startswith("hcom_allReduce")]
    assert len(sync) == 4 and (sync["module_path"] == "DistributedDataParallel_0").all()
    assert (sync["phase"] == "backward").all()
    events = _table(converted, NPU_DDP, "events.parquet")
    host = events[(events["kind"] == "collective") & (events["phase"] == "backward")]
    assert len(host) and (host["module_from"] == "gradient_sync").all()
    modules = _table(converted, NPU_DDP, "modules.parquet").set_index("module_path")
    layers = modules[modules["module_type"].isin(["Linear", "Conv2d"])]
    assert (layers["device_ns_bwd"] < sync["dur_ns"].max()).all()
    assert modules.loc["DistributedDataParallel_0", "device_ns_bwd"] >= sync["dur_ns"].sum()
    # DLRM's DDP all-reduce: a record_function wrapper ("DistributedDataParallel.forward") takes it
    dlrm = _table(converted, DLRM, "kernels.parquet")
    allreduce = dlrm[dlrm["name"].astype(str).str.startswith("ncclKernel_AllReduce")]
    assert len(allreduce) == 3 and allreduce["module_path"].astype(str).str.endswith(
        "DistributedDataParallel.forward").all()
