"""MT3's training loss: cross-entropy over the non-pad targets plus T5's z-loss.

Per target token with logits z: `log Z - z[target] + z_loss * (log Z) ** 2`, where
`log Z = logsumexp(z)`. The z-loss (1e-4 in MT3 / T5X) keeps the softmax normalizer near 1,
so log-probabilities stay well scaled. Padding (target id 0) is not scored; EOS is.

Normalization: by default the loss is the mean over the batch's non-pad tokens, which keeps
the learning rate meaningful whatever the batch size and target lengths. T5X (and so the
original MT3 training) uses the unnormalized sum over the batch's non-pad tokens
(`loss_normalizing_factor=None`); pass `normalization="sum"` for that. Adafactor's updates are
nearly invariant to the loss scale, AdamW's are not.

Both are computed over the global batch under data-parallel training too: JAX's
`DataParallel` computes on the whole batch at once, and under `tf.distribute` each replica
divides its tokens' sum by the token count of all replicas, so the summed gradients equal
one device's (Keras' own mean reductions would average the replicas' means instead).
"""

import keras
from keras import ops

from keras_mt3.errors import KerasMT3Error

MT3_Z_LOSS = 1e-4
TOKEN_MEAN = "token_mean"
SUM = "sum"
NORMALIZATIONS = (TOKEN_MEAN, SUM)


def token_losses(targets, logits, z_loss=MT3_Z_LOSS):
    """Per-token loss `[B, L]` (float32): cross-entropy + `z_loss * log(Z)**2`; pads included."""
    logits = ops.cast(logits, "float32")
    targets = ops.cast(targets, "int32")
    log_z = ops.logsumexp(logits, axis=-1)
    target_logits = ops.squeeze(ops.take_along_axis(logits, targets[..., None], axis=-1), -1)
    return log_z - target_logits + z_loss * ops.square(log_z)


@keras.saving.register_keras_serializable(package="keras_mt3")
class MT3Loss(keras.losses.Loss):
    """Cross-entropy + z-loss over non-pad target tokens, for `model.compile(loss=...)`.

    `y_true` are target model ids `[B, L]` (0 = padding), `y_pred` logits `[B, L, vocab]`.
    A `sample_weight` `[B]` or `[B, L]` further weights the tokens.

    Args:
        z_loss: weight of the `log(Z)**2` term (MT3: 1e-4; 0 disables it).
        normalization: `"token_mean"` (default; mean over weighted non-pad tokens) or `"sum"`
            (T5X: unnormalized sum over the batch).
    """

    def __init__(self, z_loss=MT3_Z_LOSS, normalization=TOKEN_MEAN, name="mt3_loss", **kwargs):
        if normalization not in NORMALIZATIONS:
            raise KerasMT3Error(
                f"normalization must be one of {sorted(NORMALIZATIONS)}, got {normalization!r}"
            )
        # A weighted sum either way: `__call__` divides the weights by the token count.
        kwargs.pop("reduction", None)  # present in saved configs
        super().__init__(name=name, reduction="sum", **kwargs)
        self.z_loss = float(z_loss)
        self.normalization = normalization

    def __call__(self, y_true, y_pred, sample_weight=None):
        weights = ops.cast(ops.not_equal(y_true, 0), "float32")
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float32")
            if len(sample_weight.shape) == 1:
                sample_weight = sample_weight[:, None]
            weights = weights * sample_weight
        if self.normalization == TOKEN_MEAN:
            weights = ops.divide_no_nan(weights, _sum_over_replicas(ops.sum(weights)))
        return super().__call__(y_true, y_pred, sample_weight=weights)

    def call(self, y_true, y_pred):
        return token_losses(y_true, y_pred, self.z_loss)

    def get_config(self):
        config = super().get_config()
        config.update(z_loss=self.z_loss, normalization=self.normalization)
        return config


def _sum_over_replicas(value):
    """`value` summed over the replicas of a `tf.distribute` strategy; `value` itself outside
    one (and under JAX and torch, where a step sees the whole batch)."""
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(value))
