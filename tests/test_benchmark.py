"""A smoke test of the benchmark script: it runs on tiny synthetic data and writes its table."""

import json
import re
import runpy
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "experiments" / "benchmark.py"


def test_benchmark_smoke(tmp_path, capsys, monkeypatch):
    flags = ["--data", "synthetic", "--synthetic-examples", "640", "--skip-baseline", "--repetitions", "1",
             "--scaling", "1,3", "--no-forced-devices", "--no-inference", "--abba-rounds", "3"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", [str(BENCHMARK), *flags, "--out-dir", str(tmp_path)])
    runpy.run_path(str(BENCHMARK), run_name="__main__")

    printed = capsys.readouterr().out
    assert "hand-written / autodiff" in printed and "sweep / (7 x epoch)" in printed
    assert "lane program / bare" in printed and "ABBA order" in printed
    result = json.loads((tmp_path / "benchmark_cpu.json").read_text())
    assert result["matmul_gflops"] > 0 and 0 < result["epoch_fraction_of_ceiling"]
    assert set(result["seconds"]) >= {
        "epoch",
        "autodiff_epoch",
        "sweep_epoch",
        "sweep_epoch_vmap",
        "grid_epoch",
        "grid_eval",
        "eval",
        "compile_epoch",
        "compile_sweep",
        "compile_grid",
        "momentum_epoch",
        "adam_epoch",
    }
    assert 0 < result["grid_over_sequential"] and 0 < result["grid_eval_over_grid_epoch"]
    for name in ("hand_over_autodiff", "lane_program_over_bare"):
        interval = result["intervals"][name]
        assert len(interval["rounds"]) == 3 and interval["low"] <= interval["median"] <= interval["high"]
        assert result[name] == interval["median"]
    assert 0 < result["epoch_over_gemm_only"] and result["best_matmul_gflops"] > 0
    assert set(result["seconds"]["lanes_scaling"]) == {"1", "3"}
    assert "| 3 |" in printed
    assert "| training epoch, hand-written backward |" in (tmp_path / "benchmarks.md").read_text()

    # A section that an earlier version of the script wrote says what it lacks.
    assert "earlier version" not in printed
    older = {key: value for key, value in result.items() if key != "adam_over_sgd"}
    table = runpy.run_path(str(BENCHMARK))["table"]
    assert re.search(r"Written by an earlier version of this script: 1 of the \d+ rows", table(older))


def test_the_lane_memory_table_has_the_device_peak_where_the_device_counted_it():
    lane_memory_table = runpy.run_path(str(BENCHMARK))["lane_memory_table"]
    row = {"wall": 9.0, "peak_rss_mb": 2048.0, "train": 1.0, "eval": 2.0, "train_gflops": 160.0, "eval_gflops": 300.0}
    on_cpu = lane_memory_table({"lane_memory": {"8": row | {"peak_device_mb": None}}})
    assert "peak device memory" not in "\n".join(on_cpu) and "| 8 | 2.00 GB | 256.0 MB |" in on_cpu[-1]
    on_gpu = lane_memory_table({"lane_memory": {"8": row | {"peak_device_mb": 512.0}}})
    assert "| peak device memory | per lane |" in on_gpu[-3] and on_gpu[-2].count("---") == 8
    assert "| 8 | 2.00 GB | 0.50 GB | 64.0 MB | 125.0 ms | 250.0 ms | 160 | 300 |" == on_gpu[-1]


def test_a_ratio_meets_its_target_only_when_its_whole_interval_does():
    verdict = runpy.run_path(str(BENCHMARK))["verdict"]
    assert verdict({"low": 0.97, "high": 0.99}, 1.0) == "met"
    assert verdict({"low": 0.99, "high": 1.02}, 1.0) == "cannot be told apart from 1"
    assert verdict({"low": 1.01, "high": 1.04}, 1.0) == "not met"


def test_the_lane_program_trains_with_the_gradient_function_it_is_given():
    """Autodiff's epoch is timed through the same driver: passed in as a static argument, it is traced
    (a monkeypatched function under an already traced program would silently reuse the hand-written
    trace) and trains the same network."""
    import jax
    import numpy as np

    from fmlp.description import Architecture, Experiment
    from fmlp.training import lanes
    from tests.autodiff import autodiff_loss_grads_and_logits

    config = Experiment(network=Architecture((784, 8, 10)))
    state = lanes.init_lanes(config, [0.1], [1])
    images = jax.random.normal(jax.random.key(0), (192, 784))
    labels = jax.random.randint(jax.random.key(1), (192,), 0, 10)
    traced = []

    def autodiff(*args):
        traced.append(1)
        return autodiff_loss_grads_and_logits(*args)

    hand, _ = lanes.train_epoch(config, state, images, labels)
    by_autodiff, _ = lanes.train_epoch(config, state, images, labels, gradients=autodiff)
    assert traced
    for a, b in zip(jax.tree.leaves(hand.params), jax.tree.leaves(by_autodiff.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
