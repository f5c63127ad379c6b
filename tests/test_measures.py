"""The quantities and predicates the report's prose is computed from, on small hand-made results whose
answers are known; the filters that write them; the sheet's departures."""

import pytest

from fmlp.description import defaults, updated
from fmlp.handin import sheet
from fmlp.handin.report import formats, measures, prose


def run(rate, train, test, accuracy=None, seed=1, val=None, diverged=None):
    """A run record with the given per-epoch train losses, test losses and test accuracies."""
    accuracy = accuracy or [0.5 + 0.01 * i for i in range(len(train))]
    val = val or accuracy
    columns = enumerate(zip(train, test, accuracy, val))
    epochs = [{"epoch": i + 1, "train_loss": a, "test_loss": b, "test_accuracy": c, "train_accuracy": c,
               "val_accuracy": v, "val_loss": b} for i, (a, b, c, v) in columns]  # fmt: skip
    return {"learning_rate": rate, "seed": seed, "diverged_at_epoch": diverged, "epochs": epochs,
            "final": {"epoch": len(epochs), "test_accuracy": accuracy[-1]}}  # fmt: skip


def test_the_train_loss_below_the_test_loss_from_the_first_epoch_it_stays_below():
    assert measures.train_below_test_from(run(1, [3, 2, 1, 0.5, 0.4], [2, 2.5, 0.9, 0.6, 0.6])) == 4
    assert measures.train_below_test_from(run(1, [0.1, 0.1], [0.2, 0.2])) == 1
    assert measures.train_below_test_from(run(1, [0.3, 0.3], [0.2, 0.2])) is None


def test_a_test_loss_turns_up_only_past_five_percent_above_its_minimum():
    flattened = run(1, [1, 1, 1], [0.0600, 0.0597, 0.0599])  # the baseline's shape: lowest before the end
    assert not measures.turns_up(flattened) and not measures.still_falling(flattened)
    rising = run(1, [1, 1, 1], [0.0550, 0.0580, 0.0611])
    assert measures.turns_up(rising) and measures.lowest(rising)["epoch"] == 1
    assert measures.still_falling(run(1, [1, 1], [0.3, 0.2]))


def test_the_order_of_the_rates_breaks_at_the_first_epoch_a_smaller_rate_is_as_good():
    large = run(1.0, [1] * 3, [1] * 3, [0.90, 0.95, 0.96])
    small = run(0.1, [1] * 3, [1] * 3, [0.80, 0.95, 0.97])
    assert measures.order_broken_at([small, large]) == 2
    assert measures.order_broken_at([run(1.0, [1], [1], [0.9]), run(0.1, [1], [1], [0.8])]) is None
    assert [r["learning_rate"] for r in measures.ranked([large, small])] == [0.1, 1.0]


def test_the_slope_is_the_mean_change_per_epoch_over_the_last_epochs():
    accuracy = [0.5, 0.6, 0.7, 0.80, 0.81, 0.82, 0.83, 0.84]
    assert measures.slope(run(1, [1] * 8, [1] * 8, accuracy)) == pytest.approx(0.01)
    assert measures.still_rising(run(1, [1] * 8, [1] * 8, accuracy))
    assert measures.slope(run(1, [1], [1], [0.5])) == 0.0


def test_intervals_overlap_when_they_share_a_point():
    assert measures.overlap([0.1, 0.2], [0.2, 0.3]) and not measures.overlap([0.1, 0.2], [0.21, 0.3])
    assert not measures.overlap(None, [0.1, 0.2])
    assert measures.separable({"ci95": [0.001, 0.002]}) and not measures.separable({"ci95": [-0.001, 0.002]})


def test_paired_differences_and_early_stopping_on_a_hand_made_sweep():
    def sweep(offset):
        runs = [run(1.0, [1] * 4, [1] * 4, [0.9 + offset + 0.001 * seed] * 4, seed, val=[0.9, 0.95, 0.94, 0.93])
                for seed in (1, 2, 3)]  # fmt: skip
        return {"runs": runs, "selected": {"learning_rate": 1.0, "epoch": 4}}

    difference = measures.paired(sweep(0.002), sweep(0.0))
    assert difference["mean"] == pytest.approx(0.002) and difference["n"] == 3
    stopped = measures.early_stopping(sweep(0.0), patience=2)
    assert stopped["trained"] == [4, 4, 4] and stopped["saved"] == 0 and stopped["budget"] == 4
    assert measures.early_stopping(sweep(0.0), patience=1)["trained"] == [3, 3, 3]


def test_a_rate_times_a_factor_matches_the_sweeps_rate_despite_rounding():
    sweep = {"runs": [run(0.1, [1], [1]), run(1.0, [1], [1])]}
    assert 0.01 / (1 - 0.9) != 0.1 and measures.matching_rate(sweep, 0.01 / (1 - 0.9)) == 0.1
    assert measures.matching_rate(sweep, 0.5) is None and measures.rates(sweep) == [1.0, 0.1]


def test_the_filters_write_numbers_as_the_prose_quotes_them():
    assert formats.percent(0.98153) == "98.15%" and formats.percent(None) == "–"
    assert formats.points(-0.0012) == "−0.12" and formats.fixed(0.05974, 4) == "0.0597"
    assert formats.count(10000) == "10,000" and formats.rate(1.0) == "1" and formats.rate(0.0003) == "0.0003"
    assert formats.duration(1126.46) == "18 min 46 s" and formats.duration(29.66) == "29.7 s"
    assert formats.listing(["1", "0.5", "0.1"]) == "1, 0.5 and 0.1" and formats.listing(["1"]) == "1"


def test_a_claim_is_chosen_by_its_predicate():
    template = "{% if turns_up(r) %}It overfits.{% else %}It does not overfit.{% endif %}"
    assert prose.render(template, "t", {"r": run(1, [1] * 2, [0.05, 0.06])}) == "It overfits."
    assert prose.render(template, "t", {"r": run(1, [1] * 2, [0.06, 0.05])}) == "It does not overfit."


def test_the_sheets_design_departs_from_nothing_and_others_are_named():
    sweep = defaults("lr_sweep")
    assert sheet.departures(sweep) == []
    other = updated(sweep, design={"learning_rates": (2.0, 0.1)}, training={"epochs": 3})
    assert sheet.departures(other) == ["2 learning rates, not at least 5", "learning rate 2 outside [0.001, 1]",
                                       "3 epochs, not 30"]  # fmt: skip


def test_the_commonest_confusions_are_the_largest_off_diagonal_cells_ties_in_reading_order():
    matrix = [[50, 3, 0], [7, 40, 3], [0, 1, 60]]
    assert measures.commonest_confusions(matrix, 3) == [
        {"label": 1, "prediction": 0, "images": 7},
        {"label": 0, "prediction": 1, "images": 3},
        {"label": 1, "prediction": 2, "images": 3},
    ]
    assert measures.commonest_confusions([[5, 0], [0, 5]]) == []
    errors = [{"label": 4, "prediction": 9}, {"label": 7, "prediction": 2}, {"label": 4, "prediction": 9}]
    assert measures.error_pairs(errors, 2) == [{"label": 4, "prediction": 9, "images": 2},
                                               {"label": 7, "prediction": 2, "images": 1}]  # fmt: skip


def cortex_run(instructions, agree=10, images=10, ram=4000):
    """A Cortex-M measurement with the given instructions per image."""
    return {"instructions_per_image": instructions, "agree": agree, "images": images, "ram_bytes": ram}


def test_the_widths_that_take_fewer_instructions_than_eight_bits_are_chosen_by_their_counts():
    m4 = {8: cortex_run(700.0), 4: cortex_run(2800.0), 2: cortex_run(700.0), 1: cortex_run(630.0)}
    assert measures.instruction_ratio(m4, 4) == 4.0 and measures.instruction_ratio(m4, 1) == 0.9
    assert measures.widths_fewer(m4) == [1]  # a tie is not fewer
    assert measures.widths_fewer({8: cortex_run(150.0), 1: cortex_run(600.0)}) == []


def test_all_agree_only_when_every_image_of_every_core_and_width_agrees():
    cortex = {"cortex-m4": {8: cortex_run(1.0), 1: cortex_run(1.0)}, "cortex-m55": {8: cortex_run(1.0)}}
    assert measures.all_agree(cortex) and measures.largest_ram(cortex) == 4000
    cortex["cortex-m4"][1] = cortex_run(1.0, ram=10328)
    assert measures.largest_ram(cortex) == 10328
    cortex["cortex-m55"][1] = cortex_run(1.0, agree=9)
    assert not measures.all_agree(cortex)
