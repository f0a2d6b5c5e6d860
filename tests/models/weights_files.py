"""Reads Keras `.weights.h5` files whole, to compare two training runs array by array."""

import h5py


def stored_arrays(path):
    """`{path inside the file: array}` for every array, optimizer state included."""
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(
            lambda name, item: arrays.update({name: item[()]})
            if isinstance(item, h5py.Dataset) else None
        )
    return arrays
