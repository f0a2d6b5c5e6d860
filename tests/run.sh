#!/usr/bin/env bash
# Runs the whole suite once per Keras backend. Tests marked `backend_independent`
# (codec, metrics, I/O) run only under the first backend; everything else runs under all three.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -x -k codec`. The release check (build
# the sdist and wheel, twine check, run the wheel and the notebook from a fresh venv outside the
# checkout: tests/test_release.py, tests/test_notebook.py) is backend-independent, so it runs once.
set -uo pipefail
cd "$(dirname "$0")/.."
# The web service's browser test drives Debian's Chromium: install it once where we may
# (root with apt); elsewhere that test skips and says why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "=== installing chromium for the browser test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "chromium could not be installed; the browser test will be skipped"
fi
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
