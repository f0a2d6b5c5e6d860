#!/usr/bin/env bash
# Runs the whole suite once per Keras backend. Tests marked `backend_independent`
# (codec, metrics, I/O) run only under the first backend; everything else runs under all three.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -x -k codec`.
set -uo pipefail
cd "$(dirname "$0")/.."
backends=${KERAS_MT3_TEST_BACKENDS:-"jax tensorflow torch"}
failed=()
first=1
for backend in $backends; do
  if [ "$first" = 1 ]; then select=(); else select=(-m "not backend_independent"); fi
  first=0
  echo "=== pytest under KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend python -m pytest -q -rs -p no:cacheprovider "${select[@]}" "$@"
  rc=$?
  # Exit code 5 means every test was deselected under this backend: not a failure.
  if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then failed+=("$backend (exit $rc)"); fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED under: ${failed[*]}"
  exit 1
fi
echo "all backends passed: $backends"
