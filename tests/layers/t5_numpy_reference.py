"""Plain NumPy (float64) statement of MT3's T5 blocks, written from the spec, for layer tests."""

import keras
import numpy as np


def rms_norm(x, scale, epsilon=1e-6):
    return x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + epsilon) * scale


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def attention(query_inputs, key_value_inputs, wq, wk, wv, wo, mask=None):
    """wq/wk/wv `[d, heads, head_dim]`, wo `[heads, head_dim, d]`; no scaling, no biases."""
    q = np.einsum("bqd,dnh->bnqh", query_inputs, wq)
    k = np.einsum("bkd,dnh->bnkh", key_value_inputs, wk)
    v = np.einsum("bkd,dnh->bnkh", key_value_inputs, wv)
    logits = np.einsum("bnqh,bnkh->bnqk", q, k)
    if mask is not None:
        logits = logits + np.where(np.asarray(mask, bool)[:, None], 0.0, -1e10)
    logits = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    mixed = np.einsum("bnqk,bnkh->bqnh", weights, v)
    return np.einsum("bqnh,nhd->bqd", mixed, wo)


def gated_gelu_mlp(x, wi_0, wi_1, wo):
    return (gelu_tanh(x @ wi_0) * (x @ wi_1)) @ wo



def value(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), np.float64)
