"""A design in words: one function from the description of an experiment to the sentence that says what
it trains and how (`describe`), which the report's setup, its figure captions and the training scripts'
first line use, and the predicates that choose the report's sentences about the method.

Imports only the description, so that the words follow every field that defines a result: a field
whose value is not its default always shows (tests/test_words.py walks every DEFINING field).
"""

from fmlp.description import (
    LOSSES,
    MNIST_TEST_SIZE,
    MNIST_TRAIN_SIZE,
    Architecture,
    Data,
    Experiment,
    defaults,
    optimizer_title,
    rate_name,
)

INITIALISATION = {  # of each hidden activation, as fmlp.nn.mlp.init draws it (tests/test_words.py checks)
    "sigmoid": "weights and biases N(0, 1)·√(1/fan_in)",
    "tanh": "weights N(0, 1)·√(2/(fan_in + fan_out)) (Glorot's rule), biases 0",
    "relu": "weights N(0, 1)·√(2/fan_in) (He's rule), biases 0",
}
SCRIPTS = {"baseline": "one run", "lr_sweep": "a learning-rate sweep", "finetune": "fine-tuning of saved networks"}


def count_text(number: int, thing: str) -> str:
    """"1 epoch", "3 epochs", "10,000 images"."""
    return f"{number:,} {thing}{'s' * (number != 1)}"


def network_words(network: Architecture) -> str:
    """The network: "784 → 512 → 128 → 10, sigmoid hidden layers, softmax output"."""
    quantized = f", weights rounded to {network.weight_bits} bits in the forward pass" if network.weight_bits else ""
    return f"{' → '.join(map(str, network.sizes))}, {network.activation} hidden layers, softmax output{quantized}"


def optimizer_words(experiment: Experiment) -> str:
    """The optimizer and who wrote its update: "minibatch SGD (its update written out by hand)"."""
    training = experiment.training
    if training.optimizer == "sgd":
        return "minibatch SGD (its update written out by hand)"
    return f"minibatch {optimizer_title(training)} (optax's update, fed the hand-derived gradients)"


def schedule_words(experiment: Experiment) -> str:
    """Batch, epochs, decay and early stopping: "batch size 64, 30 epochs"."""
    training = experiment.training
    words = [f"batch size {training.batch_size}", count_text(training.epochs, "epoch")]
    if training.rate_decay != 1.0:
        words.append(f"every rate multiplied by {training.rate_decay:g} after each epoch")
    if training.early_stop is not None:
        words.append(f"stopped after {count_text(training.early_stop, 'epoch')} without a better validation "
                     "accuracy, keeping its best parameters")  # fmt: skip
    return ", ".join(words)


def lanes_words(experiment: Experiment) -> str:
    """The rates and seeds, or the networks fine-tuned: "learning rates 1, 0.5 and 0.1, seeds 1 to 3"."""
    design = experiment.design
    rates = [rate_name(rate) for rate in design.learning_rates]
    rate_text = f"learning rate {rates[0]}" if len(rates) == 1 else f"learning rates {listing(rates)}"
    if design.script == "finetune":
        return f"{rate_text}, from {count_text(len(design.networks), 'saved network')} (seeds {design.seed} on)"
    if design.script == "lr_sweep" and design.seeds > 1:
        return f"{rate_text}, each with seeds {design.seed} to {design.seed + design.seeds - 1}"
    return f"{rate_text}, seed {design.seed}"


def training_images_words(data: Data) -> str:
    """The training images: "all 60,000 training images", "the first 5,000 training images, the last
    1,000 of them held out for validation"."""
    used = data.train_limit or MNIST_TRAIN_SIZE
    text = f"all {used:,} training images" if used == MNIST_TRAIN_SIZE else f"the first {used:,} training images"
    return text + (f", the last {data.validation:,} of them held out for validation" if data.validation else "")


def data_words(experiment: Experiment) -> str:
    """The data: "real MNIST: all 60,000 training images, and the 10,000 test images"."""
    return f"real MNIST: {training_images_words(experiment.data)}, and the {MNIST_TEST_SIZE:,} test images"


def describe(experiment: Experiment) -> str:
    """The design as one sentence: what is trained, with what initialisation and loss, by which optimizer,
    for how long, at which rates and seeds, on which data. Every DEFINING field that differs from its
    default shows in it."""
    network = experiment.network
    return (
        f"{SCRIPTS[experiment.design.script].capitalize()} of the network {network_words(network)} "
        f"({INITIALISATION[network.activation]}), trained on the mean {LOSSES[network.loss]} by "
        f"{optimizer_words(experiment)}, {schedule_words(experiment)}; {lanes_words(experiment)}; "
        f"{data_words(experiment)}."
    )


def listing(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


# The predicates of the method, for the report's sentences about it (`fmlp.handin.report.prose`).


def is_reference_network(network: Architecture) -> bool:
    """Whether the network is the exercise's: 784-512-128-10, sigmoid, float weights, cross-entropy."""
    return network == defaults("baseline").network


def all_of_mnist(experiment: Experiment) -> bool:
    """Whether it trains on all 60,000 training images (none left out, none held out)."""
    return experiment.data.train_limit in (None, MNIST_TRAIN_SIZE) and not experiment.data.validation
