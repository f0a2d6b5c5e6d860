"""Training speed per Keras backend and model size: steps/s and examples/s on this machine.

    python benchmarks/train_speed.py [--backends jax tensorflow torch] [--sizes mt3 small]
                                     [--batch-size 4] [--target-length 1024] [--steps 5]

Each backend runs in its own process (a process has one Keras backend). For each model size it
times full training steps (forward, backward, T5X Adafactor update; `jit_compile` as the train
command sets it: XLA under JAX and TensorFlow, eager under torch) on batches made by the data
pipeline from rendered clips: 256-frame windows (2.048 s) and targets padded to
`--target-length` tokens (MT3 trains with 1024). The first step, which compiles, is reported
apart. The data pipeline's own throughput (windows cut, tokenized and turned into log-mel
batches, clips cached in memory) is measured once, without a model.
"""

import argparse
import os
import time

from backend_runs import print_result, run_per_backend

SIZES = ("mt3", "small")


def batches(batch_size, target_length):
    """Endless training batches from 8 rendered 10 s clips (piano, guitar, bass, violin, drums)."""
    from keras_mt3.data.pipeline import TrainingDataConfig, training_dataset
    from keras_mt3.data.synthetic import synthetic_pairs

    pairs = synthetic_pairs(
        8, 10.0, seed=0, programs=(0, 24, 33, 40), notes_per_second=8.0,
        drum_pitches=(36, 38, 42), drum_hits_per_second=4.0,
    )
    config = TrainingDataConfig(target_length=target_length, batch_size=batch_size, seed=0)
    return training_dataset(pairs, config)


def measure(backend, sizes, batch_size, target_length, steps):
    """Runs inside the per-backend child process; prints one JSON line."""
    import keras

    from keras_mt3.training import TrainingConfig, build_transcriber, compile_for_training

    data = list(batches(batch_size, target_length).take(steps + 1).as_numpy_iterator())
    result = {"backend": backend, "sizes": {}}
    for size in sizes:
        keras.utils.set_random_seed(0)
        config = TrainingConfig(model_size=size, target_length=target_length)
        model = compile_for_training(build_transcriber(config), config)
        started = time.perf_counter()
        model.train_on_batch(*data[0])
        first_step = time.perf_counter() - started
        started = time.perf_counter()
        for x, y in data[1:]:
            loss = model.train_on_batch(x, y)
        seconds = (time.perf_counter() - started) / steps
        result["sizes"][size] = {
            "parameters": model.backbone.count_params(),
            "first_step_s": first_step,
            "step_s": seconds,
            "loss": float(loss),
            "jit_compile": bool(model.jit_compile),
        }
    print_result(result)


def pipeline_throughput(batch_size, target_length, batches_to_time=20):
    iterator = iter(batches(batch_size, target_length))
    next(iterator)  # loads and tokenizes the clips (cached afterwards)
    started = time.perf_counter()
    for _ in range(batches_to_time):
        next(iterator)
    return batches_to_time * batch_size / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow", "torch"])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--target-length", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child, args.sizes, args.batch_size, args.target_length, args.steps)
        return

    rows = run_per_backend(
        __file__, args.backends,
        ["--sizes", *args.sizes, "--batch-size", args.batch_size,
         "--target-length", args.target_length, "--steps", args.steps],
    )

    print(
        f"batch {args.batch_size} x 256 frames, targets padded to {args.target_length} tokens, "
        f"{args.steps} timed steps, CPU threads available: {os.cpu_count()}"
    )
    header = (
        f"{'backend':<11}{'size':<7}{'params':>8}{'jit':>6}{'first step s':>13}"
        f"{'step s':>8}{'steps/s':>9}{'examples/s':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        for size, figures in row["sizes"].items():
            step = figures["step_s"]
            print(
                f"{row['backend']:<11}{size:<7}{figures['parameters'] / 1e6:>7.1f}M"
                f"{str(figures['jit_compile']):>6}{figures['first_step_s']:>13.1f}{step:>8.2f}"
                f"{1 / step:>9.2f}{args.batch_size / step:>11.2f}"
            )
    throughput = pipeline_throughput(args.batch_size, args.target_length)
    print(f"data pipeline alone: {throughput:.0f} examples/s")


if __name__ == "__main__":
    main()
