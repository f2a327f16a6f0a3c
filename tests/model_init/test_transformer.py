"""The model operations on a keras.io-style Transformer: custom layers with `x + attn(x)`."""

import keras
import numpy as np
import pytest
from keras import layers as L
from keras import ops

import keras_initkit
from keras_initkit import initializers as ki

EMBED, HEADS, FF, BLOCKS, VOCAB, LENGTH = 32, 2, 64, 4, 50, 12


class TransformerBlock(L.Layer):
    """The block of keras.io's "Text classification with Transformer" (post-LN)."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.att = L.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim // num_heads)
        self.ffn = keras.Sequential([L.Dense(ff_dim, activation="relu"), L.Dense(embed_dim)])
        self.layernorm1 = L.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = L.LayerNormalization(epsilon=1e-6)
        self.dropout1 = L.Dropout(rate)
        self.dropout2 = L.Dropout(rate)

    def call(self, inputs, training=False):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output, training=training)
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(L.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = L.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = L.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        return self.token_emb(x) + self.pos_emb(positions)


def transformer_classifier(blocks=BLOCKS):
    inputs = keras.Input((LENGTH,), dtype="int32")
    h = TokenAndPositionEmbedding(LENGTH, VOCAB, EMBED, name="embed")(inputs)
    for i in range(blocks):
        h = TransformerBlock(EMBED, HEADS, FF, name=f"block{i}")(h)
    h = L.GlobalAveragePooling1D()(h)
    h = L.Dense(16, activation="relu", name="hidden")(h)
    outputs = L.Dense(2, name="logits")(h)
    return keras.Model(inputs, outputs, name="transformer_classifier")


def _np(value):
    return np.array(keras.ops.convert_to_numpy(value))


def _task(n=64, seed=0):
    """Balanced labels: whether the first token is in the lower half of the vocabulary."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, VOCAB, (n, LENGTH)).astype("int32")
    y = (x[:, 0] < VOCAB // 2).astype("int32")
    return x, y


def _attention_kernels(model):
    found = {}
    for i in range(BLOCKS):
        att = model.get_layer(f"block{i}").att
        for sub in (att.query_dense, att.key_dense, att.value_dense, att.output_dense):
            found[f"block{i}/{sub.name}"] = sub.kernel
    return found


def test_zero_init_residual_finds_both_branches_of_every_block_and_zeroes_only_the_last():
    model = transformer_classifier()
    before = {k: _np(v) for k, v in _attention_kernels(model).items()}
    report = keras_initkit.zero_init_residual(model)
    assert len(report) == 2 * BLOCKS
    assert report.column("add") == [
        f"block{i}/add[{k}]" for i in range(BLOCKS) for k in (0, 1)
    ]
    for i in range(BLOCKS):
        block = model.get_layer(f"block{i}")
        att = block.att
        assert not np.any(_np(att.output_dense.kernel))
        assert not np.any(_np(att.output_dense.bias))
        for sub in (att.query_dense, att.key_dense, att.value_dense):
            # query, key and value keep their weights (Fixup: one weighted layer, m = 1)
            np.testing.assert_array_equal(_np(sub.kernel), before[f"block{i}/{sub.name}"])
        second = block.ffn.layers[1]
        assert not np.any(_np(second.kernel))
        assert isinstance(second.kernel_initializer, ki.ResidualZeros)
        assert isinstance(block.ffn.layers[0].kernel_initializer, ki.Fixup)
    rows = {row["add"]: row for row in report}
    att_name = model.get_layer("block0").att.name
    assert rows["block0/add[0]"]["zeroed"] == f"{att_name}/attention_output/kernel"
    assert rows["block0/add[1]"]["weighted layers"] == 2
    assert rows["block0/add[1]"]["fixup scale"] == pytest.approx((2 * BLOCKS) ** -0.5)
    # every block starts as the identity before its layer norms: block(h) = LN2(LN1(h))
    h = np.random.default_rng(1).standard_normal((3, LENGTH, EMBED)).astype("float32")
    block = model.get_layer("block0")
    expected = block.layernorm2(block.layernorm1(h))
    np.testing.assert_allclose(_np(block(h)), _np(expected), atol=1e-5)


def test_transformer_still_trains_after_zero_init_residual():
    keras.utils.set_random_seed(0)
    model = transformer_classifier()
    keras_initkit.zero_init_residual(model)
    before = {k: _np(v) for k, v in _attention_kernels(model).items()}
    x, y = _task()
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    first = float(model.evaluate(x, y, batch_size=len(x), verbose=0))
    model.fit(x, y, batch_size=len(x), epochs=20, verbose=0, shuffle=False)  # 20 steps
    last = float(model.evaluate(x, y, batch_size=len(x), verbose=0))
    assert last < 0.95 * first, (first, last)
    for name, kernel in _attention_kernels(model).items():
        assert np.max(np.abs(_np(kernel) - before[name])) > 0, name


def test_gpt2_mode_scales_the_last_projection_of_each_branch():
    model = transformer_classifier()
    att = model.get_layer("block0").att
    out_before = _np(att.output_dense.kernel)
    query_before = _np(att.query_dense.kernel)
    report = keras_initkit.zero_init_residual(model, mode="gpt2")
    assert len(report) == 2 * BLOCKS
    assert report.column("scale") == pytest.approx([(2 * BLOCKS) ** -0.5] * 2 * BLOCKS)
    np.testing.assert_allclose(
        _np(att.output_dense.kernel), out_before * (2 * BLOCKS) ** -0.5, rtol=1e-6
    )
    np.testing.assert_array_equal(_np(att.query_dense.kernel), query_before)


def test_bad_mode_is_a_clear_error():
    model = transformer_classifier(blocks=1)
    with pytest.raises(ValueError, match="mode must be one of"):
        keras_initkit.zero_init_residual(model, mode="fixup")


def test_reinitialize_gives_each_sublayer_its_own_activation_and_fans():
    model = transformer_classifier(blocks=1)
    report = keras_initkit.reinitialize(model, seed=0)
    rows = {row["layer"]: row for row in report}
    block = model.get_layer("block0")
    ffn1, ffn2 = block.ffn.layers
    assert type(ffn1.kernel_initializer) is ki.HeNormal  # its own relu
    assert type(ffn2.kernel_initializer) is ki.LecunNormal  # feeds the residual sum
    assert ffn2.kernel_initializer.nonlinearity == "linear"
    attention = [name for name in rows if name.startswith(f"block0/{block.att.name}/")]
    assert len(attention) == 4
    for name in attention:
        # layer-aware fans of the 3-D kernels: (32, 2 x 16) in, (2 x 16, 32) out
        assert (rows[name]["fan_in"], rows[name]["fan_out"]) == (EMBED, EMBED), name
        assert "LecunNormal" in rows[name]["initializer"]
        assert "gain" not in rows[name]["initializer"]
    assert rows["hidden"]["activation seen"] == "own activation relu"
    # the graph of a block was read: the FFN's output feeds a `+`
    seen = rows[f"block0/{block.ffn.name}/{ffn2.name}"]["activation seen"]
    assert seen.startswith("linear (next is operation 'add"), seen


def test_lsuv_and_inspect_reach_inside_the_blocks():
    model = transformer_classifier(blocks=2)
    x, _ = _task(32)
    report = keras_initkit.lsuv(model, x, seed=0)
    rows = {row["layer"]: row for row in report}
    att_name = model.get_layer("block0").att.name
    assert rows[f"block0/{att_name}"]["status"] == "ok"
    for name, row in rows.items():
        if row["status"] == "ok":
            assert abs(row["std after"] - 1.0) <= 0.1, name
    inspected = keras_initkit.inspect(model, x)
    assert any(name.startswith("block1/") for name in inspected.column("layer"))
