#!/usr/bin/env python3
"""Record small, real multi-rank CPU traces where ONE op on ONE thread serves TWO process groups.

4 processes, gloo on localhost, a 2 x 2 torch.distributed DeviceMesh, torch.profiler on every rank
(CPU, record_shapes, with_modules, schedule(wait=1, warmup=1, active=2) over 4 steps). Cases:

* ``dp_cp``  (mesh dp=2 x cp=2): a tiny per-token MLP; each rank holds one data shard and one
  sequence shard. After backward every gradient is all-reduced over the cp group AND over the dp
  group with blocking ``dist.all_reduce`` (both are ``c10d::allreduce_`` on the main thread), in
  interleaved order: parameter i goes cp-then-dp for even i, dp-then-cp for odd i.
* ``dp_cp_async``  as ``dp_cp``, but both all-reduces of a parameter are issued with ``async_op=True``
  (the dp one on a copy of the gradient, added back after) and then waited for, so the two groups' work
  of the same size waits in gloo at the same time.
* ``cp_allgather``  (mesh cp=2 x tp=2): a tiny attention + MLP block with tensor parallelism plus
  sequence parallelism (activations all-gathered over tp before the column-parallel Linears and
  reduce-scattered after the row-parallel ones) and context parallelism that all-gathers K and V over
  cp (backward: reduce-scatter of their gradients over cp). Both groups therefore use
  ``c10d::_allgather_base_`` and ``c10d::_reduce_scatter_base_`` on the main thread with the same
  tensor sizes. Gradients: LayerNorm weights (replicated over tp) are all-reduced over tp, then every
  gradient over cp.
* ``ep_dp``  (mesh dp=2 x ep=2): a tiny mixture-of-experts layer with expert parallelism. Each rank holds
  one of the ep group's two experts; a top-1 router sends every token to an expert, and the tokens go to
  the expert's rank and back with ``dist.all_to_all_single`` with UNEVEN split sizes (as many as were routed;
  backward: the reverse all-to-alls). Gradients: the expert's over dp (its replicas), the router's and the
  norm's over ep then dp.
* ``pp_dp``  (mesh dp=2 x pp=2): a two-stage pipeline (GPipe schedule over 4 micro-batches): stage 0 sends
  each micro-batch's activations to stage 1 with ``dist.send`` and receives their gradients back with
  ``dist.recv``; then each stage all-reduces its gradients over dp.

Every rank writes ``rank-<r>.json.gz`` and the recorder writes ``run_log.json`` with the ground
truth: per rank, the mesh groups and, in issue order, every collective of the traced steps as
``[op, group dim, numel]`` (the trace order of each op on the main thread is its issue order).

Usage:
    .venv/bin/python sample_traces/record_dist.py [--out DIR] [--cases dp_cp,cp_allgather]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = {"dp_cp": ("dp", "cp"), "cp_allgather": ("cp", "tp"), "dp_cp_async": ("dp", "cp"), "ep_dp": ("dp", "ep"),
         "pp_dp": ("dp", "pp")}
FOLDERS = {"dp_cp": "dist_dp_cp", "cp_allgather": "dist_cp_allgather", "dp_cp_async": "dist_dp_cp_async",
           "ep_dp": "dist_ep_dp", "pp_dp": "dist_pp_dp"}
WITH_STACK = {"ep_dp", "pp_dp"}  # torch 2.13 writes nn.Module events only with the Python stack
WORLD, STEPS, TRACED = 4, 4, (2, 3)


def _log(log: list, step: int, op: str, dim: str, numel: int) -> None:
    if step in TRACED:
        log.append([op, dim, int(numel)])


def _comm(step_ref: list, log: list):
    """Autograd-aware all-gather / reduce-scatter along dim 0 that log what they issue."""
    import torch
    import torch.distributed as dist

    class AllGather(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, group, dim):
            ctx.group, ctx.dim = group, dim
            n = dist.get_world_size(group)
            out = x.new_empty((x.shape[0] * n, *x.shape[1:]))
            _log(log, step_ref[0], "all_gather", dim, x.numel())
            dist.all_gather_into_tensor(out, x.contiguous(), group=group)
            return out

        @staticmethod
        def backward(ctx, grad):
            n = dist.get_world_size(ctx.group)
            out = grad.new_empty((grad.shape[0] // n, *grad.shape[1:]))
            _log(log, step_ref[0], "reduce_scatter", ctx.dim, out.numel())
            dist.reduce_scatter_tensor(out, grad.contiguous(), group=ctx.group)
            return out, None, None

    class ReduceScatter(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, group, dim):
            ctx.group, ctx.dim = group, dim
            n = dist.get_world_size(group)
            out = x.new_empty((x.shape[0] // n, *x.shape[1:]))
            _log(log, step_ref[0], "reduce_scatter", dim, out.numel())
            dist.reduce_scatter_tensor(out, x.contiguous(), group=group)
            return out

        @staticmethod
        def backward(ctx, grad):
            n = dist.get_world_size(ctx.group)
            out = grad.new_empty((grad.shape[0] * n, *grad.shape[1:]))
            _log(log, step_ref[0], "all_gather", ctx.dim, grad.numel())
            dist.all_gather_into_tensor(out, grad.contiguous(), group=ctx.group)
            return out, None, None

    return AllGather.apply, ReduceScatter.apply


def _build_dp_cp(mesh, step_ref: list, log: list, async_op: bool = False):
    import torch
    import torch.distributed as dist
    import torch.nn as nn

    dp, cp = mesh["dp"].get_group(), mesh["cp"].get_group()
    d, hidden, seq, batch = 32, 64, 16, 4

    class TokenMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, hidden)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(hidden, d)
            self.head = nn.Linear(d, 8)

        def forward(self, x):
            return self.head(x + self.fc2(self.act(self.fc1(self.norm(x)))))

    torch.manual_seed(0)
    model = TokenMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    dp_rank, cp_rank = mesh["dp"].get_local_rank(), mesh["cp"].get_local_rank()
    gen = torch.Generator().manual_seed(1000 + dp_rank)
    x_all = torch.randn(batch, seq, d, generator=gen)
    y_all = torch.randint(0, 8, (batch, seq), generator=gen)
    part = seq // 2
    x = x_all[:, cp_rank * part:(cp_rank + 1) * part]
    y = y_all[:, cp_rank * part:(cp_rank + 1) * part]
    params = list(model.parameters())

    def step():
        opt.zero_grad()
        out = model(x)
        loss = nn.functional.cross_entropy(out.reshape(-1, 8), y.reshape(-1))
        loss.backward()
        for i, p in enumerate(params):
            order = (("cp", cp), ("dp", dp)) if i % 2 == 0 else (("dp", dp), ("cp", cp))
            if async_op:  # cp on the gradient, dp on a copy, both in flight at once: sum over all 4 ranks after
                copy = p.grad.clone()
                works = []
                for dim, group in order:
                    _log(log, step_ref[0], "all_reduce", dim, p.grad.numel())
                    works.append(dist.all_reduce(p.grad if dim == "cp" else copy, group=group, async_op=True))
                for work in works:
                    work.wait()
                p.grad += copy  # cp sum + dp sum (own gradient counted twice: the fixture is about the trace)
            else:
                for dim, group in order:
                    _log(log, step_ref[0], "all_reduce", dim, p.grad.numel())
                    dist.all_reduce(p.grad, group=group)
            p.grad /= WORLD
        opt.step()
        return float(loss.detach())

    return step


def _build_cp_allgather(mesh, step_ref: list, log: list):
    import torch
    import torch.distributed as dist
    import torch.nn as nn

    cp, tp = mesh["cp"].get_group(), mesh["tp"].get_group()
    all_gather, reduce_scatter = _comm(step_ref, log)
    d, heads, seq, batch, n_tp = 32, 4, 16, 2, 2
    hd, local = d // heads, d // n_tp

    class CPAttention(nn.Module):
        """q/k/v column-parallel over tp (local heads), K/V all-gathered over cp, proj row-parallel."""

        def __init__(self):
            super().__init__()
            self.q, self.k, self.v = nn.Linear(d, local), nn.Linear(d, local), nn.Linear(d, local)
            self.proj = nn.Linear(local, d, bias=False)

        def forward(self, x):  # x: (T/cp, B, d), full over tp
            t, b, _ = x.shape
            q, k, v = self.q(x), self.k(x), self.v(x)
            k = all_gather(k, cp, "cp")  # (T, B, local)
            v = all_gather(v, cp, "cp")

            def heads_of(z):
                return z.reshape(z.shape[0], b, local // hd, hd).permute(1, 2, 0, 3)

            att = torch.softmax(heads_of(q) @ heads_of(k).transpose(-1, -2) / hd ** 0.5, dim=-1)
            out = (att @ heads_of(v)).permute(2, 0, 1, 3).reshape(t, b, local)
            return self.proj(out)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(d, 2 * local)
            self.fc2 = nn.Linear(2 * local, d, bias=False)

        def forward(self, x):
            return self.fc2(nn.functional.gelu(self.fc1(x)))

    class Block(nn.Module):
        """Sequence-parallel residual stream: (T/(cp*tp), B, d) per rank."""

        def __init__(self):
            super().__init__()
            self.ln1, self.attn, self.ln2, self.mlp = nn.LayerNorm(d), CPAttention(), nn.LayerNorm(d), MLP()

        def forward(self, h):
            h = h + reduce_scatter(self.attn(all_gather(self.ln1(h), tp, "tp")), tp, "tp")
            return h + reduce_scatter(self.mlp(all_gather(self.ln2(h), tp, "tp")), tp, "tp")

    torch.manual_seed(0)
    model = Block()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    cp_rank, tp_rank = mesh["cp"].get_local_rank(), mesh["tp"].get_local_rank()
    gen = torch.Generator().manual_seed(7)
    x_all = torch.randn(seq, batch, d, generator=gen)
    part = seq // (2 * n_tp)
    h0 = x_all[(cp_rank * n_tp + tp_rank) * part:(cp_rank * n_tp + tp_rank + 1) * part]
    replicated = {id(p) for m in (model.ln1, model.ln2) for p in m.parameters()}
    params = list(model.parameters())

    def step():
        opt.zero_grad()
        loss = model(h0).pow(2).mean()
        loss.backward()
        for p in params:
            if id(p) in replicated:
                _log(log, step_ref[0], "all_reduce", "tp", p.grad.numel())
                dist.all_reduce(p.grad, group=tp)
            _log(log, step_ref[0], "all_reduce", "cp", p.grad.numel())
            dist.all_reduce(p.grad, group=cp)
        opt.step()
        return float(loss.detach())

    return step


def _all_to_all(step_ref: list, log: list):
    """Autograd-aware all_to_all_single along dim 0 with uneven splits, logging what it issues."""
    import torch
    import torch.distributed as dist

    def exchange(x, send: list[int], recv: list[int], group):
        out = x.new_empty((sum(recv), *x.shape[1:]))
        _log(log, step_ref[0], "all_to_all", "ep", x.numel())
        dist.all_to_all_single(out, x.contiguous(), output_split_sizes=recv, input_split_sizes=send, group=group)
        return out

    class AllToAll(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, send, recv, group):
            ctx.send, ctx.recv, ctx.group = send, recv, group
            return exchange(x, send, recv, group)

        @staticmethod
        def backward(ctx, grad):
            return exchange(grad, ctx.recv, ctx.send, ctx.group), None, None, None

    return AllToAll.apply


def _build_ep_dp(mesh, step_ref: list, log: list):
    import torch
    import torch.distributed as dist
    import torch.nn as nn

    dp, ep = mesh["dp"].get_group(), mesh["ep"].get_group()
    all_to_all = _all_to_all(step_ref, log)
    d, hidden, tokens, n_ep = 16, 32, 24, 2
    ep_rank, dp_rank = mesh["ep"].get_local_rank(), mesh["dp"].get_local_rank()

    class Expert(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)

        def forward(self, x):
            return self.fc2(nn.functional.gelu(self.fc1(x)))

    class MoE(nn.Module):
        """Top-1 routing over the ep group's experts; this rank holds expert `ep_rank`."""

        def __init__(self):
            super().__init__()
            self.norm, self.router, self.expert = nn.LayerNorm(d), nn.Linear(d, n_ep), Expert()

        def forward(self, x):
            h = self.norm(x)
            scores = torch.softmax(self.router(h), dim=-1)
            choice = scores.argmax(dim=-1)
            order = torch.argsort(choice, stable=True)
            send = torch.bincount(choice, minlength=n_ep)
            recv = torch.empty_like(send)
            _log(log, step_ref[0], "all_to_all", "ep", send.numel())
            dist.all_to_all_single(recv, send, group=ep)  # how many tokens each expert gets from each rank
            send_l, recv_l = send.tolist(), recv.tolist()
            arrived = all_to_all(h[order], send_l, recv_l, ep)
            back = all_to_all(self.expert(arrived), recv_l, send_l, ep)
            out = torch.empty_like(back).index_copy(0, order, back)
            return x + out * scores.gather(1, choice[:, None])

    torch.manual_seed(0)
    model = MoE()
    torch.manual_seed(100 + ep_rank)  # each expert its own weights, the same on its dp replicas
    model.expert = Expert()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(2000 + dp_rank * n_ep + ep_rank)
    x = torch.randn(tokens, d, generator=gen)
    shared_params = [p for name, p in model.named_parameters() if not name.startswith("expert.")]

    def step():
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        for p in model.expert.parameters():
            _log(log, step_ref[0], "all_reduce", "dp", p.grad.numel())
            dist.all_reduce(p.grad, group=dp)
        for p in shared_params:
            for dim, group in (("ep", ep), ("dp", dp)):
                _log(log, step_ref[0], "all_reduce", dim, p.grad.numel())
                dist.all_reduce(p.grad, group=group)
        opt.step()
        return float(loss.detach())

    return step


def _build_pp_dp(mesh, step_ref: list, log: list):
    import torch
    import torch.distributed as dist
    import torch.nn as nn

    dp, pp = mesh["dp"].get_group(), mesh["pp"].get_group()
    stage = mesh["pp"].get_local_rank()
    peer = dist.get_process_group_ranks(pp)[1 - stage]
    d, hidden, classes, micro, batch = 16, 32, 8, 4, 6

    class Stage0(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.fc = nn.Linear(d, hidden), nn.Linear(hidden, hidden)

        def forward(self, x):
            return torch.relu(self.fc(torch.relu(self.embed(x))))

    class Stage1(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.head = nn.Linear(hidden, hidden), nn.Linear(hidden, classes)

        def forward(self, h):
            return self.head(torch.relu(self.fc(h)))

    torch.manual_seed(0)
    model = Stage0() if stage == 0 else Stage1()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(3000 + mesh["dp"].get_local_rank())
    xs = [torch.randn(batch, d, generator=gen) for _ in range(micro)]
    ys = [torch.randint(0, classes, (batch,), generator=gen) for _ in range(micro)]

    def p2p(op: str, tensor):
        _log(log, step_ref[0], op, "pp", tensor.numel())
        (dist.send if op == "send" else dist.recv)(tensor, peer, group=pp)

    def step():
        opt.zero_grad()
        total = 0.0
        if stage == 0:
            outs = []
            for x in xs:  # forward of every micro-batch, activations to stage 1
                out = model(x)
                p2p("send", out.detach())
                outs.append(out)
            for out in outs:  # then their gradients back, in the same order
                grad = torch.empty_like(out)
                p2p("recv", grad)
                out.backward(grad)
        else:
            ins, losses = [], []
            for y in ys:
                h = torch.empty(batch, hidden)
                p2p("recv", h)
                h.requires_grad_(True)
                losses.append(nn.functional.cross_entropy(model(h), y) / micro)
                ins.append(h)
            for h, loss in zip(ins, losses):
                loss.backward()
                total += float(loss.detach())
                p2p("send", h.grad)
        for p in model.parameters():
            _log(log, step_ref[0], "all_reduce", "dp", p.grad.numel())
            dist.all_reduce(p.grad, group=dp)
        opt.step()
        return total

    return step


def _worker(rank: int, case: str, out_dir: str, init_file: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.profiler import ProfilerActivity, profile, schedule

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    dims = CASES[case]
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=dims)
    step_ref, log = [0], []
    if case == "cp_allgather":
        step = _build_cp_allgather(mesh, step_ref, log)
    elif case == "ep_dp":
        step = _build_ep_dp(mesh, step_ref, log)
    elif case == "pp_dp":
        step = _build_pp_dp(mesh, step_ref, log)
    else:
        step = _build_dp_cp(mesh, step_ref, log, async_op=case == "dp_cp_async")
    path = os.path.join(out_dir, f"rank-{rank}.json.gz")
    losses = []
    with profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=1, warmup=1, active=2),
                 on_trace_ready=lambda p: p.export_chrome_trace(path), record_shapes=True,
                 with_modules=True, with_stack=case in WITH_STACK) as prof:
        for i in range(STEPS):
            step_ref[0] = i
            losses.append(step())
            prof.step()
    groups = {dim: dist.get_process_group_ranks(mesh[dim].get_group()) for dim in dims}
    with open(os.path.join(out_dir, f".log-{rank}.json"), "w") as f:
        json.dump({"rank": rank, "mesh": str(mesh), "groups": groups, "losses": losses,
                   "traced_steps": list(TRACED), "calls": log}, f)
    dist.barrier()
    dist.destroy_process_group()


def record(case: str, out_root: str) -> str:
    import torch.multiprocessing as mp

    out_dir = os.path.join(out_root, FOLDERS[case])
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(case, out_dir, os.path.join(tmp, "init")), nprocs=WORLD, join=True)
    logs = []
    for rank in range(WORLD):
        part = os.path.join(out_dir, f".log-{rank}.json")
        with open(part) as f:
            logs.append(json.load(f))
        os.remove(part)
    import torch

    with open(os.path.join(out_dir, "run_log.json"), "w") as f:
        json.dump({"case": case, "world_size": WORLD, "mesh_dims": list(CASES[case]), "torch": torch.__version__,
                   "ranks": logs}, f, indent=1)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=HERE)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    for case in args.cases.split(","):
        if case not in CASES:
            print(f"unknown case {case!r}; choose from {', '.join(CASES)}", file=sys.stderr)
            return 2
        out_dir = record(case, args.out)
        sizes = {n: os.path.getsize(os.path.join(out_dir, n)) for n in sorted(os.listdir(out_dir))}
        print(f"{case}: {out_dir} {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
