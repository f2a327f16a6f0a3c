"""An interrupted `fit` leaves nothing behind; `detach()` and `with stats:` undo at once.

Keras skips `on_train_end` when `fit` raises (any exception, KeyboardInterrupt included).
Each test interrupts a fit at step 5 and checks what a user would see next: the model's
variables, its `call`/`train_step`, what a plain fit computes, and the files.
"""

import os

import keras
import numpy as np
import pytest

import keras_initkit
from keras_initkit.callbacks import ActivationStats


def model_and_data():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "relu", name="d1"),
                              keras.layers.Dense(16, "tanh", name="d2"),
                              keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(160, 8)).astype("float32"), rng.normal(size=(160, 1))


class Interrupt(keras.callbacks.Callback):
    def __init__(self, error, at=4):
        super().__init__()
        self.error, self.at = error, at

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.at:
            raise self.error


def instrumented(model):
    """The instance attributes patched on the model or its layers."""
    return [f"{type(x).__name__}.{name}" for x in [model] + model.layers
            for name, value in vars(x).items() if hasattr(value, "patch")]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()],
                         ids=["exception", "KeyboardInterrupt"])
def test_an_interrupted_fit_leaves_the_original_model(error, tmp_path):
    model, x, y = model_and_data()
    before = len(model.variables)
    stats = ActivationStats(every=1, log_dir=tmp_path, warn=False)
    with pytest.raises(type(error)):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0,
                  callbacks=[stats, Interrupt(error)])
    assert len(model.variables) == before
    assert len(stats.records) == 5 * 2  # steps 1..5, two watched layers
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]
    # A plain fit, a plain evaluate: the same numbers as a never-instrumented twin.
    twin, _, _ = model_and_data()
    twin.set_weights(model.get_weights())
    twin.optimizer.build(twin.trainable_variables)
    for a, b in zip(model.optimizer.variables, twin.optimizer.variables, strict=True):
        b.assign(keras.ops.convert_to_numpy(a))
    loss = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False).history["loss"]
    twin_loss = twin.fit(x, y, batch_size=16, epochs=1, verbose=0,
                         shuffle=False).history["loss"]
    np.testing.assert_allclose(loss, twin_loss, rtol=1e-5)
    assert instrumented(model) == []
    assert len(model.variables) == before
    assert stats._sinks.sinks[2].writer is None  # the event file was closed
    # The callback still records on a later fit, from where it was.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    assert len(stats.records) == 10 + 10 * 2
    assert len(model.variables) == before and instrumented(model) == []


def test_inspect_after_an_interrupted_fit_removes_everything():
    model, x, y = model_and_data()
    before = len(model.variables)
    with pytest.raises(RuntimeError):
        model.fit(x, y, batch_size=16, verbose=0,
                  callbacks=[ActivationStats(every=1), Interrupt(RuntimeError("boom"))])
    keras_initkit.inspect(model, x[:16])
    assert instrumented(model) == [] and len(model.variables) == before
    assert model.train_function is None  # the instrumented step is dropped


def test_detach_and_the_context_manager_undo_at_once(tmp_path):
    model, x, y = model_and_data()
    before = len(model.variables)
    with ActivationStats(every=1, log_dir=tmp_path) as stats, pytest.raises(RuntimeError):
        model.fit(x, y, batch_size=16, verbose=0,
                  callbacks=[stats, Interrupt(RuntimeError("boom"))])
    assert instrumented(model) == [] and len(model.variables) == before
    assert model.train_function is None
    stats.detach()  # idempotent
    other = ActivationStats(every=1)
    with pytest.raises(RuntimeError):
        model.fit(x, y, batch_size=16, verbose=0,
                  callbacks=[other, Interrupt(RuntimeError("boom"))])
    other.detach()
    assert instrumented(model) == [] and len(model.variables) == before


def test_two_patchers_on_one_layer_compose():
    """inspect's capture on top of a live instrumentation takes off only its own wrapper."""
    from keras_initkit._capture import capture_outputs

    model, x, y = model_and_data()
    layer = model.get_layer("d1")
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                wrapped = layer.__dict__["call"]
                with capture_outputs([layer]) as outputs:
                    layer(x[:4])
                seen.append((id(layer) in outputs, layer.__dict__.get("call") is wrapped))

    stats = ActivationStats(every=1, layers=["d1"])
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats, Probe()])
    assert seen == [(True, True)]
    assert len(stats.records) == 10 and "call" not in layer.__dict__
