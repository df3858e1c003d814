"""The dataset registry: offline datasets' shapes and ranges, generator ground truth, hub errors
offline, the hub conversion path (on a fake hub), and flwr-datasets partitions."""

import datasets
import numpy as np
import pytest
from PIL import Image
from scipy.stats import binom, norm

from common.data import (
    DatasetUnavailable,
    available,
    hub_names,
    load_dataset,
    partition,
    train_test_split,
)
from common.data import hub as hub_module
from common.data import offline as offline_module
from common.data.dataset import cache_path
from common.errors import BadInput

OFFLINE_SHAPES = {
    "digits": (1797, (1, 8, 8)),
    "mnist": (70000, (1, 28, 28)),
    "mnist1d": (5000, (1, 40)),
    "fashion_mnist": (70000, (1, 28, 28)),
    "shakespeare": (109028, (80,)),
    "synthetic_gaussian": (1000, (8,)),
}
TEXT = {"shakespeare"}
# the official MNIST class counts, training and test sets together (LeCun et al.)
MNIST_COUNTS = [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_available_lists_the_offline_datasets():
    assert available() == sorted(OFFLINE_SHAPES)
    assert hub_names() == ["cifar10", "cifar100", "fashion_mnist", "shakespeare_leaf"]


@pytest.mark.parametrize("name", sorted(OFFLINE_SHAPES))
def test_offline_dataset_shapes_dtypes_ranges(name, data_dir):
    ds = load_dataset(name, data_dir=data_dir)
    n, shape = OFFLINE_SHAPES[name]
    assert ds.name == name and len(ds) == n and ds.x.shape == (n, *shape) and ds.input_shape == shape
    assert ds.x.dtype == (np.int64 if name in TEXT else np.float32) and ds.y.dtype == np.int64
    assert np.isfinite(ds.x).all()
    assert set(np.unique(ds.y)) == set(range(ds.num_classes)) or name in TEXT
    if name in ("digits", "mnist", "fashion_mnist"):  # raw pixels scaled into [0, 1], using the whole range
        assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    if name == "mnist1d":  # the generator standardises the whole set
        assert abs(ds.x.mean()) < 0.01 and abs(ds.x.std() - 1) < 0.01
    if name == "mnist":  # the official 60,000 + 10,000 images, and not a blank or constant set
        assert np.bincount(ds.y).tolist() == MNIST_COUNTS and 0.05 < ds.x.mean() < 0.3
        assert ds.meta["splits"] == {"train": 60000, "test": 10000}
    if name == "fashion_mnist":  # 7,000 images of each of the 10 classes
        assert (np.bincount(ds.y) == 7000).all() and ds.meta["splits"] == {"train": 60000, "test": 10000}
    if name in TEXT:  # character ids inside the vocabulary, one group per (play, speaker)
        assert ds.x.min() >= 0 and ds.x.max() < ds.num_classes == len(ds.meta["vocab"])
        assert ds.groups is not None and ds.groups.max() + 1 == len(ds.meta["group_names"])


def test_shakespeare_windows_predict_the_next_character_of_one_speaker(data_dir):
    """LEAF's task: 80 characters of one speaker's lines in, the next character out; consecutive
    windows of a speaker overlap by half (stride 40), so they agree on the shared characters."""
    ds = load_dataset("shakespeare", data_dir=data_dir)
    vocab, names = ds.meta["vocab"], ds.meta["group_names"]
    text = lambda row: "".join(vocab[i] for i in row)  # noqa: E731
    hamlet = names.index("hamlet/HAMLET")
    rows = np.flatnonzero(ds.groups == hamlet)
    assert len(rows) > 500 and text(ds.x[rows[0]]).startswith("A little more than kin")
    first, second = text(ds.x[rows[0]]), text(ds.x[rows[1]])
    assert first[40:] == second[:40] and vocab[ds.y[rows[0]]] == second[40]
    assert len({n.split("/")[0] for n in names}) == 38  # the 38 plays


def test_play_lines_keep_speeches_and_drop_headings_and_stage_directions():
    text = (
        "# Hamlet\n\n## ACT I\n\n_Enter BERNARDO_\n\n**BERNARDO**  \nWho's there?\n\n"
        "**FRANCISCO**  \nNay, answer me:  \n_Aside_ stand, and unfold yourself.\n\n_Exeunt_\n"
    )
    assert offline_module.play_lines(text) == [
        ("BERNARDO", "Who's there?"),
        ("FRANCISCO", "Nay, answer me: stand, and unfold yourself."),
    ]


def test_no_default_data_dir_hub_names_need_one(tmp_path, monkeypatch):
    """paths.data_dir is the one source of the cache directory: without it nothing is cached, and a
    hub dataset (which must be cached) is refused with a message naming paths.data_dir."""
    monkeypatch.chdir(tmp_path)
    assert len(load_dataset("digits")) == 1797 and not any(tmp_path.iterdir())
    with pytest.raises(DatasetUnavailable, match="paths.data_dir"):
        load_dataset("cifar10")


def test_digits_match_sklearn_pixel_counts(data_dir):
    from sklearn.datasets import load_digits

    np.testing.assert_allclose(load_dataset("digits").x[:, 0] * 16, load_digits().images, atol=1e-5)


def test_cached_datasets_reload_identically_and_leave_global_rng_alone(data_dir):
    for name in ("mnist", "mnist1d"):
        first = load_dataset(name, data_dir=data_dir)
        assert cache_path(data_dir, name).exists()
        again = load_dataset(name, data_dir=data_dir)
        np.testing.assert_array_equal(first.x, again.x)
        np.testing.assert_array_equal(first.y, again.y)
    # generating mnist1d afresh must not reseed the caller's global RNG
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    load_dataset("mnist1d", data_dir=data_dir / "fresh")
    assert np.random.rand() == expected


def test_mnist1d_train_rows_match_the_package_split(data_dir):
    ds = load_dataset("mnist1d", data_dir=data_dir)
    assert ds.meta["train_rows"] == 4000 and "seed=42" in ds.meta["source"]


def test_generator_is_deterministic_by_seed():
    a, b = load_dataset("synthetic_gaussian", seed=3), load_dataset("synthetic_gaussian", seed=3)
    c = load_dataset("synthetic_gaussian", seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.allclose(a.x, c.x)
    assert a.meta["means"] != c.meta["means"]


def test_synthetic_gaussian_ground_truth():
    """Class means recover the stated means, and the nearest-mean classifier reaches the closed-form
    Bayes accuracy Phi(|m0 - m1| / (2 sigma)) for two classes."""
    ds = load_dataset("synthetic_gaussian", seed=1, num_classes=2, dim=4, n_per_class=2000, mean_scale=0.5)
    means, sigma = np.array(ds.meta["means"]), ds.meta["sigma"]
    for k in range(2):
        err = np.abs(ds.x[ds.y == k].mean(0) - means[k])
        assert (err < 4 * sigma / np.sqrt(2000)).all()
    pred = np.argmin(((ds.x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    bayes = norm.cdf(np.linalg.norm(means[0] - means[1]) / (2 * sigma))
    lo, hi = binom.interval(0.999, len(ds), bayes)
    assert lo <= (pred == ds.y).sum() <= hi


def test_generator_options_are_checked():
    with pytest.raises(BadInput, match="unknown options.*'dims'"):
        load_dataset("synthetic_gaussian", dims=3)
    with pytest.raises(BadInput, match="num_classes"):
        load_dataset("synthetic_gaussian", num_classes=1)
    with pytest.raises(BadInput, match="takes no options"):
        load_dataset("digits", dim=3)


def test_unknown_name_lists_every_name():
    with pytest.raises(BadInput) as err:
        load_dataset("cifar-10")
    for name in available() + hub_names():
        assert name in str(err.value)


@pytest.mark.parametrize("name", ["cifar10", "shakespeare_leaf"])
def test_hub_dataset_offline_fails_fast_listing_offline_choices(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_connect(*args, **kwargs):
        raise AssertionError("offline was requested: nothing may try the network")

    monkeypatch.setattr(hub_module.socket, "create_connection", no_connect)
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(name, data_dir=tmp_path)
    msg = str(err.value)
    assert name in msg and hub_module.HUB[name].hub_id in msg
    assert all(offline in msg for offline in available())
    assert isinstance(err.value, BadInput)  # entrypoint turns it into exit status 2
    assert not cache_path(tmp_path, name).exists()


def test_unreachable_hub_fails_fast_without_offline_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(offline_module, "FASHION_MNIST_DIRS", ())  # no Debian copy: the hub is the source
    assert "fashion_mnist" not in available()
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", *hub_module.PROXY_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    connects, connect = [], hub_module.socket.create_connection

    def one_connect(address, timeout):
        connects.append((address, timeout))
        return connect(address, timeout=timeout)

    monkeypatch.setattr(hub_module.socket, "create_connection", one_connect)
    with pytest.raises(DatasetUnavailable, match="unreachable.*Offline choices: digits"):
        load_dataset("fashion_mnist", data_dir=tmp_path)
    # fails fast: one bounded connect, not huggingface_hub's retries
    assert connects == [(("127.0.0.1", 9), hub_module.HUB_TIMEOUT_S)]


def _fake_hub(monkeypatch, splits):
    """Stand in for the hub: datasets.load_dataset returns the given in-memory splits."""
    calls = []
    monkeypatch.setattr(hub_module, "offline_requested", lambda: False)
    monkeypatch.setattr(hub_module, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, cache_dir: calls.append(hub_id) or splits)
    return calls


def test_hub_images_convert_to_nchw_in_unit_range_and_cache(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    make = lambda sl: datasets.Dataset.from_dict(  # noqa: E731
        {"img": [Image.fromarray(p) for p in pixels[sl]], "label": list(range(7))[sl]}, features=features
    )
    splits = datasets.DatasetDict({"train": make(slice(0, 5)), "test": make(slice(5, 7))})
    calls = _fake_hub(monkeypatch, splits)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert calls == ["uoft-cs/cifar10"]
    assert ds.x.shape == (7, 3, 32, 32) and ds.x.dtype == np.float32 and ds.num_classes == 10
    np.testing.assert_allclose(ds.x, pixels.transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    np.testing.assert_array_equal(ds.y, np.arange(7))
    assert ds.meta["splits"] == {"train": 5, "test": 2}
    again = load_dataset("cifar10", data_dir=tmp_path)  # from the converted copy: no hub call
    assert calls == ["uoft-cs/cifar10"]
    np.testing.assert_array_equal(again.x, ds.x)


def test_hub_text_encodes_characters_and_speakers(tmp_path, monkeypatch):
    texts = ["to be or", "not to b", "e that i"]
    table = datasets.Dataset.from_dict(
        {"x": texts, "y": [" ", "e", "s"], "character_id": ["HAM", "OPH", "HAM"]}
    )
    _fake_hub(monkeypatch, datasets.DatasetDict({"train": table}))
    ds = load_dataset("shakespeare_leaf", data_dir=tmp_path)
    vocab = ds.meta["vocab"]
    assert vocab == "".join(sorted(set("".join(texts) + " es"))) and ds.num_classes == len(vocab)
    assert ds.x.shape == (3, 8) and ds.x.dtype == np.int64
    assert ["".join(vocab[i] for i in row) for row in ds.x] == texts
    assert "".join(vocab[i] for i in ds.y) == " es"
    assert ds.groups.tolist() == [0, 1, 0]
    assert load_dataset("shakespeare_leaf", data_dir=tmp_path).groups.tolist() == [0, 1, 0]


def test_train_test_split_is_stratified_disjoint_and_seeded():
    ds = load_dataset("digits")
    train, test = train_test_split(ds, 0.2, seed=0)
    assert len(train) + len(test) == len(ds) and len(test) == int(np.ceil(0.2 * len(ds)))
    np.testing.assert_allclose(np.bincount(test.y) / len(test), np.bincount(ds.y) / len(ds), atol=0.01)
    # disjoint and covering: every sample lands on exactly one side
    rows = np.concatenate([train.x, test.x]).reshape(len(ds), -1)
    assert len(np.unique(rows, axis=0)) == len(np.unique(ds.x.reshape(len(ds), -1), axis=0))
    again, _ = train_test_split(ds, 0.2, seed=0)
    other, _ = train_test_split(ds, 0.2, seed=1)
    np.testing.assert_array_equal(train.x, again.x)
    assert not np.array_equal(train.y, other.y)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(BadInput, match="test_fraction"):
            train_test_split(ds, bad)


def test_iid_partition_sizes_and_cover():
    labels = np.arange(1003) % 7
    parts = partition(labels, 10, "iid", seed=0)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(1003))
    assert not np.array_equal(parts[0], np.arange(len(parts[0])))  # shuffled, not contiguous blocks
    again = partition(labels, 10, "iid", seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not np.array_equal(parts[0], partition(labels, 10, "iid", seed=1)[0])


def _mean_tv_to_global(labels, parts):
    """Mean total-variation distance between each client's label distribution and the global one."""
    k = labels.max() + 1
    glob = np.bincount(labels, minlength=k) / len(labels)
    return np.mean([0.5 * np.abs(np.bincount(labels[p], minlength=k) / len(p) - glob).sum() for p in parts])


def test_dirichlet_small_alpha_skews_labels_more_than_large_alpha():
    labels = load_dataset("digits").y
    skew = {}
    for alpha in (0.1, 1000.0):
        parts = partition(labels, 10, "dirichlet", alpha=alpha, seed=0, min_partition_size=5)
        np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
        assert min(len(p) for p in parts) >= 5
        skew[alpha] = _mean_tv_to_global(labels, parts)
    iid = _mean_tv_to_global(labels, partition(labels, 10, "iid"))
    assert skew[0.1] > 0.4  # close to one or two classes per client
    assert skew[1000.0] < 0.1 and iid < 0.1  # near-uniform shares look like iid
    assert skew[0.1] > 4 * skew[1000.0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scheme": "dirichlet"}, "alpha > 0"),
        ({"scheme": "dirichlet", "alpha": 0.0}, "alpha > 0"),
        ({"scheme": "dirichlet", "alpha": -1.0}, "alpha > 0"),
        ({"scheme": "pathological"}, "unknown partition scheme 'pathological'.*iid, dirichlet"),
        ({"num_partitions": 0}, "num_partitions"),
        ({"num_partitions": 101}, "num_partitions"),
        ({"scheme": "dirichlet", "alpha": 0.5, "min_partition_size": 11}, "min_partition_size"),
    ],
)
def test_partition_rejects_bad_arguments(kwargs, match):
    args = {"labels": np.arange(100) % 10, "num_partitions": 10, **kwargs}
    with pytest.raises(BadInput, match=match):
        partition(**args)


def test_unmeetable_min_partition_size_is_a_clear_error():
    labels = np.arange(100) % 10
    with pytest.warns(UserWarning), pytest.raises(BadInput, match="min_partition_size=10.*failed"):
        partition(labels, 10, "dirichlet", alpha=0.01, min_partition_size=10, seed=0)


def test_retries_start_flwr_over_from_derived_seeds_and_keep_a_first_success():
    """Many clients at a small alpha can exhaust flwr's 10 draws; retries start it over from seeds
    derived from the given one. A split that succeeds at once is the same with or without retries."""
    labels = np.arange(200) % 10
    with pytest.warns(UserWarning), pytest.raises(BadInput, match="min_partition_size=10.*failed"):
        partition(labels, 10, "dirichlet", alpha=0.1, seed=0, min_partition_size=10)
    with pytest.warns(UserWarning):
        parts = partition(labels, 10, "dirichlet", alpha=0.1, seed=0, min_partition_size=10, retries=10)
    assert min(len(p) for p in parts) >= 10
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(200))
    once = partition(labels, 10, "dirichlet", alpha=1.0, seed=3, min_partition_size=5)
    again = partition(labels, 10, "dirichlet", alpha=1.0, seed=3, min_partition_size=5, retries=10)
    assert all(np.array_equal(a, b) for a, b in zip(once, again))
    with pytest.raises(BadInput, match="retries"):
        partition(labels, 10, "iid", retries=0)
