"""Runs a benchmark script once per Keras backend, each in its own process (a process has one
Keras backend), and collects the JSON result the child prints on a `RESULT ` line."""

import json
import os
import subprocess
import sys

RESULT_PREFIX = "RESULT "


def print_result(result):
    """Called in the child: hands `result` (JSON-serializable) to the parent."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_per_backend(script, backends, child_arguments, env=None):
    """Runs `script --child BACKEND *child_arguments` per backend, with `env` added to the
    environment; returns the results of the runs that succeeded and reports the others (with
    the end of their stderr)."""
    results = []
    for backend in backends:
        command = [sys.executable, script, "--child", backend, *map(str, child_arguments)]
        child_env = dict(os.environ, **(env or {}), KERAS_BACKEND=backend,
                         TF_CPP_MIN_LOG_LEVEL="3")
        completed = subprocess.run(command, env=child_env, capture_output=True, text=True)
        lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if completed.returncode != 0 or not lines:
            print(f"{backend}: failed\n{completed.stderr[-3000:]}", file=sys.stderr)
            continue
        results.append(json.loads(lines[-1][len(RESULT_PREFIX):]))
    return results
