"""The versions of one model that the server holds, kept in step with the Pusher's serving directory.

Which versions are on disk is ``serving.versions``' rule (a version counts once its ``saved_model.pb`` exists, the
file the Pusher writes last). A poller thread
loads a new version completely (SavedModel restore plus one warm-up call, so its first request is not slow) while
requests keep using the versions already loaded; only then is the set of versions replaced, by one reference
assignment. A request takes the current set once and keeps it to the end, so a switch never fails a request.

Without a canary the newest loadable version serves everything (TF Serving's "latest" policy); with a canary
share the two newest are held and the newest gets that share of the requests that name no version. Versions that
a label is pinned to (``--label stable=3``, TF Serving's ``version_labels``) are held too, for the requests that
name the label or the version.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis.get_model_metadata_pb2 import SignatureDefMap

from serving.formats import DEFAULT_SIGNATURE, RequestError, Signature
from serving.versions import SAVED_MODEL_FILE, complete_versions

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadedVersion:
    version: int
    signatures: Mapping[str, Signature]
    saved_model: Any  # holds the restored variables and functions for as long as a request may use them
    signature_defs: SignatureDefMap  # as saved: what GetModelMetadata answers, over REST and gRPC alike


@dataclasses.dataclass(frozen=True)
class Failure:
    """A version that did not load, and the stamp of its files then (retried when any file changes)."""

    stamp: tuple[tuple[str, int, int], ...]
    message: str


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The loaded versions at one moment; never changed in place, only replaced as a whole."""

    versions: Mapping[int, LoadedVersion]
    failures: Mapping[int, Failure]

    @property
    def newest_first(self) -> list[int]:
        return sorted(self.versions, reverse=True)


def load_version(path: Path) -> LoadedVersion:
    """Restores one SavedModel and runs its default signature once on a dummy row.

    The warm-up matters: the first call of a restored function pays for graph optimisation (hundreds of ms),
    which would otherwise land on the first live request after a switch.
    """
    saved_model = tf.saved_model.load(str(path))
    signatures = {name: Signature.from_function(name, fn) for name, fn in saved_model.signatures.items()}
    warm = signatures.get(DEFAULT_SIGNATURE)
    if warm is not None and warm.scalar_inputs:
        dummy = {
            key: tf.constant([b"" if dtype == tf.string else 0], dtype=dtype) for key, dtype in warm.inputs.items()
        }
        try:
            warm.function(**dummy)
        except tf.errors.OpError as error:  # a model that cannot take zeros may still take real rows
            log.warning("warm-up call of %s failed: %s", path, error.message.splitlines()[0])
    return LoadedVersion(
        version=int(path.name), signatures=signatures, saved_model=saved_model, signature_defs=_signature_defs(path)
    )


def _signature_defs(path: Path) -> SignatureDefMap:
    """The SignatureDefs of the SavedModel's (only) MetaGraph, as TF Serving returns them to GetModelMetadata.

    Read from ``saved_model.pb`` rather than rebuilt from the restored functions, so tensor names, shapes and
    ``__saved_model_init_op`` are exactly what TF Serving would report for the same directory.
    """
    saved = saved_model_pb2.SavedModel.FromString((path / SAVED_MODEL_FILE).read_bytes())
    defs = SignatureDefMap()
    for name, signature_def in saved.meta_graphs[0].signature_def.items():
        defs.signature_def[name].CopyFrom(signature_def)
    return defs


class ModelRepository:
    """The servable versions of one model: what is on disk, what is loaded, and which version a request gets."""

    def __init__(
        self,
        base_dir: str | Path,
        name: str,
        *,
        poll_seconds: float,
        canary: float,
        pinned_labels: Mapping[str, int] | None = None,
    ):
        """Nothing is loaded until ``refresh()``; ``ServerSettings`` checks ``poll_seconds`` and ``canary``.

        Args:
            base_dir: the model's serving directory, holding a folder per version (``<serving dir>/<model>``).
            name: the model's name in request paths.
            poll_seconds: how often ``start_polling`` looks for new versions; 0: never.
            canary: the newest version's share of the requests that name no version (0: off; below 1).
            pinned_labels: labels set by hand to a version each (TF Serving's ``version_labels``); such a version
                is kept loaded while it is on disk, and the label names it instead of the automatic choice.
        """
        self.base_dir = Path(base_dir)
        self.name = name
        self.poll_seconds = poll_seconds
        self.canary = canary
        self.pinned_labels = dict(pinned_labels or {})
        self._snapshot = Snapshot(versions={}, failures={})
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._random = random.Random()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def on_disk(self) -> list[int]:
        """Complete versions in the serving directory, newest first."""
        return complete_versions(self.base_dir)

    def refresh(self) -> Snapshot:
        """Loads what is new on disk, drops what is gone or superseded, and swaps the snapshot in one step."""
        with self._refresh_lock:
            current = self._snapshot
            keep = 2 if self.canary > 0 else 1
            versions: dict[int, LoadedVersion] = {}
            failures = dict(current.failures)
            present = self.on_disk()
            pinned = set(self.pinned_labels.values())
            for version in present:
                if len(versions) >= keep and version not in pinned:
                    continue  # older than what serves unnamed requests and named by no label
                if version in current.versions:
                    versions[version] = current.versions[version]
                    continue
                path = self.base_dir / str(version)
                stamp = _stamp(path)
                if version in failures and failures[version].stamp == stamp:
                    continue  # still the same broken files; try the next older version
                try:
                    versions[version] = load_version(path)
                    failures.pop(version, None)
                    log.info("loaded %s version %d from %s", self.name, version, path)
                except Exception as error:  # noqa: BLE001 - any unloadable version must leave serving intact
                    failures[version] = Failure(stamp, f"{type(error).__name__}: {error}".splitlines()[0])
                    log.error("could not load %s version %d: %s", self.name, version, failures[version].message)
            failures = {version: f for version, f in failures.items() if version in present}
            if versions.keys() != current.versions.keys() or failures != current.failures:
                self._snapshot = Snapshot(versions=versions, failures=failures)
                dropped = sorted(set(current.versions) - set(versions))
                log.info(
                    "serving %s versions %s%s", self.name, sorted(versions), f" (unloaded {dropped})" * bool(dropped)
                )
            return self._snapshot

    def start_polling(self) -> None:
        """Refreshes every ``poll_seconds`` in a daemon thread until ``stop()``."""
        if self._thread is not None or self.poll_seconds <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name=f"poll-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # e.g. the directory vanished for a moment; try again next time
                log.exception("polling %s failed", self.base_dir)

    def choose(self, name: str, version: int | None = None) -> LoadedVersion:
        """The version a request gets: the one it names, else the newest, or the previous one outside the canary.

        Args:
            name: the model the request names; another than this repository's is a 404.
            version: the version it names, if any; one that is not loaded is a 404.

        Returns:
            The loaded version; the request keeps it to the end, whatever a refresh swaps in meanwhile.
        """
        if name != self.name:
            raise RequestError(f"Servable not found for request: {_describe(name, version)}", status=404)
        snapshot = self._snapshot
        if version is not None:
            loaded = snapshot.versions.get(version)
            if loaded is None:
                available = ", ".join(map(str, snapshot.newest_first)) or "none"
                raise RequestError(
                    f"Servable not found for request: {_describe(name, version)} (loaded versions: {available})",
                    status=404,
                )
            return loaded
        order = self._serving(snapshot)
        if not order:
            raise RequestError(f"Servable not found for request: {_describe(name, None)} (no version loaded)", 404)
        if len(order) > 1 and self._random.random() >= self.canary:
            return snapshot.versions[order[1]]
        return snapshot.versions[order[0]]

    def newest(self) -> int | None:
        """The newest loaded version, which metadata requests that name no version describe (TF Serving's rule)."""
        order = self._snapshot.newest_first
        return order[0] if order else None

    def _serving(self, snapshot: Snapshot) -> list[int]:
        """The versions that answer requests naming no version, newest first: the newest, and the previous one
        under a canary; a version loaded only because a label is pinned to it is not among them."""
        order = snapshot.newest_first
        return order[: 2 if self.canary > 0 else 1]

    def labels(self) -> dict[str, int]:
        """TF Serving's version labels: the pinned ones whose version is loaded, else kept as the versions move:
        ``stable`` is the version that answers most of the requests that name no version, ``canary`` the newest
        while a canary share is set and two are loaded."""
        snapshot = self._snapshot
        order = self._serving(snapshot)
        labels: dict[str, int] = {}
        if self.canary > 0 and len(order) > 1:
            labels = {"stable": order[0] if self.canary >= 0.5 else order[1], "canary": order[0]}
        elif order:
            labels = {"stable": order[0]}
        # A label pinned to a version that is not loaded names nothing (TF Serving refuses such a label too).
        pinned = {label: v for label, v in self.pinned_labels.items() if v in snapshot.versions}
        return {label: v for label, v in labels.items() if label not in self.pinned_labels} | pinned

    def labelled(self, name: str, label: str) -> int:
        """The version a label names (``/v1/models/<name>/labels/<label>``); a 400 for a label not assigned now."""
        if name != self.name:
            raise RequestError(f"Servable not found for request: {_describe(name, None)}", status=404)
        labels = self.labels()
        if label not in labels:
            assigned = ", ".join(f"{key}={value}" for key, value in labels.items()) or "none"
            raise RequestError(f"Unrecognized servable version label: {label} (labels now: {assigned})")
        return labels[label]

    def status(self, name: str, version: int | None = None) -> dict[str, Any]:
        """TF Serving's GetModelStatus answer: loaded versions AVAILABLE, versions that failed to load END.

        Args:
            name: the model the request names; another than this repository's is a 404.
            version: only this version's entry (a 404 if it has none); all of them when None.

        Returns:
            ``{"model_version_status": [...]}``, newest first.
        """
        if name != self.name:
            raise RequestError(f"Could not find any versions of model {name}", status=404)
        snapshot = self._snapshot
        entries = [
            {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for v in snapshot.newest_first
        ]
        entries += [
            {"version": str(v), "state": "END", "status": {"error_code": "UNKNOWN", "error_message": failure.message}}
            for v, failure in sorted(snapshot.failures.items(), reverse=True)
        ]
        if version is not None:
            entries = [entry for entry in entries if entry["version"] == str(version)]
        if not entries:
            target = f"version {version} of model {name}" if version is not None else f"any versions of model {name}"
            raise RequestError(f"Could not find {target}", status=404)
        return {"model_version_status": entries}


def _stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime) of every file of a version: a copy still under way changes it.

    ``saved_model.pb`` alone is not enough: a version copied in two steps (the file first, ``variables/`` later,
    as ``gsutil cp`` or a hand copy may do) fails to load the first time and must load once the rest arrives,
    as TF Serving retries a failed load.
    """
    files = []
    for file in sorted(path.rglob("*")):
        try:
            info = file.stat()
        except OSError:  # removed while we looked: the next poll sees the rest
            continue
        if stat.S_ISREG(info.st_mode):
            files.append((str(file.relative_to(path)), info.st_size, info.st_mtime_ns))
    return tuple(files)


def _describe(name: str, version: int | None) -> str:
    return f"Specific({name}, {version})" if version is not None else f"Latest({name})"
