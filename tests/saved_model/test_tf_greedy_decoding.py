"""The XLA-free decoder gives the same tokens as the model's own greedy decoding."""

import numpy as np
import pytest
from export_support import TINY_DECODE_LENGTH


@pytest.fixture(scope="module")
def decoders(tiny_backbone):
    import tensorflow as tf

    from keras_mt3.saved_model.tf_greedy_decoding import greedy_decode_without_xla
    from keras_mt3.models.greedy_decoding import make_greedy_decode_fn

    spec = tf.TensorSpec([None, 256, 512], tf.float32)
    finished_spec = tf.TensorSpec([None], tf.bool)

    @tf.function(input_signature=[spec, finished_spec], autograph=False)
    def without_xla(encoder_inputs, finished):
        encoded = tiny_backbone.encode(encoder_inputs)
        return greedy_decode_without_xla(tiny_backbone, encoded, TINY_DECODE_LENGTH, finished)

    reference = make_greedy_decode_fn(tiny_backbone, TINY_DECODE_LENGTH)
    return without_xla, reference


def log_mel_like(rows, seed):
    return np.random.RandomState(seed).normal(-4.0, 3.0, (rows, 256, 512)).astype("float32")


# Two batch shapes only: each one costs the XLA-compiled reference a compilation.
@pytest.mark.parametrize("rows, seed", [(1, 0), (4, 1)])
def test_tokens_equal_the_models_greedy_decoding(decoders, rows, seed):
    without_xla, reference = decoders
    inputs = log_mel_like(rows, seed)
    tokens = without_xla(inputs, np.zeros(rows, bool)).numpy()
    np.testing.assert_array_equal(tokens, np.asarray(reference(inputs)))
    assert tokens.shape == (rows, TINY_DECODE_LENGTH)


def test_finished_rows_only_produce_padding(decoders):
    without_xla, reference = decoders
    inputs = log_mel_like(4, 3)
    finished = np.array([False, True, False, True])
    tokens = without_xla(inputs, finished).numpy()
    assert not tokens[finished].any()
    np.testing.assert_array_equal(tokens[~finished], np.asarray(reference(inputs))[~finished])


def test_an_empty_batch_decodes_to_nothing(decoders):
    without_xla, _ = decoders
    tokens = without_xla(np.zeros((0, 256, 512), "float32"), np.zeros(0, bool))
    assert tokens.shape == (0, TINY_DECODE_LENGTH)


def test_the_graph_has_no_xla_ops(decoders):
    without_xla, _ = decoders
    graph = without_xla.get_concrete_function().graph
    names = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():
        names |= {node.op for node in function.cached_definition.node_def}
    assert "While" in names
    assert not {name for name in names if name.startswith("Xla")}
