"""A callback noting how many records a statistics callback holds after each batch.

Shared by the bounded-memory tests of `ActivationStats` and `GradientStats`; list it after
the statistics callback, so it sees the records of the batch that just ended.
"""

import keras


class RecordSizes(keras.callbacks.Callback):
    def __init__(self, stats):
        super().__init__()
        self.stats = stats
        self.sizes = []

    def on_train_batch_end(self, batch, logs=None):
        self.sizes.append(len(self.stats.records))
