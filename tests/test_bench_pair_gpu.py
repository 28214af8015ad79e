"""The pair GPU benchmark's CPU check: ``python -m bench.bench_pair_gpu --device cpu --tiny`` on the tiny models."""

import json

import pytest


@pytest.mark.slow
def test_gpu_bench_runs_on_cpu_with_the_tiny_models(tmp_path):
    """``python -m bench.bench_pair_gpu --device cpu --tiny``: every phase runs and reports what the GPU run will."""
    from bench.bench_pair_gpu import main

    results = main(["--device", "cpu", "--tiny", "--out", str(tmp_path / "pair.json")])
    assert json.loads((tmp_path / "pair.json").read_text()) == results
    (generation,) = results["generation"]
    assert generation["size"] == 32 and generation["images_per_s"] > 0 and generation["diffusers_images_per_s"] > 0
    assert results["judges"]["likelihood_global_images_per_s"] > 0 and results["judges"]["rubric_images_per_s"] > 0
    assert results["round"]["images"] == 4 and results["round"]["diffusers_lora_file_written"]
    assert [row["size"] for row in results["memory_probe"]] == [32]
    assert "memory_probe_swap" not in results  # CPU: nothing to swap
