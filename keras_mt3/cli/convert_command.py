"""`keras-mt3 convert T5X_DIR OUT_DIR`: a T5X MT3 checkpoint -> a Keras preset folder."""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="convert a T5X MT3 checkpoint into a Keras preset folder",
        description=(
            "Convert a T5X MT3 checkpoint (the folder holding `checkpoint` and the `target.*` "
            "zarr folders) into a Keras preset folder: config.json, model.weights.h5 and "
            "metadata.json, loaded by `--preset OUT_DIR` or MT3Transcriber.from_preset(OUT_DIR) "
            "without reading the checkpoint again. The model's size and vocabulary are read "
            "from the checkpoint. Preset names (mt3, ismir2021) need no conversion: they are "
            "converted into the cache on first use."
        ),
    )
    parser.add_argument("checkpoint", metavar="T5X_DIR", help="the T5X checkpoint folder")
    parser.add_argument("output", metavar="OUT_DIR", help="the preset folder to create")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT_DIR if it holds a preset (any other non-empty folder is refused)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(run=run)


def run(args):
    from keras_mt3 import MT3Transcriber
    from keras_mt3.checkpoints.convert_t5x import convert_t5x_checkpoint
    from keras_mt3.preset_io import read_metadata

    output = convert_t5x_checkpoint(
        args.checkpoint,
        args.output,
        MT3Transcriber,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
    )
    metadata = read_metadata(output)
    official = metadata["source"]["preset"]
    source = f"the official {official} checkpoint" if official else "a T5X checkpoint"
    print(
        f"wrote preset {output} ({metadata['class_name']}, {metadata['parameter_count']:,} "
        f"parameters, from {source})"
    )
    return 0
