"""The one description of an experiment: every field classed, defaults written once, the JSON's config
as the description written out, old files read with defaults, and a new option added in three places."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmlp import description
from fmlp.description import Experiment, defaults, differences, from_config, identity, to_config, updated
from fmlp.nn import layers, losses, mlp
from fmlp.run import flags

from .test_experiments import BASELINE, run_script, tiny

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = ("figures/**/lr_sweep.json", "figures/**/finetune.json", "figures/baseline.json")
TRAINING_RESULTS = [path for pattern in PATTERNS for path in sorted(ROOT.glob(pattern))]


def test_every_field_is_either_defining_or_named_as_not_defining():
    """A new field must be classed, so that it cannot be forgotten by resume and the hand-in."""
    paths = set(description.field_paths())
    assert set(description.DEFINING) | set(description.NOT_DEFINING) == paths
    assert not set(description.DEFINING) & set(description.NOT_DEFINING)
    assert len(description.DEFINING) + len(description.NOT_DEFINING) == len(paths)


def test_the_rate_decay_and_the_loss_define_a_result_and_the_output_folder_does_not():
    sweep = defaults("lr_sweep")
    assert differences(sweep, updated(sweep, training={"rate_decay": 0.5})) == [
        "training.rate_decay 1.0 there, 0.5 now"
    ]
    assert differences(sweep, updated(sweep, network={"loss": "other"}))
    assert not differences(sweep, updated(sweep, outputs={"folder": Path("elsewhere")}, lanes={"group": 7}))


@pytest.mark.parametrize("path", TRAINING_RESULTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_written_out_description_keeps_every_key_and_value_of_a_committed_result(path):
    """The JSON contract only grows: a config read and written again keeps every key it had."""
    recorded = json.loads(path.read_text())["config"]
    written = to_config(from_config(recorded))
    assert {key: written.get(key, "missing") for key in recorded} == recorded


def test_a_config_from_before_a_field_reads_it_as_its_default():
    old = to_config(defaults("lr_sweep"))
    for newer in ("rate_decay", "loss", "activation", "heartbeat_timeout", "resume"):
        del old[newer]
    assert identity(from_config(old)) == identity(defaults("lr_sweep"))
    with pytest.raises(ValueError, match="not a description"):
        from_config({"epochs": "many", "hidden": 5})


@pytest.mark.parametrize("script", ["baseline", "lr_sweep"])
def test_the_flags_defaults_are_the_descriptions(script):
    parser = {"baseline": flags.baseline_parser, "lr_sweep": flags.sweep_parser}[script]()
    assert flags.experiment(parser.parse_args([]), script) == defaults(script)


def test_finetunes_defaults_are_its_description(tmp_path):
    network = tmp_path / "n.npz"
    network.write_bytes(b"")
    args = flags.finetune_parser().parse_args([str(network), "--bits", "2", "--hidden", "8", "--activation", "tanh"])
    described = flags.experiment(args, "finetune")
    assert described.training == defaults("finetune").training
    assert described.design.learning_rates == description.FINE_TUNE_RATES
    assert described.design.networks == (str(network),) and described.network.weight_bits == 2


@pytest.mark.parametrize(
    "changes",
    [
        {"training": {"epochs": 3, "optimizer": "nesterov", "momentum": 0.8, "rate_decay": 0.7, "early_stop": 2}},
        {"network": {"sizes": (784, 64, 10), "activation": "relu"}, "data": {"train_limit": 500, "validation": 100}},
        {"design": {"learning_rates": (0.8, 0.3), "seed": 7, "seeds": 3}, "outputs": {"save_params": Path("p q")}},
        {"training": {"optimizer": "momentum"}, "data": {"source": "idx", "folder": Path("/data")}},
    ],
)
def test_a_rebuilt_command_gives_back_the_experiment(changes):
    """command_words is the inverse of flags.experiment: its words, parsed, describe the same run."""
    experiment = updated(defaults("lr_sweep"), **changes)
    if experiment.training.optimizer == "momentum" and experiment.training.momentum is None:
        experiment = updated(experiment, training={"momentum": flags.DEFAULT_MOMENTUM})  # as check_args does
    words = flags.command_words(experiment)
    args = flags.sweep_parser().parse_args(shlex.split(" ".join(words[2:])))
    if args.optimizer in ("momentum", "nesterov") and args.momentum is None:
        args.momentum = flags.DEFAULT_MOMENTUM
    assert flags.experiment(args, "lr_sweep") == experiment


def squared_error(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean over the batch of sum_k (p_k - onehot_k)^2, with the probabilities p."""
    probs = layers.softmax(logits)
    return jnp.mean(jnp.sum((probs - jax.nn.one_hot(labels, probs.shape[-1])) ** 2, axis=-1)), probs


def squared_error_backward(probs: jax.Array, labels: jax.Array) -> jax.Array:
    """dL/dz = softmax_backward(p, dL/dp) with dL/dp = 2 (p - onehot) / B."""
    dprobs = 2 * (probs - jax.nn.one_hot(labels, probs.shape[-1])) / probs.shape[0]
    return layers.softmax_backward(probs, dprobs)


@pytest.fixture
def with_squared_error(monkeypatch):
    """A new loss, added where README's "Adding an option" says: its pair of functions in the table of
    losses and its name in the description; nothing else learns about it."""
    monkeypatch.setitem(losses.LOSSES, "squared_error", losses.Loss(squared_error, squared_error_backward))
    monkeypatch.setitem(description.LOSSES, "squared_error", "squared error")


def test_a_new_loss_is_a_pair_of_functions_and_its_gradients_are_autodiffs(with_squared_error, float64):
    architecture = mlp.Architecture((12, 8, 5), loss="squared_error")
    params = mlp.init(jax.random.key(0), architecture, jnp.float64)
    images = jax.random.normal(jax.random.key(1), (16, 12), jnp.float64)
    labels = jax.random.randint(jax.random.key(2), (16,), 0, 5)
    loss, grads = mlp.loss_and_grads(architecture, params, images, labels)

    def reference(params):
        return squared_error(mlp.forward_logits(architecture, params, images)[0], labels)[0]

    expected_loss, expected = jax.value_and_grad(reference)(params)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-13)
    for ours, theirs in zip(jax.tree.leaves(grads), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)


def test_a_new_loss_reaches_the_compiled_step_the_json_the_identity_and_the_command(
    with_squared_error, idx_dir, tmp_path
):
    assert run_script(BASELINE, *tiny(idx_dir, tmp_path / "se", "--loss", "squared_error")) == 0
    assert run_script(BASELINE, *tiny(idx_dir, tmp_path / "ce")) == 0
    documents = {name: json.loads((tmp_path / name / "baseline.json").read_text()) for name in ("se", "ce")}
    assert documents["se"]["config"]["loss"] == "squared_error"
    assert documents["se"]["runs"][0]["epochs"] != documents["ce"]["runs"][0]["epochs"]
    described = from_config(documents["se"]["config"])
    assert identity(described)["network.loss"] == "squared_error"
    assert differences(from_config(documents["ce"]["config"]), described) == [
        "network.loss 'cross_entropy' there, 'squared_error' now"
    ]
    assert "--loss squared_error" in flags.command_words(described)


# A training option added in the three places of README's "Adding an option", in a scratch copy of the
# library: the description (the field and its class), the one function that reads it, and its flag.
WEIGHT_DECAY = {
    "fmlp/description.py": [
        ("    early_stop: int | None = None\n", "    early_stop: int | None = None\n    weight_decay: float = 0.0\n"),
        ('    "training.early_stop",\n', '    "training.early_stop", "training.weight_decay",\n'),
    ],
    "fmlp/training/train.py": [
        (
            "    correct = jnp.sum(jnp.argmax(scores, axis=-1) == labels)\n",
            "    correct = jnp.sum(jnp.argmax(scores, axis=-1) == labels)\n"
            "    decay = experiment.training.weight_decay\n"
            "    grads = jax.tree.map(lambda g, p: g + decay * p, grads, params)\n",
        )
    ],
    "fmlp/run/flags.py": [
        (
            '    add("--rate-decay", type=rate_decay, default=training.rate_decay,\n',
            '    add("--weight-decay", type=float, default=training.weight_decay, help="L2 penalty")\n'
            '    add("--rate-decay", type=rate_decay, default=training.rate_decay,\n',
        )
    ],
}
# Runs baseline.py once per set of flags in one process of the scratch library, then reads each result
# back through that library's description: what reached the JSON, the identity and the rebuilt command.
PROBE = """
import json, runpy, sys
from pathlib import Path
from fmlp import description
from fmlp.run import flags
script, *runs = sys.argv[1:]
shown = []
for run in runs:
    sys.argv = [script, *json.loads(run)]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as ended:
        assert not ended.code, ended.code
    out = Path(sys.argv[sys.argv.index("--out") + 1])
    document = json.loads((out / "baseline.json").read_text())
    described = description.from_config(document["config"])
    shown.append({"weight_decay": document["config"].get("weight_decay"), "runs": document["runs"],
                  "identity": description.identity(described)["training.weight_decay"],
                  "command": flags.command_words(described)})
print(json.dumps(shown))
"""


def test_a_new_training_option_takes_three_library_files_and_reaches_step_json_identity_and_command(idx_dir, tmp_path):
    scratch = tmp_path / "scratch"
    shutil.copytree(ROOT / "fmlp", scratch / "fmlp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "experiments", scratch / "experiments", ignore=shutil.ignore_patterns("__pycache__"))
    for name, edits in WEIGHT_DECAY.items():
        text = (scratch / name).read_text()
        for old, new in edits:
            assert text.count(old) == 1, (name, old)
            text = text.replace(old, new)
        (scratch / name).write_text(text)
    runs = [tiny(idx_dir, tmp_path / "decayed", "--weight-decay", "0.5"), tiny(idx_dir, tmp_path / "plain")]
    command = [sys.executable, "-c", PROBE, str(scratch / "experiments" / "baseline.py"), *map(json.dumps, runs)]
    shown = subprocess.run(command, env=os.environ | {"PYTHONPATH": str(scratch)}, cwd=scratch, capture_output=True,
                           text=True, timeout=180)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    decayed, plain = json.loads(shown.stdout.splitlines()[-1])
    assert decayed["weight_decay"] == 0.5 and plain["weight_decay"] == 0.0  # the JSON
    assert decayed["identity"] == 0.5 and plain["identity"] == 0.0  # the identity
    assert "--weight-decay 0.5" in decayed["command"] and not any("decay" in w for w in plain["command"])
    assert decayed["runs"][0]["epochs"] != plain["runs"][0]["epochs"]  # the compiled step


def test_no_library_module_below_the_flags_takes_an_argparse_namespace():
    users = [
        path.relative_to(ROOT).as_posix() for path in (ROOT / "fmlp").rglob("*.py") if "Namespace" in path.read_text()
    ]
    assert users == ["fmlp/run/flags.py"]


def test_imports_run_downward_only():
    """Each package imports only packages below it (and the modules at the bottom)."""
    order = ["description", "words", "files", "children", "data", "nn", "scale", "training", "analysis", "embedded",
             "run", "handin"]  # fmt: skip
    for path in (ROOT / "fmlp").rglob("*.py"):
        package = path.relative_to(ROOT / "fmlp").parts[0].removesuffix(".py")
        if package == "__init__":
            continue
        for line in path.read_text().splitlines():
            words = line.replace(",", " ").split()
            if len(words) < 4 or words[0] != "from" or not words[1].startswith("fmlp"):
                continue
            imported = [words[1].split(".")[1]] if "." in words[1] else words[3:]
            for name in imported:
                assert order.index(name) <= order.index(package), f"{path.relative_to(ROOT)}: {line.strip()}"


def test_experiment_is_hashable_and_a_static_argument():
    assert hash(defaults("lr_sweep")) == hash(
        Experiment(design=description.Design("lr_sweep", description.SWEEP_RATES))
    )
