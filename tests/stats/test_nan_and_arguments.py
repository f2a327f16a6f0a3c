"""`on_nan="stop"` stops at the first bad step; bad constructor arguments fail early."""

import os
import stat

import keras
import numpy as np
import pytest

from keras_initkit.callbacks import ActivationStats


def fit_with_nan_at_step(step, where, on_nan="stop", every=5):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, "tanh", name="h"),
                              keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40 * 4, 4)).astype("float32"), np.zeros((40 * 4, 1), "float32")
    rows = slice((step - 1) * 4, step * 4)
    (x if where == "activation" else y)[rows] = np.nan
    seen = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch + 1)

    stats = ActivationStats(every=every, on_nan=on_nan, warn=False)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[stats, Count()])
    return stats, seen[-1]


def test_a_nonfinite_activation_stops_at_its_step_not_at_the_window_end():
    stats, last = fit_with_nan_at_step(21, "activation")
    assert last == 21  # the window (every=5) would end at 25
    assert stats.stopped_by.condition == "nonfinite" and stats.stopped_by.layer == "h"
    assert stats.records[-1].step == 21 and stats.records[-1].stats["nan_count"] > 0


def test_a_nonfinite_loss_with_finite_activations_stops_and_says_so():
    stats, last = fit_with_nan_at_step(13, "loss")
    assert last == 13
    assert stats.stopped_by.condition == "nonfinite_loss"
    assert any("loss is nan" in w for w in stats.warnings)


def test_warn_reports_and_goes_on():
    stats, last = fit_with_nan_at_step(13, "activation", on_nan="warn")
    assert last == 40 and stats.stopped_by is None
    assert any("NaN" in w for w in stats.warnings)


def _file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    return path


def _read_only(tmp_path):
    path = tmp_path / "ro"
    path.mkdir()
    path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return path / "logs"


BAD = [
    # (argument, value or a function of tmp_path, error type, words in the message)
    ("bins", 10**12, ValueError, "bins must be a positive int at most 10000; got 1000000000000"),
    ("bins", 0, ValueError, "bins must be a positive int"),
    ("histogram_range", (0,), ValueError, "histogram_range must be (low, high)"),
    ("histogram_range", "ab", ValueError, "histogram_range must be (low, high)"),
    ("saturation_threshold", "x", TypeError, "saturation_threshold must be a number; got 'x'"),
    ("dead_threshold", float("nan"), ValueError, "dead_threshold must be finite"),
    ("std_ratio", None, TypeError, "std_ratio must be a number; got None"),
    ("log_dir", 123, TypeError, "log_dir must be a path (str or os.PathLike) or None; got 123"),
    ("log_dir", "", ValueError, "log_dir must be a non-empty path"),
    ("log_dir", _file, ValueError, "is a file"),
    ("log_dir", lambda t: _file(t) / "under", ValueError, "is a file"),
    ("log_dir", _read_only, ValueError, "is not writable"),
    ("warn", "no", TypeError, "warn must be True or False; got 'no'"),
    ("layers", "d1", TypeError, "layers must be None, a list of layer names"),
    ("layers", [1], TypeError, "got the item 1"),
    ("max_records", 0, ValueError, "max_records must be a positive int"),
    ("every", 0, ValueError, "every must be a positive int or 'epoch'; got 0"),
    ("on_nan", "raise", ValueError, "on_nan must be one of 'warn', 'stop', 'ignore'"),
]


@pytest.mark.parametrize("name, value, error, words", BAD,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_arguments_fail_at_construction_naming_the_argument(name, value, error, words,
                                                                 tmp_path):
    if callable(value):
        if value is _read_only and os.geteuid() == 0:
            pytest.skip("root can write anywhere")
        value = value(tmp_path)
    with pytest.raises(error) as caught:
        ActivationStats(**{name: value})
    assert words in str(caught.value)
    assert not any(tmp_path.rglob("logs"))  # nothing was created


def test_a_write_failure_mid_fit_is_reported_once_and_training_goes_on(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, "relu")])
    model.compile("sgd", "mse")
    stats = ActivationStats(every=1, log_dir=tmp_path / "logs")

    class PullTheDisk(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:  # the directory goes away mid-run
                for name in os.listdir(tmp_path / "logs"):
                    path = tmp_path / "logs" / name
                    if path.is_file():
                        path.unlink()
                        path.mkdir()  # a directory where the file was: appends fail

    with pytest.warns(UserWarning, match="writing to log_dir .* failed"):
        history = model.fit(np.ones((40, 4)), np.ones((40, 8)), batch_size=4, verbose=0,
                            callbacks=[PullTheDisk(), stats])
    assert len(history.history["loss"]) == 1 and len(stats.records) == 10
    assert sum("failed" in w for w in stats.warnings) == 1
