"""Trains the tiny model for a few steps on one device, then data-parallel over two virtual
CPU devices, and writes what it saw as JSON (run by test_data_parallel.py in a fresh process).

Usage: python data_parallel_run.py BACKEND OUT_DIR. The two devices must exist before the
backend starts, hence a process of its own.
"""

import json
import os
import pathlib
import sys

backend, out_dir = sys.argv[1], pathlib.Path(sys.argv[2])
os.environ["KERAS_BACKEND"] = backend
shards = []  # per-device batch shapes of the data-parallel run's inputs
if backend == "jax":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax

    make_array = jax.make_array_from_process_local_data

    def recording_make_array(sharding, local_data, *args, **kwargs):
        array = make_array(sharding, local_data, *args, **kwargs)
        shards.append(sorted([list(shard.data.shape), str(shard.device)]
                             for shard in array.addressable_shards))
        return array

    jax.make_array_from_process_local_data = recording_make_array
else:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    distribute = tf.distribute.MirroredStrategy.experimental_distribute_dataset

    def recording_distribute(strategy, dataset, *args, **kwargs):
        distributed = distribute(strategy, dataset, *args, **kwargs)
        devices = strategy.extended.worker_devices
        for spec in tf.nest.flatten(distributed.element_spec):
            shards.append(sorted([value.shape.as_list(), device]
                                 for value, device in zip(spec._value_specs, devices)))
        return distributed

    tf.distribute.MirroredStrategy.experimental_distribute_dataset = recording_distribute

from keras_mt3.cli.main import main  # noqa: E402  (after the devices are set up)

RUN = [
    "train", "--synthetic", "2", "--model-size", "tiny", "--steps", "3", "--steps-per-epoch",
    "1", "--batch-size", "4", "--target-length", "32", "--window-frames", "32", "--seed", "0",
    "--verbose", "0", "--no-jit-compile",
]
if backend == "tensorflow":
    # Each replica draws its own dropout masks (JAX's draws them for the global batch).
    RUN += ["--dropout", "0"]
status = {"single": main([*RUN, "-o", str(out_dir / "single")])}
status["parallel"] = main([*RUN, "-o", str(out_dir / "parallel"), "--data-parallel"])
(out_dir / "report.json").write_text(json.dumps({"status": status, "shards": shards}))
