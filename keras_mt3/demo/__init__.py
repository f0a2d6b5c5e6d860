"""A short demo clip that ships with the package.

`piano_chorale.flac` (21.0 s, 16 kHz mono, lossless 16-bit FLAC) is J. S. Bach's chorale
BWV 66.6 played on piano, rendered from MIDI with FluidSynth and the FluidR3_GM soundfont. It is
the same audio as the `piano_chorale` clip of the original MT3 reference outputs used by the
tests, so transcribing it reproduces that reference.
"""

import importlib.resources
import pathlib

DEMO_CLIP = "piano_chorale.flac"


def demo_clip_path():
    """Path of the bundled demo clip (a real file; the package is installed unzipped)."""
    path = pathlib.Path(str(importlib.resources.files(__name__).joinpath(DEMO_CLIP)))
    if not path.is_file():
        from keras_mt3.errors import KerasMT3Error

        raise KerasMT3Error(
            f"the demo clip {DEMO_CLIP} is missing from {path.parent}; reinstall keras-mt3 "
            "(the package data was not installed)."
        )
    return path
