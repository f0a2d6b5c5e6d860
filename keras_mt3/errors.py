"""Errors meant for users: each message says what went wrong and what to do about it."""


class KerasMT3Error(ValueError):
    """Base class of every error keras-mt3 raises on purpose."""


class AudioLoadError(KerasMT3Error):
    """The audio could not be read or is unusable (missing, corrupt, empty, wrong shape)."""


class CheckpointError(KerasMT3Error):
    """A checkpoint directory is missing, incomplete, corrupt or does not match the model.

    `files` names the damaged files (relative to the checkpoint directory) when they are known,
    so that a cached download can drop exactly those and fetch them again.
    """

    def __init__(self, message, files=()):
        super().__init__(message)
        self.files = tuple(files)


class PresetError(KerasMT3Error):
    """A preset name is unknown, or its files cannot be found or downloaded."""


class MidiLoadError(KerasMT3Error):
    """A MIDI file is missing or malformed."""


class OutputError(KerasMT3Error):
    """An output file or folder cannot be written where it was asked for."""
