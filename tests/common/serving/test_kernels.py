"""Kernel classes (the paper's Fig. 5): name classification, a CPU profile, and the Nsight Compute reader."""

import pytest

from common.serving.kernels import classify_kernel, classify_op, kernel_breakdown, summarise_ncu_csv


@pytest.mark.parametrize(
    "name,cls",
    [
        (
            "void pytorch_flash::flash_fwd_splitkv_kernel<Flash_fwd_kernel_traits<64, 64, 256, 4>>",
            "attention",
        ),
        ("fmha_cutlassF_f16_aligned_64x64_rf_sm80", "attention"),
        ("void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, c10::Half>", "attention"),
        ("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1", "matmul"),
        ("nvjet_hsh_128x256_64x4_2x1_v_bz_coopA_NTT", "matmul"),
        ("void gemv2T_kernel_val<int, int, __half, __half, float, 128, 16, 4, 4>", "matmul"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "other"),
        ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::Half, float>", "other"),
    ],
)
def test_cuda_kernel_names(name, cls):
    assert classify_kernel(name) == cls


def test_cpu_ops_inherit_the_class_of_the_op_above():
    assert classify_op(["aten::bmm", "aten::matmul", "aten::scaled_dot_product_attention"]) == "attention"
    assert classify_op(["aten::addmm", "aten::linear"]) == "matmul"
    assert classify_op(["aten::t", "aten::linear"]) == "matmul"
    assert classify_op(["aten::add_"]) == "other"


def test_cpu_breakdown_shares(tiny_engine):
    r = kernel_breakdown(tiny_engine, batch_size=4, prompt_len=8, decode_steps=6)
    shares = [r[f"{c}_share"] for c in ("attention", "matmul", "other", "gap")]
    assert sum(shares) == pytest.approx(1.0)
    assert all(s >= 0 for s in shares) and r["matmul_s"] > 0 and r["attention_s"] > 0
    assert r["attention_s"] + r["matmul_s"] + r["other_s"] <= r["decode_wall_s"] * 1.05
    assert r["device"] == "cpu" and r["decode_steps"] == 6


NCU_HEADER = (
    '"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size",'
    '"Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"'
)
DRAM = "dram__throughput.avg.pct_of_peak_sustained_elapsed"
OCCUPANCY = "sm__warps_active.avg.pct_of_peak_sustained_active"
TIME = "gpu__time_duration.sum"


def ncu_row(kernel_id, name, metric, unit, value):
    fields = [
        kernel_id,
        "1234",
        "python",
        "node",
        name,
        "1",
        "7",
        "(128, 1, 1)",
        "(1, 32, 64)",
        "0",
        "9.0",
        "Command line profiler metrics",
        metric,
        unit,
        value,
    ]
    return ",".join(f'"{f}"' for f in fields)


NCU_CSV = (
    "\n".join(
        [
            "==PROF== Connected to process 1234",
            NCU_HEADER,
            ncu_row("0", "flash_fwd_splitkv_kernel", DRAM, "%", "80"),
            ncu_row("0", "flash_fwd_splitkv_kernel", OCCUPANCY, "%", "20"),
            ncu_row("0", "flash_fwd_splitkv_kernel", TIME, "usecond", "3"),
            ncu_row("1", "sm90_xmma_gemm_f16f16", DRAM, "%", "60"),
            ncu_row("1", "sm90_xmma_gemm_f16f16", TIME, "nsecond", "1,000"),
            ncu_row("2", "sm90_xmma_gemm_f16f16", DRAM, "%", "90"),
            ncu_row("2", "sm90_xmma_gemm_f16f16", TIME, "nsecond", "3000"),
        ]
    )
    + "\n"
)


def test_ncu_csv_summary(tmp_path):
    path = tmp_path / "ncu.csv"
    path.write_text(NCU_CSV)
    s = summarise_ncu_csv(path)
    assert s["attention"] == {
        "kernels": 1,
        "time_ns": 3000.0,
        "dram_throughput_pct": 80.0,
        "achieved_occupancy_pct": 20.0,
    }
    assert s["matmul"]["kernels"] == 2 and s["matmul"]["time_ns"] == 4000.0
    assert s["matmul"]["dram_throughput_pct"] == pytest.approx((60 * 1000 + 90 * 3000) / 4000)
    assert s["matmul"]["achieved_occupancy_pct"] is None
    (tmp_path / "empty.csv").write_text("no header here\n")
    with pytest.raises(ValueError, match="no ncu CSV header"):
        summarise_ncu_csv(tmp_path / "empty.csv")
