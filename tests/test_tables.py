"""Every table of the report against small hand-made results whose final, best, lowest and chosen values
all differ, so that a table showing one in place of another fails."""

import re

import pytest

from fmlp.analysis import stats
from fmlp.handin.report import tables
from fmlp.run import metrics_json
from fmlp.training.lanes import EpochRecord, LaneHistory

RATES, SEEDS = (0.5, 0.1), (1, 2, 3)
# Per epoch 1..4 at lr 0.5: the test accuracy peaks at epoch 2, the validation accuracy at epoch 3, the
# test loss is lowest at epoch 3; so the final, best, chosen and lowest values are four different ones.
CURVES = {
    0.5: {"test_accuracy": (0.50, 0.90, 0.80, 0.70), "val_accuracy": (0.55, 0.85, 0.95, 0.75),
          "test_loss": (1.0, 0.4, 0.2, 0.3), "train_loss": (1.2, 0.5, 0.3, 0.25)},
    0.1: {"test_accuracy": (0.40, 0.60, 0.65, 0.66), "val_accuracy": (0.45, 0.60, 0.62, 0.64),
          "test_loss": (1.5, 1.1, 1.0, 0.9), "train_loss": (1.6, 1.2, 1.1, 1.0)},
}  # fmt: skip


def _record(rate: float, seed: int, epoch: int, shift: float) -> EpochRecord:
    """Epoch `epoch` of the lane: the curves, the accuracies raised by 0.01 per seed and by `shift`."""
    curve = {key: values[epoch - 1] for key, values in CURVES[rate].items()}
    lift = 0.01 * seed + shift
    return EpochRecord(epoch, curve["train_loss"], 0.5, 0.5, curve["val_accuracy"] + 0.01 * seed,
                       curve["test_loss"], curve["test_accuracy"] + lift)  # fmt: skip


def sweep(seeds=SEEDS, shift: float = 0.0, early_stop: int | None = None) -> dict:
    """A sweep's metrics JSON, as fmlp.run.metrics_json builds it from the lanes' records."""
    lanes = [(rate, seed) for rate in RATES for seed in seeds]
    history = LaneHistory(
        tuple(rate for rate, _ in lanes), tuple(seed for _, seed in lanes),
        tuple(tuple(_record(rate, seed, epoch, shift) for epoch in range(1, 5)) for rate, seed in lanes),
        (None,) * len(lanes), (None,) * len(lanes), 0.0, 0.0, 0.0,
    )  # fmt: skip
    runs = metrics_json.runs(history, early_stop is not None)
    return {"config": {"early_stop": early_stop}, "runs": runs, "summary": stats.summary(runs),
            "selected": stats.select(runs)}  # fmt: skip


def row_of(table: str, first_cell: str) -> list[str]:
    """The cells of the row whose first cell is `first_cell`."""
    for line in table.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{table}")


@pytest.fixture(scope="module")
def results() -> dict:
    grid = sweep()
    single = sweep(seeds=(1,))
    baseline = single | {"runs": [run for run in single["runs"] if run["learning_rate"] == 0.5]}
    return {
        "baseline.json": baseline,
        "lr_sweep.json": single,
        "robustness/lr_sweep.json": grid,
        "optimizers/adam/lr_sweep.json": sweep(shift=0.05),
        "optimizers/momentum/lr_sweep.json": sweep(early_stop=2),  # not the full budget: left out
        "activations/tanh/lr_sweep.json": sweep(shift=-0.1),
        "gradcheck.json": {"autodiff": {"max_relative_error": 3.1e-15, "loss_difference": 4.4e-16},
                           "finite_differences": {"epsilon": 1e-5, "directions": 20, "max_relative_error": 2.7e-9}},
        "diagnose/diagnose.json": {"networks": {"lr_1_seed_1": {
            "accuracy": 0.9812, "calibration": {"ece": 0.0123, "mean_confidence_right": 0.991,
                                                "mean_confidence_wrong": 0.702},
            "saturation": [{"share_saturated": 0.412, "share_units_saturated": 0.031, "mean_derivative": 0.0912},
                           {"share_saturated": 0.234, "share_units_saturated": 0.008, "mean_derivative": 0.1534}]}}},
        "benchmark_cpu.json": {"machine": {"device": "A | B", "cpu_count": 2, "jax": "0.10.2"},
                               "best_matmul_gflops": 401.2, "seconds": {"epoch": 0.4412}, "epoch_over_gemm_only": 1.1,
                               "hand_over_autodiff": 0.92, "sweep_over_sequential": 1.004},
    }  # fmt: skip


def test_the_baseline_table_shows_the_test_accuracy_and_loss_at_those_epochs(results):
    table = tables.baseline_epochs_table(results)
    assert row_of(table, "epoch")[1:] == ["1", "4"]
    assert row_of(table, "test accuracy")[1:] == ["51.00%", "71.00%"]  # the final epoch's, not the best
    assert row_of(table, "test loss")[1:] == ["1.0000", "0.3000"]


def test_the_sweep_table_shows_final_best_and_lowest_each_in_its_column(results):
    cells = row_of(tables.sweep_table(results), "0.5")
    assert cells[1:] == ["71.00%", "91.00% (2)", "0.3000", "0.2000 (3)", "0.2500"]


def test_the_robustness_table_shows_the_final_accuracy_over_seeds_and_the_best_validation(results):
    cells = row_of(tables.robustness_table(results), "0.5")
    assert cells[1] == "3" and cells[2] == "72.00% ± 1.00%" and cells[4] == "71.00% – 73.00%"
    assert cells[5] == "97.00% ± 1.00%"


def test_the_selected_table_shows_the_choice_on_validation_and_its_test_accuracy(results):
    cells = row_of(tables.selected_table(results), "0.5")
    assert cells[1:4] == ["3", "97.00%", "82.00%"]  # epoch 3 by validation: neither final (72%) nor best (92%)


def test_the_optimizers_table_pairs_each_choice_with_plain_sgds_by_seed(results):
    table = tables.optimizers_table(results)
    sgd, adam = row_of(table, "SGD (ours)"), row_of(table, "adam")
    assert sgd[2] == "0.5, 3" and sgd[3] == "97.00%" and sgd[4].startswith("82.00% (") and sgd[5] == "–"
    assert adam[4].startswith("87.00% (") and adam[5] == "5.00% ± 0.00%"
    assert "momentum" not in table  # its sweep stopped early: not the same budget


def test_the_early_stopping_table_shows_the_kept_parameters_test_accuracy(results):
    cells = row_of(tables.early_stopping_table(results), "SGD (ours)")
    patience_stops = [stats.early_stopped(run["epochs"], tables.PATIENCE)[0] for run in results[
        "robustness/lr_sweep.json"]["runs"] if run["learning_rate"] == 0.5]  # fmt: skip
    assert cells[1] == "0.5" and cells[2].startswith(f"{sum(patience_stops) / 3:.1f} (")
    assert cells[3].startswith("82.00% (") and cells[4] == "82.00%"  # kept: the best validation epoch's


def test_the_activations_table_shows_final_accuracies_by_rate_and_the_choice(results):
    table = tables.activations_table(results)
    assert row_of(table, "activation")[1:3] == ["lr 0.5", "lr 0.1"]
    sigmoid, tanh = row_of(table, "sigmoid"), row_of(table, "tanh")
    assert sigmoid[1:4] == ["72.00%", "68.00%", "0.5, 3"] and sigmoid[4].startswith("82.00% (")
    assert tanh[1:3] == ["62.00%", "58.00%"]


def test_the_gradcheck_diagnose_and_speed_tables_show_their_results_values(results):
    gradcheck = tables.gradcheck_table(results)
    assert "3.1e-15" in row_of(gradcheck, "autodiff (tests/autodiff.py)")[2]
    assert row_of(gradcheck, "central differences, step 1e-05")[2] == "2.7e-09"
    diagnose = row_of(tables.diagnose_table(results), "lr_1_seed_1")
    assert diagnose[1:] == ["98.12%", "41.2% / 23.4%", "3.1% / 0.8%", "0.091 / 0.153", "1.23%", "99.1% / 70.2%"]
    speed = row_of(tables.speed_table(results), "A \\| B (2 cores, JAX 0.10.2)")
    assert speed[1:] == ["401 GFLOP/s", "0.441 s", "1.10", "0.92", "1.00"]


def test_the_cortex_m_table_shows_each_core_and_widths_measurements_and_the_command():
    def measured(core, bits, instructions, agree):
        return {"params": "p.npz", "machine": f"board-{core}", "bits": bits, "images": 1000, "agree": agree,
                "accuracy": 0.9 + bits / 1000, "instructions_per_image": instructions, "flash_bytes": 100 * bits,
                "stack_bytes": 30 + bits, "ram_bytes": 300 + bits}  # fmt: skip

    results = {"cortex_m/cortex-m4_8bit.json": measured("m4", 8, 708296.25, 1000),
               "cortex_m/cortex-m4_1bit.json": measured("m4", 1, 627229.0, 999),
               "cortex_m/cortex-m55_8bit.json": measured("m55", 8, 150025.4, 1000)}  # fmt: skip
    rows = tables.cortex_m_table(results).splitlines()[2:]
    assert rows == [
        "| cortex-m4 (board-m4) | 8 bit | 1,000 of 1,000 | 90.80% | 708,296 | 800 B | 308 B (38 B) |",
        "| cortex-m4 (board-m4) | 1 bit | 999 of 1,000 | 90.10% | 627,229 | 100 B | 301 B (31 B) |",
        "| cortex-m55 (board-m55) | 8 bit | 1,000 of 1,000 | 90.80% | 150,025 | 800 B | 308 B (38 B) |",
    ]
    assert "export_c.py p.npz --bits B --target CORE" in tables.caption("cortex_m", results | {"lr_sweep.json": {}})
