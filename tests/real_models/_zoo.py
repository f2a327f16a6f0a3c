"""The architectures of the conformance matrix, small enough for a CPU test run.

Imported by the tests and by the fresh process that loads their saved `.keras` files
(the custom classes are registered here, as a user's own module would register them).
"""

import keras
import numpy as np
from keras import layers as L
from keras import ops

IMAGE = (32, 32, 3)
VOCAB, LENGTH, EMBED = 50, 12, 32


@keras.saving.register_keras_serializable(package="zoo")
class TransformerBlock(L.Layer):
    """keras.io "Text classification with Transformer": post-LN, `x + attn(x)`."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim, self.rate = embed_dim, num_heads, ff_dim, rate
        self.att = L.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim // num_heads)
        self.ffn = keras.Sequential([L.Dense(ff_dim, activation="relu"), L.Dense(embed_dim)])
        self.layernorm1 = L.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = L.LayerNormalization(epsilon=1e-6)
        self.dropout1 = L.Dropout(rate)
        self.dropout2 = L.Dropout(rate)

    def call(self, inputs, training=False):
        attn = self.dropout1(self.att(inputs, inputs), training=training)
        out1 = self.layernorm1(inputs + attn)
        ffn = self.dropout2(self.ffn(out1), training=training)
        return self.layernorm2(out1 + ffn)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim,
                "num_heads": self.num_heads, "ff_dim": self.ff_dim, "rate": self.rate}


@keras.saving.register_keras_serializable(package="zoo")
class TokenAndPositionEmbedding(L.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
        self.token_emb = L.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = L.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = ops.arange(start=0, stop=ops.shape(x)[-1], step=1)
        return self.token_emb(x) + self.pos_emb(positions)

    def get_config(self):
        return {**super().get_config(), "maxlen": self.maxlen,
                "vocab_size": self.vocab_size, "embed_dim": self.embed_dim}


@keras.saving.register_keras_serializable(package="zoo")
class Sampling(L.Layer):
    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mean, log_var = inputs
        noise = keras.random.normal(ops.shape(mean), seed=self.generator)
        return mean + ops.exp(0.5 * log_var) * noise

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class VAE(keras.Model):
    """keras.io's VAE: a subclassed model with its own `train_step`."""

    def __init__(self, latent_dim=2, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        enc_in = keras.Input((8, 8, 1))
        h = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(enc_in)
        h = L.Flatten()(h)
        h = L.Dense(16, activation="relu")(h)
        self.encoder = keras.Model(
            enc_in,
            [L.Dense(latent_dim, name="z_mean")(h), L.Dense(latent_dim, name="z_log_var")(h)],
            name="encoder")
        dec_in = keras.Input((latent_dim,))
        h = L.Dense(4 * 4 * 8, activation="relu")(dec_in)
        h = L.Reshape((4, 4, 8))(h)
        h = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(h)
        self.decoder = keras.Model(
            dec_in, L.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")(h),
            name="decoder")
        self.sampling = Sampling()
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, x):
        mean, log_var = self.encoder(x)
        return self.decoder(self.sampling([mean, log_var]))

    def train_step(self, data):
        # a backend-neutral train_step needs the backend's gradient API; keep it tiny
        x = data[0] if isinstance(data, tuple) else data
        return _train_step(self, x)

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}


def _vae_loss(model, x):
    mean, log_var = model.encoder(x)
    recon = model.decoder(model.sampling([mean, log_var]))
    rec = ops.mean(ops.sum(keras.losses.binary_crossentropy(x, recon), axis=(1, 2)))
    kl = -0.5 * ops.mean(ops.sum(1 + log_var - ops.square(mean) - ops.exp(log_var), axis=1))
    return rec + kl


def _train_step(model, x):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = _vae_loss(model, x)
        grads = tape.gradient(loss, model.trainable_weights)
    elif backend == "torch":
        model.zero_grad()
        loss = _vae_loss(model, x)
        loss.backward()
        grads = [v.value.grad for v in model.trainable_weights]
    else:  # jax: the stateless step is more than a test needs; use the metric only
        raise NotImplementedError("the VAE's train_step is written for TensorFlow and torch")
    model.optimizer.apply(grads, model.trainable_weights)
    model.loss_tracker.update_state(loss)
    return {"loss": model.loss_tracker.result()}


def transformer_classifier(blocks=2):
    inputs = keras.Input((LENGTH,), dtype="int32")
    h = TokenAndPositionEmbedding(LENGTH, VOCAB, EMBED, name="embed")(inputs)
    for i in range(blocks):
        h = TransformerBlock(EMBED, 2, 64, name=f"block{i}")(h)
    h = L.GlobalAveragePooling1D()(h)
    h = L.Dense(16, activation="relu")(h)
    return keras.Model(inputs, L.Dense(2)(h), name="transformer")


def recurrent_text_model():
    return keras.Sequential([
        keras.Input((LENGTH,), dtype="int32"),
        L.Embedding(VOCAB, 16),
        L.LSTM(16, return_sequences=True),
        L.GRU(16),
        L.Dense(2),
    ], name="lstm_gru")


def vae():
    model = VAE(name="vae")
    model(np.zeros((2, 8, 8, 1), "float32"))
    return model


def nested():
    inner = keras.Sequential(
        [keras.Input((16,)), L.Dense(32, activation="tanh"), L.Dense(32)], name="inner")
    inputs = keras.Input((16,))
    h = L.ReLU()(inner(L.Dense(16, name="stem")(inputs)))
    return keras.Model(inputs, L.Dense(2, name="head")(h), name="nested")


def application(name):
    def build():
        return getattr(keras.applications, name)(weights=None, input_shape=IMAGE, classes=10)
    build.__name__ = name
    return build


def batch(kind, n=4, seed=0):
    """(x, y) for a row's model."""
    rng = np.random.default_rng(seed)
    if kind == "image":
        return rng.standard_normal((n, *IMAGE)).astype("float32"), rng.integers(0, 10, n)
    if kind == "tokens":
        return rng.integers(0, VOCAB, (n, LENGTH)).astype("int32"), rng.integers(0, 2, n)
    if kind == "vae":
        x = rng.uniform(0, 1, (n, 8, 8, 1)).astype("float32")
        return x, x
    return rng.standard_normal((n, 16)).astype("float32"), rng.integers(0, 2, n)
