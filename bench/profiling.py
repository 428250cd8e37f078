"""
Where a training step's time goes: torch.profiler over a few calls of a step, each op's self time put
in one of three groups, plus what no op accounts for:
- matmul: the dense matrix products (the linear layers, forward and backward);
- attention: the scaled-dot-product-attention kernels, forward and backward;
- other ops: everything else (elementwise ops, norms, RoPE, the loss, casts and copies, the optimizer; with
  `compile=True`, the compiled blocks' fused kernels, shown as one op "compiled graphs", among them the
  softmax of the plain-matmul attention, whose matmuls count as matmul);
- outside ops: wall time minus the ops' self time (Python, the autograd engine, the allocator, and the
  profiler's own overhead, so this share reads a little high).
`python -m bench.speed --workloads=[train,grpo] --profile=True` adds it to the train and grpo rows.
"""

import time

from torch.profiler import ProfilerActivity, profile

from common import sync

MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation",
              "mkldnn::_linear_pointwise"}


def group_of(op):
    if "attention" in op:
        return "attention"
    if op in MATMUL_OPS or op.startswith("aten::_mkldnn_matmul") or op.startswith("aten::mkldnn_matmul"):
        return "matmul"
    return "other ops"


def profile_step(step, dev, calls=2, top=6):
    """Profile `calls` calls of step(): a one-line summary, 'matmul 24%, attention 21%, ...; top ops: ...',
    shares of wall time (on cuda: of the ops' device time, outside ops = wall minus it)."""
    cuda = str(dev).startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(dev)
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        sync(dev)
        wall = (time.perf_counter() - t0) * 1e6  # microseconds, as the profiler's
    ops = {}
    for e in prof.key_averages():
        us = e.self_device_time_total if cuda else e.self_cpu_time_total
        if us > 0:
            key = "compiled graphs" if e.key.startswith("## Call CompiledFxGraph") else e.key
            ops[key] = ops.get(key, 0) + us
    groups = {"matmul": 0.0, "attention": 0.0, "other ops": 0.0}
    for op, us in ops.items():
        groups[group_of(op)] += us
    groups["outside ops"] = max(wall - sum(ops.values()), 0.0)
    shares = ", ".join(f"{g} {100 * us / wall:.0f}%" for g, us in groups.items())
    ranked = sorted(ops.items(), key=lambda kv: -kv[1])[:top]
    return f"time: {shares}; top ops: " + ", ".join(f"{op} {100 * us / wall:.0f}%" for op, us in ranked)
