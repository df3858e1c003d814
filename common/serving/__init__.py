"""Serving measurements shared by the batching and slm_energy papers: decode throughput, latency, memory
and energy as the batch grows, and the bytes-versus-FLOPs arithmetic that explains them.

    config.py       the serving keys both papers' schemas share (engine, dtype, workload, ...), checked once
    engine.py       Engine.run(prompts, max_new_tokens, hook) -> BatchResult (per step, per request)
    hf_engine.py    the default engine: transformers static batch, timed decode loop (CPU and CUDA)
    vllm_engine.py  vLLM's offline engine (GPU nodes, .venv-vllm; imported only when asked for)
    vllm_server.py  vLLM's OpenAI server: lifecycle, 1 Hz /metrics sampler, streaming client
    models.py       the papers' architectures with random weights, checkpoints, SmolLM2 from GGUF
    workloads.py    fixed lengths, ShareGPT (file or sampled), the sweep's stored request list (lengths and
                    distributions come from the configs)
    metrics.py      TTFT, TPOT, ITL, throughput from engine records
    harness.py      run_sweep: models x workloads x batch sizes through the result store, with energy
    replicas.py     N engine replicas as processes on their own cores, started together by a barrier; `serve`,
                    the replica work both papers run
    roofline.py     per-step bytes and FLOPs, T(B), B_h, regimes (the bare roofline)
    step_model.py   the engine's step time from physical terms, fitted by one routine (fit_step_model),
                    used on batches, models and devices it was not fitted on
    kernels.py      torch.profiler breakdown (attention / matmul / other / gaps); Nsight Compute CSVs
    bench/          benchmarks of the above as commands (generate ratio, overhead, regimes, one decode step
                    for Nsight Compute, gpu_check), each with its conf/common/serving/bench/<name>.yaml

Submodules are imported directly (`from common.serving.harness import run_sweep`), so importing one
never pulls in torch, transformers or vLLM where it is not needed.
"""

import os as _os

# CPU timing on shared cores: OpenMP threads that spin-wait at barriers stall a 2-thread decode step as
# soon as another process holds one of the cores (opt-16m, B=64, load 7 on 2 cores: 606 ms per step
# spinning, 107 ms waiting passively, 107 ms with one thread). Read when torch loads OpenMP, so it is
# set here, before any serving module imports torch; an explicit OMP_WAIT_POLICY wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
