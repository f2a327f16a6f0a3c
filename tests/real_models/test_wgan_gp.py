"""keras.io's WGAN-GP ("WGAN-GP overriding `Model.train_step`"), shrunk: a critic trained
three times per step with a gradient penalty (a nested `GradientTape`), a generator with
batch norm, each with its own Adam held as a model attribute. TensorFlow only, as the
example is written (`tf.GradientTape`, `tf.random`)."""

import keras
import numpy as np
import pytest

from keras_initkit.callbacks import ActivationStats, GradientStats
from keras_initkit.stats import _gradient_hook

if keras.backend.backend() != "tensorflow":
    pytest.skip("keras.io's WGAN-GP is written for TensorFlow", allow_module_level=True)

import tensorflow as tf  # noqa: E402

D_STEPS = 3


def _critic():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, strides=2, padding="same"),
        keras.layers.LeakyReLU(0.2),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(1, name="critic_out"),
    ], name="critic")  # fmt: skip


def _generator():
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(4 * 4 * 8, use_bias=False, name="g_dense"),
        keras.layers.BatchNormalization(),
        keras.layers.LeakyReLU(0.2),
        keras.layers.Reshape((4, 4, 8)),
        keras.layers.UpSampling2D(),
        keras.layers.Conv2D(1, 3, padding="same", activation="tanh"),
    ], name="generator")  # fmt: skip


class WGAN(keras.Model):
    def __init__(self, latent_dim=4, gp_weight=10.0):
        super().__init__()
        self.discriminator, self.generator = _critic(), _generator()
        self.latent_dim, self.d_steps, self.gp_weight = latent_dim, D_STEPS, gp_weight

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    def gradient_penalty(self, batch_size, real_images, fake_images):
        alpha = tf.random.normal([batch_size, 1, 1, 1], 0.0, 1.0)
        interpolated = real_images + alpha * (fake_images - real_images)
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(interpolated)
            pred = self.discriminator(interpolated, training=True)
        grads = gp_tape.gradient(pred, [interpolated])[0]
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
        return tf.reduce_mean((norm - 1.0) ** 2)

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]
        for _ in range(self.d_steps):
            latent = tf.random.normal(shape=(batch_size, self.latent_dim))
            with tf.GradientTape() as tape:
                fake_images = self.generator(latent, training=True)
                d_cost = (tf.reduce_mean(self.discriminator(fake_images, training=True))
                          - tf.reduce_mean(self.discriminator(real_images, training=True)))
                d_loss = d_cost + self.gp_weight * self.gradient_penalty(
                    batch_size, real_images, fake_images)
            variables = self.discriminator.trainable_variables
            grads = tape.gradient(d_loss, variables)
            self.d_optimizer.apply_gradients(zip(grads, variables, strict=True))
        latent = tf.random.normal(shape=(batch_size, self.latent_dim))
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(
                self.discriminator(self.generator(latent, training=True), training=True))
        variables = self.generator.trainable_variables
        grads = tape.gradient(g_loss, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables, strict=True))
        return {"d_loss": d_loss, "g_loss": g_loss}


@pytest.mark.slow  # about a minute: three critic updates per step, traced with two tapes
def test_wgan_gp_records_each_critic_update_and_both_networks():
    keras.utils.set_random_seed(0)
    model = WGAN()
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9),
                  keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9))
    images = np.random.default_rng(0).uniform(-1, 1, (64, 8, 8, 1)).astype("float32")
    gradients, activations = GradientStats(every=2), ActivationStats(every=2, warn=False)
    model.fit(images, batch_size=16, epochs=2, verbose=0, callbacks=[gradients, activations])
    reads = sorted({r.step for r in gradients.records})
    assert len(reads) >= 4  # both epochs (the first step built the optimizers)
    variables = {v.path.split("/", 1)[1] for v in model.trainable_variables}
    for step in reads:
        at = {f"{r.layer.split('/')[-1]}/{r.variable}": r for r in gradients.records
              if r.step == step}
        assert len(at) == len(variables)
        g_steps = at["g_dense/kernel"].stats["steps"]
        for name, record in at.items():
            critic = record.layer.startswith("critic")
            assert record.stats["steps"] == (D_STEPS * g_steps if critic else g_steps), name
            if name == "critic_out/bias":  # the critic's output bias cancels in its loss,
                # mean(fake) - mean(real), and the penalty does not depend on it
                assert record.stats["gradient_norm"] == record.stats["update_norm"] == 0.0
            else:
                assert np.isfinite(record.stats["gradient_norm"]), name
                assert record.stats["update_norm"] > 0, (name, step)
    assert not [w for w in gradients.warnings if "applied" in w]
    assert {r.layer.split("/")[0] for r in activations.records} == {"critic", "generator"}
    assert _gradient_hook.installed_hook(model) is None and "train_step" not in vars(model)
    model.fit(images, batch_size=16, epochs=1, verbose=0)  # plain training goes on
