"""Looking into an exported SavedModel: `saved_model_cli`, and what in its signature graphs
needs XLA (read from saved_model.pb, no loading)."""

import os
import pathlib
import re
import shutil
import subprocess
import sys

from tensorflow.core.protobuf import saved_model_pb2

_CALL_OPS = ("StatefulPartitionedCall", "PartitionedCall")


def _meta_graph(saved_model_dir):
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((pathlib.Path(saved_model_dir) / "saved_model.pb").read_bytes())
    return saved_model.meta_graphs[0]


def signature_specs(saved_model_dir):
    """`{signature: {"inputs"|"outputs": {name: (dtype name, shape tuple)}}}`, -1 for None."""
    from tensorflow.core.framework import types_pb2

    def specs(entries):
        return {
            name: (
                types_pb2.DataType.Name(info.dtype),
                tuple(dim.size for dim in info.tensor_shape.dim),
            )
            for name, info in entries.items()
        }

    return {
        name: {"inputs": specs(signature.inputs), "outputs": specs(signature.outputs)}
        for name, signature in _meta_graph(saved_model_dir).signature_def.items()
        if not name.startswith("__")
    }


def xla_requirements(saved_model_dir):
    """`{signature name: sorted reasons}`; an empty list means the signature runs without XLA.

    Reasons are XLA-only ops (`Xla*`, e.g. XlaDynamicUpdateSlice) and functions or calls marked
    `_XlaMustCompile` (tf.function(jit_compile=True)) reachable from the signature.
    """
    meta_graph = _meta_graph(saved_model_dir)
    library = {
        function.signature.name: function for function in meta_graph.graph_def.library.function
    }
    nodes = {node.name: node for node in meta_graph.graph_def.node}

    def functions_called(node):
        names = [node.op] if node.op in library else []
        for value in node.attr.values():
            if value.HasField("func"):
                names.append(value.func.name)
            names.extend(function.name for function in value.list.func)
        return [name for name in names if name in library]

    def reasons_in(function_names):
        reasons, seen, pending = set(), set(), list(function_names)
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            function = library[name]
            if _must_compile(function.attr):
                reasons.add(f"jit-compiled function {name}")
            for node in function.node_def:
                if node.op.startswith("Xla"):
                    reasons.add(f"op {node.op}")
                if _must_compile(node.attr):
                    reasons.add(f"jit-compiled call in {name}")
                pending.extend(functions_called(node))
        return sorted(reasons)

    result = {}
    for signature_name, signature in meta_graph.signature_def.items():
        if signature_name.startswith("__"):
            continue
        roots = []
        for output in signature.outputs.values():
            node = nodes[output.name.split(":")[0]]
            if node.op in _CALL_OPS:
                roots.extend(functions_called(node))
        result[signature_name] = reasons_in(roots)
    return result


def _must_compile(attributes):
    return "_XlaMustCompile" in attributes and attributes["_XlaMustCompile"].b


def saved_model_cli(*args):
    executable = shutil.which("saved_model_cli")
    command = [executable] if executable else [
        sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"
    ]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(command + list(args), capture_output=True, text=True, env=environment)


def parse_show_all(text):
    """`{signature: {"inputs"|"outputs": {name: (dtype, shape)}}}` from `show --all`."""
    parsed = {}
    for block in text.split("signature_def['")[1:]:
        name = block.split("'")[0]
        entries = re.findall(
            r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", block
        )
        parsed[name] = {"inputs": {}, "outputs": {}}
        for kind, entry, dtype, shape in entries:
            parsed[name][kind][entry] = (dtype, shape)
    return parsed
