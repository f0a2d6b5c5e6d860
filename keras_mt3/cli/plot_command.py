"""`keras-mt3 plot IN -o OUT.png`: a piano-roll picture of a MIDI file (or of an audio file,
transcribed first), optionally scored against a reference MIDI file."""

import pathlib

from keras_mt3.cli import common
from keras_mt3.constants import MIDI_EXTENSIONS


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "plot",
        help="draw a piano roll of a MIDI or audio file as a PNG",
        description="Draw a piano roll (PNG). An audio input is transcribed first. With "
        "--reference, notes are coloured matched (green), missed (red) or extra (blue).",
    )
    parser.add_argument("input", help="a MIDI file, or an audio file to transcribe")
    parser.add_argument("-o", "--output", required=True, help="the PNG file to write")
    parser.add_argument("--reference", help="ground-truth MIDI file to compare against")
    parser.add_argument(
        "--start",
        type=common.non_negative_seconds,
        help="start of the time window, in seconds (default: 0)",
    )
    parser.add_argument(
        "--end",
        type=common.positive_seconds,
        help="end of the time window, in seconds (default: the last note's end)",
    )
    parser.add_argument("--title", help="figure title (default: describes the plot)")
    common.add_model_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(run=run)


def run(args):
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.midi_io import load_midi
    from keras_mt3.plotting import check_time_window, plot_pianoroll
    from keras_mt3.utils import check_output_file

    output = pathlib.Path(args.output)
    if output.suffix.lower() != ".png":
        raise KerasMT3Error(f"-o {output} must end in .png (the plot is written as a PNG image)")
    check_time_window(args.start, args.end)  # before a possibly long transcription
    check_output_file(output)
    # Read the (cheap) reference before a possibly long transcription, so a typo fails fast.
    reference = load_midi(args.reference) if args.reference else None
    note_sequence = _input_notes(args, load_midi)
    plot_pianoroll(
        note_sequence, reference, output, title=args.title, start=args.start, end=args.end
    )
    print(f"{args.input}: {len(note_sequence.notes)} notes -> {output}")
    return 0


def _input_notes(args, load_midi):
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.preprocessing.audio_io import AUDIO_EXTENSIONS

    source = pathlib.Path(args.input)
    if source.suffix.lower() in AUDIO_EXTENSIONS:
        if not source.is_file():
            raise KerasMT3Error(f"audio file {source} does not exist; check the path")
        model = common.load_transcriber(args)
        return model.transcribe(source, progress=False if args.no_progress else None)
    if source.suffix.lower() not in MIDI_EXTENSIONS:
        raise KerasMT3Error(
            f"{source} is neither a MIDI file ({', '.join(MIDI_EXTENSIONS)}) nor audio "
            f"({', '.join(AUDIO_EXTENSIONS)}); give one of those"
        )
    return load_midi(source)
