"""Real CUDA recordings made with sample_traces/record.py --device cuda on an H200.

The AlexNet mirror of the shared NPU run (batch 32x3x224x224, DDP, SGD) was recorded on the
CPU (gloo, 2 ranks) and on CUDA (NCCL, 1 rank), and the GPT/CNN samples on CUDA; see
sample_traces/README.md. These tests check module attribution of real GPU kernels and that the
CPU and GPU recordings of one model give the same module tree.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import SAMPLES

from tracekit.convert import convert
from tracekit.group_members import collectives_table

ALEX = SAMPLES / "alexnet"
# torchvision AlexNet: parameter count
ALEXNET_PARAMS = 61_100_840


@pytest.fixture(scope="module")
def alex_cuda(tmp_path_factory):
    out = tmp_path_factory.mktemp("alex_cuda")
    summary = convert([ALEX / "cuda_rank0.json.gz"], out)
    return out, summary


@pytest.fixture(scope="module")
def alex_cpu(tmp_path_factory):
    out = tmp_path_factory.mktemp("alex_cpu")
    summary = convert([ALEX / "cpu_rank0.json.gz", ALEX / "cpu_rank1.json.gz"], out)
    return out, summary


def _modules(out) -> pd.DataFrame:
    path = out / "modules.parquet"
    return pd.read_parquet(path if path.exists() else out / "modules")


def test_alexnet_cuda_converts_conserved(alex_cuda):
    out, summary = alex_cuda
    assert summary["conserved"]
    kernels = pd.read_parquet(out / "kernels.parquet")
    assert (kernels["kind"] == "kernel").sum() > 100
    assert kernels["device"].notna().all()


def test_alexnet_cuda_and_cpu_have_the_same_module_tree(alex_cuda, alex_cpu):
    gpu = _modules(alex_cuda[0])
    cpu = _modules(alex_cpu[0])
    cpu0 = cpu[cpu["rank"] == 0]
    assert len(gpu) == 26  # DDP wrapper, AlexNet, 2 Sequentials, 5 conv, 7 relu, 3 pool, 2 dropout, 3 linear, loss
    assert set(zip(gpu["module_path"], gpu["module_type"])) == set(zip(cpu0["module_path"], cpu0["module_type"]))
    root = gpu[gpu["module_path"] == "DistributedDataParallel_0/AlexNet_0"].iloc[0]
    assert root["params"] == ALEXNET_PARAMS
    conv0 = gpu[gpu["module_path"].str.endswith("Sequential_0/Conv2d_0")].iloc[0]
    assert json.loads(conv0["input_shapes"]) == [[32, 3, 224, 224]]
    assert json.loads(conv0["output_shapes"]) == [[32, 64, 55, 55]]
    # device time is measured on CUDA, in forward and backward
    assert conv0["device_ns_fwd"] > 0 and conv0["device_ns_bwd"] > 0


def test_alexnet_cuda_kernels_belong_to_their_layers(alex_cuda):
    kernels = pd.read_parquet(alex_cuda[0] / "kernels.parquet")
    conv = kernels[kernels["op_name"].fillna("").str.contains("convolution")]
    assert len(conv) > 10
    # every kernel launched by a convolution op sits in a Conv2d module, forward or backward
    assert conv["module_path"].str.contains(r"/Conv2d_\d+$").all()
    assert set(conv["phase"]) == {"forward", "backward"}
    gemm = kernels[kernels["op_name"].isin(["aten::addmm", "aten::mm"])]
    assert gemm["module_path"].str.contains(r"/Linear_\d+$").all()
    fwd_bwd = kernels[kernels["phase"].isin(["forward", "backward"])]
    attributed = fwd_bwd.loc[fwd_bwd["module_path"].notna(), "dur_ns"].sum()
    assert attributed >= 0.95 * fwd_bwd["dur_ns"].sum()


def test_alexnet_ddp_buckets_carry_every_gradient(alex_cuda, alex_cpu):
    """DDP all-reduces each gradient once: the bucket bytes add up to 4 bytes per parameter."""
    for out, ranks in ((alex_cuda[0], [0]), (alex_cpu[0], [0, 1])):
        coll = collectives_table(out / "collectives.parquet").to_pandas()
        assert sorted(coll["rank"].unique()) == ranks
        for _, rank_rows in coll.groupby("rank"):
            assert set(rank_rows["collective"]) == {"all_reduce"}
            assert int(rank_rows["bytes"].sum()) == 4 * ALEXNET_PARAMS
            # DDP's bucket all-reduces are issued from backward hooks: each sits in a layer
            assert rank_rows["module_path"].str.contains("/AlexNet_0/").all()


@pytest.mark.parametrize("model", ["gpt", "cnn"])
def test_cuda_samples_attribute_kernels_and_match_cpu_modules(tmp_path, model):
    gpu_out, cpu_out = tmp_path / "gpu", tmp_path / "cpu"
    assert convert([SAMPLES / model / "prof_cuda.json.gz"], gpu_out)["conserved"]
    assert convert([SAMPLES / model / "prof.json.gz"], cpu_out)["conserved"]
    gpu, cpu = _modules(gpu_out), _modules(cpu_out)
    assert set(gpu["module_path"]) == set(cpu["module_path"])
    kernels = pd.read_parquet(gpu_out / "kernels.parquet")
    fwd_bwd = kernels[kernels["phase"].isin(["forward", "backward"])]
    assert {"forward", "backward"} <= set(fwd_bwd["phase"])
    attributed = fwd_bwd.loc[fwd_bwd["module_path"].notna(), "dur_ns"].sum()
    assert attributed >= 0.95 * fwd_bwd["dur_ns"].sum()
    # the optimizer's kernels are in the optimizer phase, not in a module
    opt = kernels[kernels["phase"] == "optimizer"]
    assert len(opt) > 0 and opt["module_path"].isna().all()


@pytest.mark.parametrize("model", ["gpt", "cnn"])
def test_cuda_viztracer_and_profiler_pair_merges(tmp_path, model):
    from tracekit.merge.job import merge

    out = tmp_path / "merged.json"
    merge([SAMPLES / model / "viz_both_cuda.json.gz", SAMPLES / model / "prof_both_cuda.json.gz"], out,
          parquet_dir=tmp_path / "pq")
    summary = json.loads((tmp_path / "pq" / "summary.json").read_text())
    assert summary["conserved"]
    viz = next(f for f in summary["merge"]["files"] if "viz_both" in f["path"])
    # VizTracer's torch._C calls contain the aten ops they dispatch, on one clock
    assert viz["total_pairs"] >= 20 and viz["contained_share"] >= 0.99
    assert viz["dispatch_nested_share"] >= 0.99
    kernels = pd.read_parquet(tmp_path / "pq" / "kernels.parquet")
    assert len(kernels) > 50  # the GPU kernels are in the merged run
    assert kernels["op_name"].notna().mean() > 0.9
