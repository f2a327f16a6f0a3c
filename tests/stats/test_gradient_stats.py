"""GradientStats on real training runs: equality with autodiff references, training
unchanged, removal (also after an interrupted fit), windows, diagnosis, outputs."""

from __future__ import annotations

import json
import math
import os
import warnings

import keras
import numpy as np
import pytest
from _record_sizes import RecordSizes

import keras_initkit
from keras_initkit.callbacks import GradientStats, GradientStatsWarning
from keras_initkit.stats import _gradient_hook
from keras_initkit.stats.gradient_output import load_json

BACKEND = keras.backend.backend()
REL = 1e-5  # float32 reductions over at most a few thousand elements


def mlp(seed=0, activation="tanh", width=16, depth=2, initializer="glorot_uniform",
        inputs=12, outputs=3):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((inputs,))]
    layers += [keras.layers.Dense(width, activation, kernel_initializer=initializer,
                                  name=f"dense_{i}") for i in range(depth)]
    layers.append(keras.layers.Dense(outputs, "softmax", name="out"))
    return keras.Sequential(layers, name="mlp")


def data(n=32, features=12, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype("float32")
    y = rng.integers(0, classes, n)
    return x, y


def reference_gradients(model, loss_fn, x, y):
    """dL/dW of `loss_fn(y, model(x))` by the backend's own autodiff, as NumPy."""
    variables = model.trainable_variables
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, [v.value for v in variables])
    elif BACKEND == "jax":
        import jax

        others = [v.value for v in model.non_trainable_variables]

        def loss_of(values):
            y_pred, _ = model.stateless_call(values, others, x, training=True)
            return loss_fn(y, y_pred)

        grads = jax.grad(loss_of)([v.value for v in variables])
    else:
        import torch

        for v in variables:
            v.value.grad = None
        loss = loss_fn(torch.as_tensor(y), model(torch.as_tensor(x), training=True))
        loss.backward()
        grads = [v.value.grad for v in variables]
    return [np.asarray(keras.ops.convert_to_numpy(g), "float64") for g in grads]


def by_variable(records):
    return {(r.layer, r.variable): r for r in records}


def close(a, b, rel=REL):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# -- equality with the references -------------------------------------------------------
@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_recorded_statistics_equal_autodiff_reference_and_weight_change(jit_compile):
    model = mlp()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    model.compile(keras.optimizers.Adam(0.01), loss_fn, jit_compile=jit_compile)
    x, y = data()
    grads = reference_gradients(model, loss_fn, x, y)
    before = [v.numpy().astype("float64") for v in model.trainable_variables]
    stats = GradientStats(every=1, warn=False)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    after = [v.numpy().astype("float64") for v in model.trainable_variables]
    records = by_variable(stats.records)
    assert len(records) == len(grads) == 6
    edges = np.log10(stats.records[0].edges)
    for v, g, w0, w1 in zip(model.trainable_variables, grads, before, after, strict=True):
        r = records[(v.path.split("/")[1], v.name)]
        s = r.stats
        assert close(s["gradient_norm"], np.linalg.norm(g))
        assert close(s["gradient_rms"], np.sqrt(np.mean(g**2)))
        # (a mean near zero, such as the read-out bias's, is float32 rounding: judged
        # against the gradient's scale)
        assert math.isclose(s["gradient_mean"], g.mean(), rel_tol=1e-4,
                            abs_tol=1e-6 * np.abs(g).max())
        assert close(s["gradient_max_abs"], np.abs(g).max())
        assert s["gradient_nonfinite"] == 0
        assert close(s["weight_norm"], np.linalg.norm(w0))
        # Adam's actual step, read as the weights' change over the step.
        assert close(s["update_norm"], np.linalg.norm(w1 - w0), rel=1e-4)
        if np.any(w0):
            assert close(s["update_ratio"], np.linalg.norm(w1 - w0) / np.linalg.norm(w0), 1e-4)
        else:  # biases start at zero: no ratio
            assert math.isnan(s["update_ratio"])
        assert s["steps"] == 1 and s["size"] == g.size
        # the log10|g| histogram, bin for bin (values on an edge may move by one bin)
        logs = np.log10(np.abs(g[g != 0]))
        counts, _ = np.histogram(logs, bins=edges)
        assert np.abs(r.counts[1:-1] - counts).sum() <= 2
        assert r.counts.sum() == g.size


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's graph-mode kernels")
def test_tensorflow_one_kernel_fold_gives_the_keras_ops_vector():
    # The fold in TensorFlow's graph mode takes its sums of squares and a finite
    # gradient's histogram from one kernel each (`_gradient_kernels_tensorflow`); it must
    # give the keras.ops vector
    # bit for bit, also with NaN, Inf, exact zeros, values below the histogram, squares
    # whose half underflows, and a loss scale.
    import tensorflow as tf

    from keras_initkit.stats import gradients as gstats

    rng = np.random.default_rng(4)
    shapes = [(40, 30), (30,), (3, 3, 2, 4), (1,), (301,)]
    layout = gstats.GradientLayout(sizes=tuple(int(np.prod(s)) for s in shapes),
                                   ndims=tuple(len(s) for s in shapes))
    # a window's first step (sums start at zero, so tiny sums show) and a later one
    states = [layout.empty(0, 4),
              (layout.empty(0, 4) + 0.25 * (np.arange(layout.size) % 5)).astype("float32")]
    for special in (False, True):
        grads = [rng.standard_normal(s).astype("float32") * 10.0 ** rng.uniform(-12, 2)
                 for s in shapes]
        if special:
            grads[0].flat[:5] = [np.nan, np.inf, -np.inf, 0.0, 1e-30]
            grads[2].flat[:3] = 0.0
            grads[4][:] = 1e-20
            grads[3][:] = 1.2e-19  # its square is normal, half of it is not (flushed)
        before = [rng.standard_normal(s).astype("float32") for s in shapes]
        after = [w - 0.01 * np.nan_to_num(g) for w, g in zip(before, grads, strict=True)]
        tensors = [[tf.constant(x) for x in values] for values in (grads, before, after)]
        for scale, state in [(scale, state) for scale in (None, 64.0) for state in states]:
            vectors = [
                tf.function(
                    lambda v, g, w0, w1, scale=scale, native=native: gstats.fold(
                        v, g, w0, w1, layout, scale, native
                    )
                )(tf.constant(state), *tensors).numpy()
                for native in (True, False)
            ]
            np.testing.assert_array_equal(*vectors)


def test_sgd_update_is_learning_rate_times_gradient():
    model = mlp()
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    x, y = data()
    stats = GradientStats(every=1, warn=False)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    for r in stats.records:
        assert close(r.stats["update_norm"], 0.05 * r.stats["gradient_norm"], rel=1e-4)


# -- training unchanged, and nothing left behind ----------------------------------------
def _train(callbacks, jit_compile="auto"):
    model = mlp(seed=3)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy",
                  jit_compile=jit_compile)
    x, y = data(n=64)
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                        callbacks=callbacks)
    return model, history.history["loss"], [v.numpy() for v in model.weights]


def test_training_is_bit_identical_with_and_without_the_callback():
    _, plain_loss, plain_weights = _train([])
    stats = GradientStats(every=1, warn=False)
    _model, loss, weights = _train([stats])
    assert loss == plain_loss
    for a, b in zip(weights, plain_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(stats.records) == 8 * 6


def test_everything_is_removed_after_fit(tmp_path):
    model = mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    plain = len(model.optimizer.variables)
    checkpoint = str(tmp_path / "mid.keras")

    class SaveMidFit(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                assert len(self.model.optimizer.variables) == plain + 1  # ours, while fitting
                self.model.save(checkpoint)

    stats = GradientStats(every=1, warn=False)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[stats, SaveMidFit()])
    assert len(model.optimizer.variables) == plain
    assert not {"apply", "stateless_apply", "save_own_variables", "load_own_variables"} & set(
        model.optimizer.__dict__)
    assert "make_train_function" not in model.__dict__
    assert model.train_function is None
    assert _gradient_hook.installed_hook(model) is None
    # the checkpoint written mid-fit loads into a plain model, optimizer state included
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when optimizer variables mismatch
        loaded = keras.saving.load_model(checkpoint)
    assert len(loaded.optimizer.variables) == plain


class Boom(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            raise KeyboardInterrupt


def test_interrupted_fit_is_cleaned_up_by_the_next_training():
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    plain = len(model.optimizer.variables)
    stats = GradientStats(every=1, warn=False)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[stats, Boom()])
    hook = _gradient_hook.installed_hook(model)
    assert hook is not None  # Keras skipped on_train_end
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # a plain fit: the hook goes first
    assert _gradient_hook.installed_hook(model) is None
    assert len(model.optimizer.variables) == plain
    assert not hook.installed


def test_detach_and_context_manager_remove_the_hook_at_once():
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data()
    with GradientStats(every=1, warn=False) as stats:
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[stats, Boom()])
        assert _gradient_hook.installed_hook(model) is not None
    assert _gradient_hook.installed_hook(model) is None
    assert model.train_function is None
    stats.detach()  # twice is harmless
    # and the same callback records again in a later fit
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[stats])
    assert stats.records[-1].fit == 1


class Subclassed(keras.Model):
    """Two Dense layers; `custom=True` trains with the backend's own autodiff, as in
    keras.io's "Customizing what happens in fit()" guides."""

    def __init__(self, custom):
        super().__init__(name="sub")
        self.hidden = keras.layers.Dense(8, "tanh", name="hidden")
        self.out = keras.layers.Dense(3, "softmax", name="out")
        self.custom = custom

    def call(self, x, training=None):
        return self.out(self.hidden(x))

    def train_step(self, *args):
        if not self.custom:
            return super().train_step(*args)
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
        if BACKEND == "tensorflow":
            import tensorflow as tf

            x, y = args[0]
            with tf.GradientTape() as tape:
                loss = loss_fn(y, self(x, training=True))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            return {"loss": loss}
        if BACKEND == "torch":
            import torch

            x, y = args[0]
            self.zero_grad()
            loss = loss_fn(y, self(x, training=True))
            loss.backward()
            variables = list(self.trainable_variables)
            with torch.no_grad():
                self.optimizer.apply([v.value.grad for v in variables], variables)
            return {"loss": loss}
        import jax

        (trainable, non_trainable, optimizer_values, metrics), (x, y) = args

        def loss_of(trainable, non_trainable):
            y_pred, non_trainable = self.stateless_call(trainable, non_trainable, x,
                                                        training=True)
            return loss_fn(y, y_pred), non_trainable

        (loss, non_trainable), grads = jax.value_and_grad(loss_of, has_aux=True)(
            trainable, non_trainable)
        trainable, optimizer_values = self.optimizer.stateless_apply(
            optimizer_values, grads, trainable)
        return {"loss": loss}, (trainable, non_trainable, optimizer_values, metrics)


class Weights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.after = []  # the trainable weights after each step

    def on_train_batch_end(self, batch, logs=None):
        self.after.append([v.numpy().astype("float64") for v in self.model.trainable_variables])


@pytest.mark.parametrize("custom", [False, True], ids=["default_train_step", "custom_train_step"])
def test_an_unbuilt_subclassed_model_is_watched_from_its_second_step(custom):
    # TensorFlow builds such a model (and its optimizer) while tracing the first step.
    x, y = data(n=32)
    runs = {}
    for watched in (False, True):
        keras.utils.set_random_seed(4)
        model = Subclassed(custom)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
        stats = GradientStats(every=1, warn=False)
        weights = Weights()
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                            callbacks=[stats, weights] if watched else [weights])
        runs[watched] = (history.history["loss"], weights.after, stats)
    (plain_loss, plain_after, _), (loss, after, stats) = runs[False], runs[True]
    assert loss == plain_loss  # training unchanged
    for a, b in zip(after[-1], plain_after[-1], strict=True):
        np.testing.assert_array_equal(a, b)
    steps = sorted({r.step for r in stats.records})
    assert steps[-1] == 4 and steps[0] <= 2
    assert {(r.layer, r.variable) for r in stats.records} == {
        ("hidden", "kernel"), ("hidden", "bias"), ("out", "kernel"), ("out", "bias")}
    for step in steps[1:] if steps[0] == 1 else steps:
        for r in (r for r in stats.records if r.step == step):
            index = ["hidden/kernel", "hidden/bias", "out/kernel", "out/bias"].index(
                f"{r.layer}/{r.variable}")
            change = after[step - 1][index] - after[step - 2][index]
            assert close(r.stats["update_norm"], np.linalg.norm(change), rel=1e-4)
            assert r.stats["gradient_norm"] > 0 and r.stats["gradient_nonfinite"] == 0
    assert _gradient_hook.installed_hook(model) is None


class OwnOptimizer(Subclassed):
    """Trains with an optimizer of its own, never `model.optimizer` (as keras.io's GAN
    applies `d_optimizer` and `g_optimizer`), or (`manual=True`, and always on JAX) with
    a hand-written SGD step."""

    def __init__(self, manual=False):
        super().__init__(custom=True)
        self.other = keras.optimizers.SGD(0.1)
        self.manual = manual

    def train_step(self, *args):
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
        if BACKEND == "jax":
            import jax

            (trainable, non_trainable, optimizer_values, metrics), (x, y) = args

            def loss_of(trainable):
                y_pred, _ = self.stateless_call(trainable, non_trainable, x, training=True)
                return loss_fn(y, y_pred)

            loss, grads = jax.value_and_grad(loss_of)(trainable)
            trainable = [w - 0.1 * g for w, g in zip(trainable, grads, strict=True)]
            return {"loss": loss}, (trainable, non_trainable, optimizer_values, metrics)
        x, y = args[0]
        variables = list(self.trainable_variables)
        if BACKEND == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = loss_fn(y, self(x, training=True))
            grads = tape.gradient(loss, variables)
        else:
            self.zero_grad()
            loss = loss_fn(y, self(x, training=True))
            loss.backward()
            grads = [v.value.grad for v in variables]
        if self.manual:
            for v, g in zip(variables, grads, strict=True):
                v.assign(v.value - 0.1 * g)
        else:
            self.other.apply(grads, variables)
        return {"loss": loss}


@pytest.mark.skipif(BACKEND == "jax", reason="JAX: a train_step threads its own optimizers")
def test_an_optimizer_of_the_train_steps_own_is_watched():
    x, y = data(n=32)
    runs = {}
    for watched in (False, True):
        keras.utils.set_random_seed(5)
        model = OwnOptimizer()
        model(x[:1])
        model.compile("adam", "sparse_categorical_crossentropy")
        stats, weights = GradientStats(every=1, warn=False), Weights()
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                            callbacks=[stats, weights] if watched else [weights])
        runs[watched] = (history.history["loss"], weights.after, stats, model)
    (plain_loss, _, _, _), (loss, after, stats, model) = runs[False], runs[True]
    assert loss == plain_loss
    # its own optimizer is built by the first step, so the records start at the second
    assert sorted({r.step for r in stats.records}) == [2, 3, 4]
    order = ["hidden/kernel", "hidden/bias", "out/kernel", "out/bias"]
    for r in stats.records:
        change = after[r.step - 1][order.index(f"{r.layer}/{r.variable}")] - after[r.step - 2][
            order.index(f"{r.layer}/{r.variable}")]
        assert close(r.stats["update_norm"], np.linalg.norm(change), rel=1e-4)
    assert len(stats.records) == 3 * 4 and stats.warnings == []
    assert _gradient_hook.installed_hook(model) is None
    assert not any("gradient_stats" in v.path for v in model.other.variables)
    assert "apply" not in model.other.__dict__


def test_a_train_step_that_applies_no_watched_optimizer_is_reported():
    x, y = data(n=32)
    model = OwnOptimizer(manual=True)
    model(x[:1])
    model.compile("adam", "sparse_categorical_crossentropy")
    stats = GradientStats(every=2, warn=False)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[stats])
    assert stats.records == []
    assert len(stats.warnings) == 1  # once, not at every record
    message = stats.warnings[0]
    assert "applied the model's optimizer (Adam)" in message
    if BACKEND == "jax":
        assert "other optimizers (other; a GAN's two, say), which GradientStats does not " \
               "watch on JAX" in message
    else:
        assert "(Adam) or other: this model's train_step does not call them" in message
    assert _gradient_hook.installed_hook(model) is None


class GAN(keras.Model):
    """keras.io's GAN, small: `compile(d_optimizer, g_optimizer)`, and a train_step that
    applies each to its own network."""

    def __init__(self):
        super().__init__(name="gan")
        self.discriminator = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(8, "relu", name="d_hidden"),
             keras.layers.Dense(1, name="d_out")], name="discriminator")
        self.generator = keras.Sequential(
            [keras.Input((2,)), keras.layers.Dense(8, "relu", name="g_hidden"),
             keras.layers.Dense(6, name="g_out")], name="generator")
        self.seed_generator = keras.random.SeedGenerator(1)

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    def call(self, x):
        return self.discriminator(x)

    critic_steps = 1  # the discriminator's optimizer steps per training step

    def _apply(self, optimizer, network, loss_of, times=1):
        """Applies `optimizer` `times` times, with the gradients of one `loss_of()`."""
        variables = list(network.trainable_variables)
        if BACKEND == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = loss_of()
            grads = tape.gradient(loss, variables)
            for _ in range(times):
                optimizer.apply_gradients(zip(grads, variables, strict=True))
        else:
            import torch

            self.zero_grad()
            loss = loss_of()
            loss.backward()
            grads = [v.value.grad.clone() for v in variables]
            with torch.no_grad():
                for _ in range(times):
                    optimizer.apply(grads, variables)
        return loss

    def train_step(self, real):
        n = keras.ops.shape(real)[0]
        fake = self.generator(keras.random.normal((n, 2), seed=self.seed_generator))
        if BACKEND == "torch":
            fake = fake.detach()
        x = keras.ops.concatenate([fake, real])
        labels = keras.ops.concatenate([keras.ops.ones((n, 1)), keras.ops.zeros((n, 1))])
        d_loss = self._apply(self.d_optimizer, self.discriminator,
                             lambda: self.loss_fn(labels, self.discriminator(x)),
                             times=self.critic_steps)
        z = keras.random.normal((n, 2), seed=self.seed_generator)
        g_loss = self._apply(self.g_optimizer, self.generator, lambda: self.loss_fn(
            keras.ops.zeros((n, 1)), self.discriminator(self.generator(z))))
        return {"d_loss": d_loss, "g_loss": g_loss}


@pytest.mark.skipif(BACKEND == "jax", reason="JAX: a train_step threads its own optimizers")
def test_a_gan_records_both_networks_through_their_own_optimizers():
    keras.utils.set_random_seed(2)
    gan = GAN()
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    real = np.random.default_rng(0).standard_normal((32, 6)).astype("float32")
    stats, weights = GradientStats(every=1, warn=False), Weights()
    gan.fit(real, batch_size=8, epochs=1, verbose=0, callbacks=[stats, weights])
    steps = sorted({r.step for r in stats.records})
    assert steps == [2, 3, 4]  # the first step built the two optimizers
    paths = [v.path for v in gan.trainable_variables]
    for step in steps:
        read = {(r.layer.split("/")[-1], r.variable): r for r in stats.records if r.step == step}
        assert set(read) == {(layer, name) for layer in ("d_hidden", "d_out", "g_hidden", "g_out")
                             for name in ("kernel", "bias")}
        for r in read.values():  # each optimizer's real step, read off the weights
            index = next(i for i, p in enumerate(paths) if p.endswith(f"{r.layer}/{r.variable}"))
            change = weights.after[step - 1][index] - weights.after[step - 2][index]
            assert close(r.stats["update_norm"], np.linalg.norm(change), rel=1e-4)
            assert r.stats["gradient_norm"] > 0
    assert stats.warnings == []
    assert _gradient_hook.installed_hook(gan) is None
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        assert "apply" not in optimizer.__dict__
        assert not any("gradient_stats" in v.path for v in optimizer.variables)
    gan.fit(real, batch_size=8, epochs=1, verbose=0)  # a plain fit works after
    # interrupted with three hooks installed: the next training removes them all
    with pytest.raises(KeyboardInterrupt):
        gan.fit(real, batch_size=8, epochs=1, verbose=0,
                callbacks=[GradientStats(every=1, warn=False), Boom()])
    assert "apply" in gan.d_optimizer.__dict__ and "apply" in gan.g_optimizer.__dict__
    gan.fit(real, batch_size=8, epochs=1, verbose=0)
    assert _gradient_hook.installed_hook(gan) is None
    for optimizer in (gan.d_optimizer, gan.g_optimizer, gan.optimizer):
        assert "apply" not in optimizer.__dict__
        assert not any("gradient_stats" in v.path for v in optimizer.variables)


class GANWithOptimizersInADict(GAN):
    """The same GAN holding its optimizers in one dict attribute."""

    def compile(self, d_optimizer, g_optimizer):
        keras.Model.compile(self)
        self.optimizers_by_role = {"d": d_optimizer, "g": g_optimizer}
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    @property
    def d_optimizer(self):
        return self.optimizers_by_role["d"]

    @property
    def g_optimizer(self):
        return self.optimizers_by_role["g"]


@pytest.mark.skipif(BACKEND == "jax", reason="JAX: a train_step threads its own optimizers")
def test_optimizers_held_in_a_dict_are_watched():
    keras.utils.set_random_seed(2)
    gan = GANWithOptimizersInADict()
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.SGD(0.01))
    assert "d_optimizer" not in vars(gan)
    real = np.random.default_rng(0).standard_normal((32, 6)).astype("float32")
    stats = GradientStats(every=1, warn=False)
    gan.fit(real, batch_size=8, epochs=1, verbose=0, callbacks=[stats])
    assert sorted({r.step for r in stats.records}) == [2, 3, 4]
    assert {r.layer.split("/")[-1] for r in stats.records} == {
        "d_hidden", "d_out", "g_hidden", "g_out"}
    assert all(r.stats["update_norm"] > 0 for r in stats.records)
    assert stats.warnings == []
    for optimizer in gan.optimizers_by_role.values():
        assert "apply" not in optimizer.__dict__


class WGAN(GAN):
    """A WGAN's schedule: the critic's optimizer steps three times per training step (here
    with one gradient, so each of its updates is a third of the step's change)."""

    critic_steps = 3


@pytest.mark.skipif(BACKEND == "jax", reason="JAX: a train_step threads its own optimizers")
@pytest.mark.parametrize("every", [1, 2])
def test_an_optimizer_applied_several_times_per_step_folds_each_application(every):
    # Windows are counted in training steps, and every application of a folded step is
    # folded: with `every=1` TensorFlow folded only the critic's first application.
    real = np.random.default_rng(0).standard_normal((56, 6)).astype("float32")
    records = {}
    for model in (GAN, WGAN):
        keras.utils.set_random_seed(2)
        gan = model()
        gan.compile(keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05))
        stats, weights = GradientStats(every=every, warn=False), Weights()
        gan.fit(real, batch_size=8, epochs=1, verbose=0, callbacks=[stats, weights])
        records[model] = stats.records
        assert stats.warnings == []
        assert _gradient_hook.installed_hook(gan) is None
    steps_of = {model: sorted({r.step for r in found}) for model, found in records.items()}
    assert steps_of[WGAN] == steps_of[GAN]  # the same windows, in training steps
    paths = [v.path for v in gan.trainable_variables]

    def at(model, step):
        return {r.layer.split("/")[-1] + "/" + r.variable: r
                for r in records[model] if r.step == step}

    for step in steps_of[WGAN]:
        read, once = at(WGAN, step), at(GAN, step)
        assert set(read) == set(once) and len(read) == 8
        for name, r in read.items():
            applied = once[name].stats["steps"] * (3 if name.startswith("d_") else 1)
            assert r.stats["steps"] == applied
            if every == 1:  # each critic update is a third of the step's change
                index = next(i for i, p in enumerate(paths) if p.endswith(name))
                change = weights.after[step - 1][index] - weights.after[step - 2][index]
                share = applied  # the same gradient applied `applied` times by SGD
                assert close(r.stats["update_norm"] * share, np.linalg.norm(change), rel=1e-4)


def test_layers_matching_no_variable_is_refused_at_fit():
    x, y = data()
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"layers=\['dense_9'\] matches none of the model's "
                                         r"trainable variables; their layers are dense_0, "):
        model.fit(x, y, verbose=0, callbacks=[GradientStats(layers=["dense_9"])])


def test_internals_check_passes_on_this_keras():
    _gradient_hook.check()


# -- windows --------------------------------------------------------------------------
@pytest.mark.skipif(BACKEND == "torch", reason="torch rejects steps_per_execution > 1")
def test_windows_with_steps_per_execution():
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy", steps_per_execution=2)
    x, y = data(n=64)
    every = GradientStats(every=3, warn=False)
    whole = GradientStats(every=3, batches_per_record="all", warn=False)
    for stats in (every, whole):
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    steps = sorted({r.step for r in every.records})
    assert steps == [4, 6, 8]
    assert {r.stats["steps"] for r in every.records} == {1.0}
    folded = {r.step: r.stats["steps"] for r in whole.records}
    assert folded == {4: 4.0, 6: 2.0, 8: 2.0}


@pytest.mark.parametrize("steps_per_execution", [
    1,
    pytest.param(2, marks=pytest.mark.skipif(BACKEND == "torch",
                                            reason="torch runs one step per execution")),
])
def test_each_record_folds_exactly_the_last_steps_of_its_window(steps_per_execution):
    # Which steps fold is decided in the graph (TF), or by the host picking a compiled
    # step per call (JAX, torch): the weight norm of a record must be the mean over
    # exactly the steps it covers, read before each of them.
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution)
    x, y = data(n=64)
    norms = {}

    class WeightNorms(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            kernel = self.model.get_layer("dense_0").kernel
            norms[batch] = float(np.linalg.norm(keras.ops.convert_to_numpy(kernel)))

    stats = GradientStats(every=4, batches_per_record=2, warn=False)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
              callbacks=[WeightNorms(), stats])
    kernels = {r.step: r.stats for r in stats.records
               if (r.layer, r.variable) == ("dense_0", "kernel")}
    assert sorted(kernels) == [4, 8]
    for step, s in kernels.items():
        assert s["steps"] == 2
        if steps_per_execution == 1:  # batches step-2 and step-1 (0-based) were folded
            assert close(s["weight_norm"], (norms[step - 2] + norms[step - 1]) / 2)


@pytest.mark.parametrize("activation_stats_first", [True, False])
def test_gradient_and_activation_stats_record_together(activation_stats_first):
    # Both instrument the training step; on JAX GradientStats compiles one step per
    # variant, and the demo's ActivationStats once recorded nothing beside it.
    from keras_initkit.callbacks import ActivationStats

    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data(n=32)
    activations = ActivationStats(every=2, warn=False)
    gradients = GradientStats(every=2, warn=False)
    callbacks = [activations, gradients] if activation_stats_first else [gradients, activations]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
    assert sorted({r.step for r in activations.records}) == [2, 4]
    assert sorted({r.step for r in gradients.records}) == [2, 4]
    assert {r.layer for r in activations.records} >= {"dense_0", "dense_1"}


def test_default_every_and_epoch_records():
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data(n=64)
    per_epoch = GradientStats(every="epoch", warn=False)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[per_epoch])
    assert sorted({(r.epoch, r.step) for r in per_epoch.records}) == [(0, 8), (1, 16)]
    default = GradientStats(warn=False)
    assert default.every == 50
    with pytest.raises(ValueError, match="Only one GradientStats can watch a model"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0,
                  callbacks=[default, GradientStats(warn=False)])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[default])
    assert sorted({r.step for r in default.records}) == [8, 16]  # epoch ends, 8 < 50


def test_layer_selection_and_nested_paths():
    inner = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, name="d")],
                             name="inner")
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, name="first"), inner,
                              keras.layers.Dense(3, "softmax", name="out")], name="outer")
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data()
    chosen = GradientStats(every=1, layers=["inner/d", "out"], warn=False)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[chosen])
    assert {r.layer for r in chosen.records} == {"inner/d", "out"}


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"every": 0}, "every must be a positive int or 'epoch'; got 0"),
        ({"batches_per_record": "some"}, "batches_per_record must be a positive int"),
        ({"histogram_range": (0.0, 1.0)}, "histogram_range must be (low, high)"),
        ({"update_ratio_bounds": (1e-2, 1e-4)}, "update_ratio_bounds must be"),
        ({"gradient_ratio": 1.0}, "gradient_ratio must be greater than 1; got 1.0"),
        ({"layers": 3}, "layers must be None, a list"),
        ({"on_nan": "raise"}, "on_nan must be one of 'warn', 'stop', 'ignore'; got 'raise'"),
        ({"max_records": 0}, "max_records must be a positive int; got 0"),
    ],
)
def test_bad_arguments_are_refused_early(kwargs, text):
    with pytest.raises(ValueError, match=None) as error:
        GradientStats(**kwargs)
    assert text in str(error.value)


# -- diagnosis: the seeds' cases -------------------------------------------------------
def seed_case(activation, initializer, optimizer, width=128, depth=10, steps=1):
    keras.utils.set_random_seed(7)
    model = mlp(seed=7, activation=activation, width=width, depth=depth,
                initializer=initializer, inputs=width, outputs=10)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256 * steps, width)).astype("float32")
    y = rng.integers(0, 10, 256 * steps)
    stats = GradientStats(every=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=256, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    first = by_variable(r for r in stats.records if r.step == 1)
    rms = [first[(f"dense_{i}", "kernel")].stats["gradient_rms"] for i in range(depth)]
    said = [str(w.message) for w in caught if issubclass(w.category, GradientStatsWarning)]
    return rms, stats, said


def test_sigmoid_glorot_gradients_vanish_towards_the_input():
    rms, stats, said = seed_case("sigmoid", "glorot_uniform", "sgd")
    assert rms[0] < rms[-1] / 100
    vanishing = [m for m in stats.warnings if "vanish towards the input" in m]
    assert len(vanishing) == 1 and "dense_0" in vanishing[0] and "dense_9" in vanishing[0]
    assert vanishing[0] in said


def test_relu_he_gradients_stay_level():
    rms, stats, _ = seed_case("relu", "he_normal", "sgd")
    assert rms[-1] / 10 < rms[0] < rms[-1] * 10
    assert not [m for m in stats.warnings if "vanish" in m or "explode" in m]


def test_tiny_init_update_ratio_warning_names_every_layer():
    initializer = keras.initializers.RandomNormal(stddev=0.01)
    rms, stats, _ = seed_case("tanh", initializer, keras.optimizers.SGD(0.01))
    assert max(rms) < 1e-6
    small = [m for m in stats.warnings if "barely learn" in m]
    assert len(small) == 1
    for i in range(10):
        assert f"dense_{i} (" in small[0]


@pytest.mark.slow
def test_seed_cases_at_full_width_500():
    rms, stats, _ = seed_case("sigmoid", "glorot_uniform", "sgd", width=500)
    assert rms[0] < rms[-1] / 100 and any("vanish" in m for m in stats.warnings)
    rms, stats, _ = seed_case("relu", "he_normal", "sgd", width=500)
    assert rms[-1] / 10 < rms[0] < rms[-1] * 10
    assert not any("vanish" in m for m in stats.warnings)


def test_nonfinite_gradients_name_the_first_variable():
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data()
    x[3, 0] = np.nan
    stats = GradientStats(every=1, warn=False)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[stats])
    assert stats.records[0].stats["gradient_nonfinite"] > 0
    message = [m for m in stats.warnings if "non-finite" in m]
    assert len(message) == 1 and "the first is dense_0/kernel" in message[0]


def fit_with_nan_gradients_at_step(step, on_nan, every=5):
    """40 steps of 4 rows; the rows of step `step` hold a NaN, so its gradients do."""
    model = mlp()
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    x, y = data(n=160)
    x[(step - 1) * 4, 0] = np.nan
    seen = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch + 1)

    stats = GradientStats(every=every, on_nan=on_nan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
                  callbacks=[stats, Count()])
    said = [str(w.message) for w in caught if issubclass(w.category, GradientStatsWarning)]
    return stats, seen[-1], [m for m in said if "non-finite" in m]


@pytest.mark.parametrize("every", [5, 1])  # the step outside a record window, and in one
def test_on_nan_stop_stops_at_the_first_nonfinite_step(every):
    stats, last, said = fit_with_nan_gradients_at_step(13, "stop", every=every)
    assert last == 13  # with every=5 the window would end at 15
    finding = stats.stopped_by
    assert finding is not None and finding.condition == "nonfinite"
    assert finding.layers == ("dense_0",)
    assert "the first is dense_0/kernel" in finding.message and "step 13" in finding.message
    assert len(said) == 1 and "training stopped" in said[0]
    if every == 1:  # the record of the step is read at once and holds the NaNs
        assert stats.records[-1].step == 13
        assert stats.records[-1].stats["gradient_nonfinite"] > 0


def test_on_nan_warn_reports_and_goes_on_and_ignore_is_silent():
    stats, last, said = fit_with_nan_gradients_at_step(13, "warn")
    assert last == 40 and stats.stopped_by is None
    assert len(said) == 1 and "the first is dense_0/kernel" in said[0]
    assert stats.records[-1].stats["gradient_nonfinite"] > 0
    stats, last, said = fit_with_nan_gradients_at_step(13, "ignore")
    assert last == 40 and stats.stopped_by is None and said == []
    assert not any("non-finite" in m for m in stats.warnings)


def test_on_nan_stop_with_finite_gradients_changes_nothing():
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data(n=64)
    stats = GradientStats(every=3, on_nan="stop", warn=False)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[stats])
    assert stats.stopped_by is None
    assert sorted({r.step for r in stats.records}) == [3, 6, 9, 12, 15, 16]


def test_dead_layer_is_named():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((12,)),
        keras.layers.Dense(8, "relu", name="alive"),
        keras.layers.Dense(8, "relu", bias_initializer=keras.initializers.Constant(-100.0),
                           name="dead"),
        keras.layers.Dense(3, "softmax", name="out"),
    ])  # fmt: skip
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data()
    stats = GradientStats(every=1, warn=False)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[stats])
    dead = [m for m in stats.warnings if "dead layers" in m]
    # no gradient flows through "dead", so "alive" below it gets none either; "out" does
    assert len(dead) == 1 and "of alive, dead was" in dead[0]
    assert by_variable(stats.records)[("out", "bias")].stats["gradient_norm"] > 0


# -- mixed precision ---------------------------------------------------------------------
@pytest.mark.skipif(BACKEND == "torch", reason="fp16 matmuls on the torch CPU build are slow")
def test_mixed_precision_records_the_unscaled_gradient_and_the_applied_update():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = mlp()
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
        model.compile(keras.optimizers.SGD(0.05), loss_fn)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        x, y = data()
        grads = reference_gradients(model, loss_fn, x, y)
        before = [v.numpy().astype("float64") for v in model.trainable_variables]
        stats = GradientStats(every=1, warn=False)
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
        after = [v.numpy().astype("float64") for v in model.trainable_variables]
    finally:
        keras.config.set_dtype_policy("float32")
    records = by_variable(stats.records)
    for v, g, w0, w1 in zip(model.trainable_variables, grads, before, after, strict=True):
        s = records[(v.path.split("/")[1], v.name)].stats
        # fp16 forward pass: the scaled-then-unscaled gradient agrees to fp16 precision
        assert math.isclose(s["gradient_norm"], np.linalg.norm(g), rel_tol=1e-2)
        assert close(s["update_norm"], np.linalg.norm(w1 - w0), rel=1e-4)
        assert close(s["update_norm"], 0.05 * s["gradient_norm"], rel=1e-4)


# -- outputs -------------------------------------------------------------------------------
def test_log_dir_outputs_append_and_read_back(tmp_path):
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data(n=64)
    stats = GradientStats(every=4, log_dir=tmp_path, warn=False)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[stats])
    first_size = os.path.getsize(tmp_path / "gradient_stats.csv")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[stats])
    lines = (tmp_path / "gradient_stats.csv").read_text().splitlines()
    assert lines[0] == "fit,epoch,batch,step,layer,variable,statistic,value"
    assert sum(line.startswith("fit,") for line in lines) == 1  # header once: appended
    assert os.path.getsize(tmp_path / "gradient_stats.csv") > first_size
    frame = stats.to_dataframe()
    assert len(lines) - 1 == len(frame)
    assert sorted(frame["fit"].unique()) == [0, 1]
    records, messages = load_json(tmp_path / "gradient_stats.jsonl")
    assert len(records) == len(stats.records) and messages == stats.warnings
    assert records[-1].stats == pytest.approx(stats.records[-1].stats, nan_ok=True)
    events = os.listdir(tmp_path / "gradients")
    assert len(events) == 2 and all(e.startswith("events.out.tfevents.") for e in events)
    stats.to_json(tmp_path / "all.json")
    assert len(json.loads((tmp_path / "all.json").read_text())["records"]) == len(records)
    stats.to_csv(tmp_path / "all.csv")
    assert (tmp_path / "all.csv").read_text().splitlines() == lines


def test_memory_stays_bounded_over_a_long_run_and_the_files_keep_everything(tmp_path):
    model = mlp()  # 6 variables: 6 records per read
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data(n=64)
    stats = GradientStats(every=1, warn=False, max_records=60, log_dir=tmp_path)
    sizes = RecordSizes(stats)
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[stats, sizes])  # 96 steps
    assert max(sizes.sizes) <= 60
    steps = sorted({r.step for r in stats.records})
    assert steps[0] == 1 and steps[-1] == 96  # the whole run's span
    assert len(steps) < 96 and all(len([r for r in stats.records if r.step == s]) == 6
                                   for s in steps)  # whole reads kept or dropped
    assert len(load_json(tmp_path / "gradient_stats.jsonl")[0]) == 96 * 6


def test_a_failing_write_never_stops_training(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data()
    stats = GradientStats(every=1, log_dir=blocked, warn=False)
    with pytest.warns(RuntimeWarning, match="training continues"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    assert len(stats.records) == 2 * 6


def test_plot_draws_three_panels():
    pytest.importorskip("matplotlib")
    model = mlp(depth=3)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data()
    stats = GradientStats(every=1, warn=False)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[stats])
    figure = stats.plot()
    rms_ax, _ratio_ax, depth_ax = figure.axes
    assert len(rms_ax.get_lines()) == 4  # one per layer
    assert len(depth_ax.get_lines()) == 2  # first and last record
    assert keras_initkit.callbacks.GradientStats is GradientStats
