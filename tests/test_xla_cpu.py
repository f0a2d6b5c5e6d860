import subprocess
import sys

import pytest

from keras_mt3 import xla_cpu

pytestmark = pytest.mark.backend_independent


def test_flag_is_added_once_and_kept_with_other_flags():
    environ = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    flags = xla_cpu.prefer_eigen_dots(environ)
    assert flags == "--xla_cpu_enable_fast_math=false --xla_cpu_experimental_ynn_fusion_type="
    assert xla_cpu.prefer_eigen_dots(environ) == flags
    assert environ["XLA_FLAGS"] == flags


def test_a_users_own_setting_wins():
    environ = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}
    xla_cpu.prefer_eigen_dots(environ)
    assert environ == {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}
    empty = {}
    xla_cpu.prefer_eigen_dots(empty)
    assert empty == {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}


# XLA aborts the whole process on a flag it does not know, so a TensorFlow or jaxlib that
# dropped this one must fail here rather than in a user's transcription.
TENSORFLOW_COMPILES_WITH_THE_FLAG = """
from keras_mt3 import xla_cpu
xla_cpu.prefer_eigen_dots()
import tensorflow as tf
x = tf.ones((4, 8))
print(float(tf.function(lambda a: tf.reduce_sum(a @ tf.transpose(a)), jit_compile=True)(x)))
"""

JAX_COMPILES_WITH_THE_OPTION = """
import jax, jax.numpy as jnp
from keras_mt3 import xla_cpu
f = jax.jit(lambda a: jnp.sum(a @ a.T), compiler_options=xla_cpu.JAX_COMPILER_OPTIONS)
print(float(f(jnp.ones((4, 8)))))
"""


@pytest.mark.parametrize("program", [TENSORFLOW_COMPILES_WITH_THE_FLAG, JAX_COMPILES_WITH_THE_OPTION])
def test_installed_xla_accepts_the_setting(program):
    pytest.importorskip("jax" if "jax" in program else "tensorflow")
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "128.0"
