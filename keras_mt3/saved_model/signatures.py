"""Names of the exported SavedModel signatures and of their inputs and outputs.

Clients (serving/*.py, the C++ harness, tests) rely on these names; change them only together
with serving/README.md.
"""

# Audio -> notes, the whole pipeline; plain graph ops, so it runs without XLA.
SERVING_DEFAULT = "serving_default"
# Log-mel frames -> tokens, without XLA.
DECODE_TOKENS = "decode_tokens"
# Log-mel frames -> tokens, compiled by XLA (the exact program MT3Transcriber runs under TF).
DECODE_XLA = "decode_xla"

NEEDS_XLA = {SERVING_DEFAULT: False, DECODE_TOKENS: False, DECODE_XLA: True}

# Inputs of `serving_default`.
WAVEFORM = "waveform"  # float32 [batch, samples], mono 16 kHz, zero-padded to the longest clip
LENGTHS = "lengths"  # int32 [batch], samples of each clip

# Outputs of `serving_default`: one row per clip, notes padded with 0 / False.
ONSET_TIMES = "onset_times"  # float32 [batch, max_notes], seconds
OFFSET_TIMES = "offset_times"  # float32 [batch, max_notes], seconds
PITCHES = "pitches"  # int32 [batch, max_notes], MIDI pitch (GM drum note for drums)
VELOCITIES = "velocities"  # int32 [batch, max_notes], MIDI velocity
PROGRAMS = "programs"  # int32 [batch, max_notes], General MIDI program (0 for drums)
IS_DRUM = "is_drum"  # bool [batch, max_notes]
NUM_NOTES = "num_notes"  # int32 [batch], valid entries of each row
NUM_INVALID_EVENTS = "num_invalid_events"  # int32 [batch], model tokens that were skipped
NUM_DROPPED_EVENTS = "num_dropped_events"  # int32 [batch], tokens past the next segment start

NOTE_OUTPUTS = (
    ONSET_TIMES,
    OFFSET_TIMES,
    PITCHES,
    VELOCITIES,
    PROGRAMS,
    IS_DRUM,
    NUM_NOTES,
    NUM_INVALID_EVENTS,
    NUM_DROPPED_EVENTS,
)

# Input and output of the token signatures.
ENCODER_INPUTS = "encoder_inputs"  # float32 [batch, frames_per_segment, 512] log-mel frames
TOKENS = "tokens"  # int32 [batch, max_decode_length] model ids; EOS then PAD (0)

# Written into the SavedModel's assets.extra/ folder: what was exported, for tools and clients.
MANIFEST_FILE = "keras_mt3_export.json"
