"""keras-hub's BERT and GPT-2, tiny and built from config (no preset download).

keras-hub is installed in CI with `--no-deps` plus the two packages its import needs
(`regex`, `tokenizers`): its declared `tensorflow-text` would pull the full `tensorflow`
next to the CPU build. Skipped where keras-hub is not installed.
"""

import keras
import numpy as np
import pytest

import keras_initkit

keras_hub = pytest.importorskip("keras_hub")

LAYERS, VOCAB, LENGTH = 2, 100, 16


def _gpt2():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=LENGTH,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def _bert():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=LENGTH,
    )
    return keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=2, preprocessor=None)


def _tokens(n=4, segments=False):
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, VOCAB, (n, LENGTH)).astype("int32"),
         "padding_mask": np.ones((n, LENGTH), "int32")}
    if segments:
        x["segment_ids"] = np.zeros((n, LENGTH), "int32")
    return x


def _lm_loss(model, x):
    logits = model(x, training=False)
    labels = np.roll(x["token_ids"], -1, axis=1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    return float(keras.ops.convert_to_numpy(loss))


def test_gpt2_reinitialize_keeps_the_tied_embedding_and_a_sane_loss():
    model = _gpt2()
    x = _tokens()
    table = np.array(keras.ops.convert_to_numpy(model.backbone.token_embedding.embeddings))
    before = _lm_loss(model, x)
    report = keras_initkit.reinitialize(model, seed=0)
    after = _lm_loss(model, x)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.backbone.token_embedding.embeddings), table
    )
    assert any("tied" in str(row["initializer"]) for row in report)
    # log(100) = 4.6: an untouched table keeps the first loss near chance (a std-1 tied
    # table gave 17.8 at GPT-2's size)
    assert after < np.log(VOCAB) + 1.0, (before, after)
    rows = {row["layer"]: row for row in report}
    dense = [n for n in rows if n.endswith("feedforward_intermediate_dense")]
    assert dense and all("gain=1.53" in rows[n]["initializer"] for n in dense)
    query = [n for n in rows if n.endswith("/query/kernel")]
    assert len(query) == LAYERS
    assert all((rows[n]["fan_in"], rows[n]["fan_out"]) == (32, 32) for n in query)


@pytest.mark.parametrize("build", [_gpt2, _bert], ids=["gpt2", "bert"])
def test_zero_init_residual_finds_two_branches_per_block(build):
    model = build()
    report = keras_initkit.zero_init_residual(model)
    assert len(report) == 2 * LAYERS
    zeroed = report.column("zeroed")
    assert sum(z.endswith("attention_output/kernel") for z in zeroed) == LAYERS
    assert sum(z.endswith("feedforward_output_dense/kernel") for z in zeroed) == LAYERS


def test_gpt2_mode_scales_by_one_over_sqrt_two_n_layers():
    model = _gpt2()
    report = keras_initkit.zero_init_residual(model, mode="gpt2")
    assert report.column("scale") == pytest.approx([(2 * LAYERS) ** -0.5] * (2 * LAYERS))


@pytest.mark.parametrize("build", [_gpt2, _bert], ids=["gpt2", "bert"])
def test_lsuv_inspect_and_training(build):
    model = build()
    x = _tokens(segments=build is _bert)
    report = keras_initkit.lsuv(model, x, seed=0)
    for row in report:
        assert row["status"].startswith(("ok", "skipped")), row
    assert len(keras_initkit.inspect(model, x)) > 10
    keras_initkit.zero_init_residual(model)
    y = np.roll(x["token_ids"], -1, axis=1) if build is _gpt2 else np.array([0, 1, 0, 1])
    model.compile(optimizer=keras.optimizers.SGD(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("build", [_gpt2, _bert], ids=["gpt2", "bert"])
def test_fit_with_gradient_and_activation_stats(build):
    model = build()
    x = _tokens(segments=build is _bert)
    y = np.roll(x["token_ids"], -1, axis=1) if build is _gpt2 else np.array([0, 1, 0, 1])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    gradients = keras_initkit.callbacks.GradientStats(every=1, warn=False)
    activations = keras_initkit.callbacks.ActivationStats(every=1, warn=False)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[gradients, activations])
    steps = sorted({r.step for r in gradients.records})
    assert steps == [1, 2]
    recorded = [r for r in gradients.records if r.step == 2]
    assert len(recorded) == len(model.trainable_variables)
    assert all(np.isfinite(r.stats["gradient_norm"]) for r in recorded)
    # the tied token embedding of GPT-2 gets a gradient; every kernel of both models does
    kernels = [r for r in recorded if r.variable in ("kernel", "embeddings")]
    assert kernels and all(r.stats["gradient_norm"] > 0 for r in kernels)
    assert {r.layer for r in activations.records}
