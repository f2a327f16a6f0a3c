"""Conformance matrix: every model operation on the architectures people train.

One row per architecture, one test per operation: `inspect`, `reinitialize` (then three
training steps with a finite loss), `zero_init_residual` (residual rows: the first block
then outputs its skip input exactly), `lsuv`, a short `fit` with `ActivationStats` and
`GradientStats`, and a `.keras` round trip with `safe_mode=True` in a fresh process. The
keras.applications rows are marked slow (they build 100-400 layers); CI runs all of them
on TensorFlow.
"""

import os
import subprocess
import sys
from pathlib import Path

import _zoo
import keras
import numpy as np
import pytest

import keras_initkit
from keras_initkit._trace import model_graph

HERE = Path(__file__).parent
BACKEND = keras.backend.backend()

# name: (builder, batch kind, residual branches (None: not residual), slow)
ROWS = {
    "ResNet50": (_zoo.application("ResNet50"), "image", 16, True),
    "MobileNetV2": (_zoo.application("MobileNetV2"), "image", 10, True),
    "EfficientNetB0": (_zoo.application("EfficientNetB0"), "image", 9, True),
    "DenseNet121": (_zoo.application("DenseNet121"), "image", None, True),
    "ConvNeXtTiny": (_zoo.application("ConvNeXtTiny"), "image", 18, True),
    "transformer": (_zoo.transformer_classifier, "tokens", 4, False),
    "lstm_gru": (_zoo.recurrent_text_model, "tokens", None, False),
    "vae": (_zoo.vae, "vae", None, False),
    "nested": (_zoo.nested, "vector", None, False),
}


def _params(names=None, slow=False):
    out = []
    for name in names or ROWS:
        marks = [pytest.mark.slow] if ROWS[name][3] or slow else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _np(value):
    return np.array(keras.ops.convert_to_numpy(value))


def _build(name):
    keras.utils.set_random_seed(0)
    builder, kind, _, _ = ROWS[name]
    return builder(), _zoo.batch(kind)


def _compile(model, name):
    if name == "vae":
        model.compile(optimizer=keras.optimizers.SGD(1e-3))
        return
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        # keras.applications end in a softmax; the other rows output logits
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=ROWS[name][1] != "image"),
    )


def _skip_vae_fit_on_jax(name):
    if name == "vae" and BACKEND == "jax":
        pytest.skip("the VAE's hand-written train_step uses TensorFlow's or torch's gradients")


@pytest.mark.parametrize("name", _params())
def test_inspect(name):
    model, (x, _) = _build(name)
    report = keras_initkit.inspect(model, x)
    assert len(report) > 0
    stds = [row["std"] for row in report if row["std"] is not None]
    assert stds and all(np.isfinite(stds))


@pytest.mark.parametrize("name", _params())
def test_reinitialize_then_train(name):
    _skip_vae_fit_on_jax(name)
    model, (x, y) = _build(name)
    report = keras_initkit.reinitialize(model, seed=0)
    assert any(row["std"] is not None for row in report)
    _compile(model, name)
    history = model.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"])), history.history


@pytest.mark.parametrize(
    "name", _params([n for n, row in ROWS.items() if row[2] is not None])
)
def test_zero_init_residual(name):
    model, (x, _) = _build(name)
    report = keras_initkit.zero_init_residual(model)
    assert len(report) == ROWS[name][2]
    if name == "transformer":  # the sums are inside the blocks: LN2(LN1(h + 0) + 0)
        block = model.get_layer("block0")
        h = np.random.default_rng(1).standard_normal((2, _zoo.LENGTH, _zoo.EMBED))
        h = h.astype("float32")
        expected = block.layernorm2(block.layernorm1(h))
        np.testing.assert_allclose(_np(block(h)), _np(expected), atol=1e-5)
        return
    # the first residual sum of the graph now outputs one of its inputs exactly
    graph = model_graph(model)
    first = next(c for c in graph.calls if type(c.op).__name__ == "Add")
    probe = keras.Model(
        model.inputs, [graph.tensors[t] for t in first.inputs] + [graph.tensors[first.outputs[0]]]
    )
    *inputs, out = (_np(t) for t in probe(x, training=False))
    assert any(np.allclose(out, i, atol=1e-5) for i in inputs)


@pytest.mark.parametrize("name", _params())
def test_lsuv(name):
    model, (x, _) = _build(name)
    report = keras_initkit.lsuv(model, x, seed=0)
    ok = [row for row in report if row["status"] == "ok"]
    assert ok, str(report)
    for row in ok:
        assert abs(row["std after"] - 1.0) <= 0.1, row
    assert np.all(np.isfinite(_np(keras.tree.flatten(model(x))[0])))


@pytest.mark.parametrize("name", _params(slow=True))
def test_fit_with_gradient_and_activation_stats(name):
    _skip_vae_fit_on_jax(name)
    model, (x, y) = _build(name)
    _compile(model, name)
    gradients = keras_initkit.callbacks.GradientStats(every=1, warn=False)
    activations = keras_initkit.callbacks.ActivationStats(every=1, warn=False)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0,
                        callbacks=[gradients, activations])
    assert np.all(np.isfinite(history.history["loss"]))
    paths = {v.path for v in model.trainable_variables}
    last = max(r.step for r in gradients.records)
    recorded = [r for r in gradients.records if r.step == last]
    # one record per trainable variable, each with its gradient and applied update
    assert len(recorded) == len(paths) == len({(r.layer, r.variable) for r in recorded})
    for r in recorded:
        assert r.stats["size"] > 0 and r.stats["gradient_nonfinite"] == 0
        assert np.isfinite(r.stats["gradient_norm"]) and np.isfinite(r.stats["update_norm"])
    assert any(r.stats["gradient_norm"] > 0 for r in recorded)
    assert any(r.stats["update_norm"] > 0 for r in recorded)
    frame = activations.to_dataframe()
    assert len(frame) > 0
    assert np.all(np.isfinite(frame[frame.statistic == "std"].value))
    # nothing left on the model or its optimizer
    assert not any("gradient_stats" in v.path for v in model.optimizer.variables)
    assert not any("activation_stats" in v.path for v in model.variables)


LOAD = """
import sys, numpy as np, keras
sys.path.insert(0, {here!r})
import keras_initkit, _zoo
model = keras.saving.load_model({path!r}, safe_mode=True)
x = np.load({x!r})
if {name!r} == "vae":  # the decoder samples: compare the encoder's mean
    out = model.encoder(x)[0]
else:
    out = keras.tree.flatten(model(x, training=False))[0]
np.save({out!r}, np.asarray(keras.ops.convert_to_numpy(out)))
"""


@pytest.mark.parametrize("name", _params(slow=True))
def test_keras_round_trip_in_a_fresh_process(name, tmp_path):
    model, (x, _) = _build(name)
    keras_initkit.reinitialize(model, seed=0)
    if ROWS[name][2] is not None:
        keras_initkit.zero_init_residual(model)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    if name == "vae":
        expected = _np(model.encoder(x)[0])
    else:
        expected = _np(keras.tree.flatten(model(x, training=False))[0])
    np.save(tmp_path / "x.npy", x)
    script = LOAD.format(name=name, here=str(HERE), path=str(path), x=str(tmp_path / "x.npy"),
                         out=str(tmp_path / "out.npy"))
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-4, atol=1e-5)
