"""The run records of the metrics JSON: final numbers, best epoch, and the not-learning flag."""

from fmlp.run import metrics_json
from fmlp.training.lanes import EpochRecord, LaneHistory


def history(*lanes_records, diverged=None, stopped=None) -> LaneHistory:
    count = len(lanes_records)
    return LaneHistory(
        (0.1,) * count, tuple(range(count)), tuple(lanes_records), diverged or (None,) * count,
        stopped or (None,) * count, 1.0, 2.0, 0.5,
    )  # fmt: skip


def test_final_is_the_last_epoch_or_with_early_stopping_the_best_by_validation():
    records = (
        EpochRecord(1, 1.0, 0.5, 0.9, 0.60, 0.9, 0.61),
        EpochRecord(2, 0.8, 0.6, 0.7, 0.70, 0.7, 0.72),
        EpochRecord(3, 0.6, 0.7, 0.8, 0.65, 0.8, 0.66),
    )
    plain, stopped = metrics_json.runs(history(records), False)[0], metrics_json.runs(history(records), True)[0]
    assert plain["best_epoch"] == 2 and plain["final"] == {"epoch": 3, "test_loss": 0.8, "test_accuracy": 0.66}
    assert stopped["final"] == {"epoch": 2, "test_loss": 0.7, "test_accuracy": 0.72}
    assert not plain["not_learning"]


def test_a_test_loss_above_ten_times_ln_10_is_flagged_as_not_learning():
    records = (EpochRecord(1, 40.0, 0.1, None, None, 31.0, 0.1), EpochRecord(2, 30.0, 0.1, None, None, 25.0, 0.1))
    run = metrics_json.runs(history(records), False)[0]
    assert run["not_learning"] and run["best_epoch"] is None


def test_a_diverged_run_has_no_final_numbers():
    records = (EpochRecord(1, 1.0, 0.5, None, None, 0.9, 0.6), EpochRecord(2, None, None, None, None, None, None))
    run = metrics_json.runs(history(records, diverged=(2,)), False)[0]
    assert run["diverged_at_epoch"] == 2 and run["final"]["test_accuracy"] is None
