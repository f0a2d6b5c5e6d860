"""The symbolic half of MT3: NoteSequences <-> token ids (pure Python + NumPy, no Keras)."""

from keras_mt3.codec.detokenize import (
    DetokenizeResult,
    codec_events_to_note_sequence,
    tokens_to_note_sequence,
)
from keras_mt3.codec.tokenize import (
    encode_note_sequence,
    note_sequence_to_segment_tokens,
    segment_tokens,
)
from keras_mt3.codec.vocabulary import (
    ISMIR2021_VOCABULARY,
    MT3_VOCABULARY,
    VocabularyConfig,
    get_vocabulary,
)
