"""XLA:CPU compiler settings for MT3's compiled decoding.

MT3 decodes one token per step, so its matmuls have only batch-size rows. On x86 CPUs,
XLA's default YNNPACK dot fusions run those small-row matmuls two to four times slower than
XLA's Eigen kernels (measured on a 2-core AVX2 CPU: a batch-16 decoder step's weight
matmuls took 40 ms instead of 10-13). Turning the YNNPACK dot fusion off changes which kernels
run, not the math: outputs agree within float32 rounding, and the tests hold either way.

JAX compiles each program with its own options (`JAX_COMPILER_OPTIONS`, passed to `jax.jit`);
TensorFlow reads XLA flags once per process, from `XLA_FLAGS`, so `prefer_eigen_dots` adds
the flag there before TensorFlow compiles anything. A flag the user set themselves wins.
"""

import os

_OPTION = "xla_cpu_experimental_ynn_fusion_type"
# An empty fusion-type list disables YNNPACK fusions; XLA then emits its own kernels.
JAX_COMPILER_OPTIONS = {_OPTION: ""}


def prefer_eigen_dots(environ=None):
    """Adds `--xla_cpu_experimental_ynn_fusion_type=` to `XLA_FLAGS` unless already set.

    Has an effect only before the process's first XLA compilation (TensorFlow parses
    `XLA_FLAGS` once). Returns the resulting `XLA_FLAGS`.
    """
    environ = os.environ if environ is None else environ
    flags = environ.get("XLA_FLAGS", "")
    if _OPTION not in flags:
        flags = f"{flags} --{_OPTION}=".strip()
        environ["XLA_FLAGS"] = flags
    return flags
