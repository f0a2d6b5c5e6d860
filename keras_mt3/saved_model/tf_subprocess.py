"""Export from a JAX or PyTorch session: rebuild the model under TensorFlow in a child process.

A process has one Keras backend, and the SavedModel must be built from TensorFlow graphs. The
parent saves the backbone's config and weights (`.weights.h5` is backend-neutral) to a
temporary folder; a child started with KERAS_BACKEND=tensorflow rebuilds the backbone, loads
the weights and runs `export()`. Run as `python -m keras_mt3.saved_model.tf_subprocess SPEC.json`.
"""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from keras_mt3.errors import KerasMT3Error

_SPEC_FILE = "spec.json"
_WEIGHTS_FILE = "backbone.weights.h5"
_ERROR_FILE = "error.txt"


def export_in_tensorflow_subprocess(backbone, vocabulary, path, options, *, overwrite, progress):
    """Exports `backbone` (any backend) through a TensorFlow-backend child process."""
    with tempfile.TemporaryDirectory(prefix="keras_mt3_export_") as handoff:
        handoff = pathlib.Path(handoff)
        backbone.save_weights(str(handoff / _WEIGHTS_FILE))
        spec = {
            "backbone": backbone.get_config(),
            "vocabulary": dataclasses.asdict(vocabulary),
            "path": str(path),
            "options": {**options, "overwrite": overwrite, "progress": progress},
        }
        (handoff / _SPEC_FILE).write_text(json.dumps(spec))
        environment = dict(os.environ, KERAS_BACKEND="tensorflow")
        command = [sys.executable, "-m", __name__, str(handoff / _SPEC_FILE)]
        result = subprocess.run(command, env=environment, check=False)
        if result.returncode != 0:
            error_file = handoff / _ERROR_FILE
            reason = error_file.read_text() if error_file.is_file() else "see the messages above"
            raise KerasMT3Error(
                f"exporting under the TensorFlow backend (in a child process) failed: {reason}"
            )
    return path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec_path = pathlib.Path(argv[0])
    handoff = spec_path.parent
    from keras_mt3.tensorflow_logs import quiet_tensorflow_startup

    try:
        with quiet_tensorflow_startup():
            _export_from_spec(spec_path, handoff)
    except KerasMT3Error as error:
        (handoff / _ERROR_FILE).write_text(str(error))
        return 2
    return 0


def _export_from_spec(spec_path, handoff):
    import keras

    from keras_mt3.codec.vocabulary import VocabularyConfig
    from keras_mt3.saved_model.exporter import export
    from keras_mt3.models.mt3_backbone import MT3Backbone

    if keras.backend.backend() != "tensorflow":
        raise KerasMT3Error("the export child process must run with KERAS_BACKEND=tensorflow")
    spec = json.loads(spec_path.read_text())
    backbone = MT3Backbone.from_config(spec["backbone"])
    backbone.load_weights(str(handoff / _WEIGHTS_FILE))
    export(
        backbone,
        spec["path"],
        vocabulary=VocabularyConfig(**spec["vocabulary"]),
        **spec["options"],
    )


if __name__ == "__main__":
    sys.exit(main())
