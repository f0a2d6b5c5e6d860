"""Runs SavedModel signatures in a fresh interpreter that never imports keras_mt3.

    python saved_model_runner.py MODEL_DIR REQUESTS.npz RESULTS.npz

REQUESTS.npz holds arrays named SIGNATURE/INPUT (SIGNATURE#N/INPUT for several requests to
one signature); RESULTS.npz gets SIGNATURE/OUTPUT (resp. SIGNATURE#N/OUTPUT) for each.
"""

import collections
import sys

import numpy as np
import tensorflow as tf


def main(model_dir, requests_path, results_path):
    model = tf.saved_model.load(model_dir)
    requests = collections.defaultdict(dict)
    with np.load(requests_path) as arrays:
        for key in arrays.files:
            request, input_name = key.split("/")
            requests[request][input_name] = tf.constant(arrays[key])
    results = {}
    for request, inputs in requests.items():
        signature = model.signatures[request.split("#")[0]]
        for output_name, value in signature(**inputs).items():
            results[f"{request}/{output_name}"] = value.numpy()
    imported = sorted(name for name in sys.modules if name.split(".")[0] == "keras_mt3")
    if imported:
        raise SystemExit(f"keras_mt3 was imported: {imported}")
    np.savez(results_path, **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
