"""A SavedModel's signatures as a person reads them: each signature's inputs and outputs with dtype and shape.

Read from ``saved_model.pb`` with the few messages ``runs.tfformats`` declares, not with TensorFlow: parsing the
trained model's file that way takes a few milliseconds, against seconds to import TensorFlow. A Trainer's Model
keeps its SavedModel under ``Format-Serving/``; the Pusher's copy (PushedModel) has it at the top.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runs import tfformats

SAVED_MODEL_FILE = "saved_model.pb"
SERVING_FOLDER = "Format-Serving"
# Signatures TensorFlow adds for its own use (initialising tables), not for callers.
_INTERNAL_PREFIX = "__"


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str  # the input or output key callers use
    dtype: str  # as TensorFlow names it: float32, int64, string, ...
    shape: list[int | None] | None  # None for an unknown rank; a None dimension is any size (the batch)
    encoding: str = "dense"  # dense, sparse or composite (a ragged or sparse tensor's parts)


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    method: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclasses.dataclass(frozen=True)
class SavedModelView:
    path: str  # the SavedModel's folder, relative to the artifact's
    signatures: list[Signature]
    tags: list[str]
    tensorflow_version: str
    bytes: int  # the SavedModel's files in all, variables included

    def signature(self, name: str) -> Signature:
        return next(signature for signature in self.signatures if signature.name == name)


@functools.lru_cache(maxsize=32)
def read_saved_model(artifact_id: int, uri: str) -> SavedModelView:
    """The signatures of the SavedModel in the Model or PushedModel artifact at ``uri`` (cached per artifact).

    FileNotFoundError when the folder holds no SavedModel (a PushedModel of a run that pushed nothing).
    """
    folder = saved_model_folder(Path(uri))
    saved_model = tfformats.message_class("SavedModel").FromString((folder / SAVED_MODEL_FILE).read_bytes())
    if not saved_model.meta_graphs:
        raise ValueError(f"{folder / SAVED_MODEL_FILE} holds no MetaGraph")
    graph = saved_model.meta_graphs[0]  # tf.saved_model.save writes one, tagged "serve"
    signatures = [
        Signature(entry.key, entry.value.method_name, _tensors(entry.value.inputs), _tensors(entry.value.outputs))
        for entry in graph.signature_def
        if not entry.key.startswith(_INTERNAL_PREFIX)
    ]
    return SavedModelView(
        path=str(folder.relative_to(uri)),
        signatures=sorted(signatures, key=lambda signature: signature.name),
        tags=list(graph.meta_info_def.tags),
        tensorflow_version=graph.meta_info_def.tensorflow_version,
        bytes=sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()),
    )


def saved_model_folder(root: Path) -> Path:
    """The folder holding ``saved_model.pb``: the artifact's ``Format-Serving/`` or the artifact's own."""
    for folder in (root / SERVING_FOLDER, root):
        if (folder / SAVED_MODEL_FILE).is_file():
            return folder
    raise FileNotFoundError(f"no {SAVED_MODEL_FILE} in {root} or {root / SERVING_FOLDER}")


def _tensors(entries: Iterable[Any]) -> list[TensorSpec]:
    """A signature's inputs or outputs (map entries of key and TensorInfo), by name."""
    specs = []
    for entry in entries:
        info = entry.value
        dims = [size if size >= 0 else None for size in (dim.size for dim in info.tensor_shape.dim)]
        shape = None if info.tensor_shape.unknown_rank else dims
        encoding = "sparse" if info.coo_sparse else "composite" if info.composite_tensor else "dense"
        specs.append(TensorSpec(entry.key, tfformats.dtype_name(info.dtype), shape, encoding))
    return sorted(specs, key=lambda spec: spec.name)
