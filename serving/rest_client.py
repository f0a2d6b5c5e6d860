"""Transcribe an audio file with MT3 on TensorFlow Serving's REST API and write a MIDI file.

    python serving/rest_client.py song.wav -o song.mid [--server http://localhost:8501]

Sends `{"signature_name": ..., "inputs": {"waveform": [[...]], "lengths": [n]}}` to
`/v1/models/MODEL:predict` and writes the returned notes as MIDI. Needs numpy, soundfile,
soxr and pretty_midi; no TensorFlow or keras-mt3. For long files prefer grpc_client.py
(binary tensors instead of JSON numbers).
"""

import json
import sys
import urllib.error
import urllib.request

import mt3_client_common as common


def predict(server, model, samples, timeout):
    """The signature's outputs (`{name: nested lists}`) for one clip."""
    body = json.dumps(
        {
            "signature_name": "serving_default",
            "inputs": {"waveform": [samples.tolist()], "lengths": [len(samples)]},
        }
    ).encode()
    request = urllib.request.Request(
        f"{server.rstrip('/')}/v1/models/{model}:predict",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["outputs"]
    except urllib.error.HTTPError as error:
        # TF Serving answers bad requests (e.g. audio over the exported limit) with a JSON
        # {"error": "..."} naming the failed check.
        detail = error.read().decode(errors="replace")
        try:
            detail = json.loads(detail)["error"]
        except (ValueError, KeyError):
            pass
        raise RuntimeError(f"the server rejected the request ({error.code}): {detail}") from None
    except urllib.error.URLError as error:
        raise RuntimeError(f"cannot reach {server}: {error.reason}") from None


def main(argv=None):
    parser = common.argument_parser(__doc__.split("\n\n")[0], "http://localhost:8501")
    args = parser.parse_args(argv)
    return common.run(predict, args)


if __name__ == "__main__":
    sys.exit(main())
