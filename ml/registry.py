"""A file-system model registry under ``<data dir>/artifacts/models``.

Layout::

    models/<name>/<version>/manifest.json   # training window, data fingerprint, versions
    models/<name>/<version>/metrics.json
    models/<name>/<version>/features.json
    models/<name>/<version>/<model files>   # joblib for sklearn, model_to_json for Prophet
    models/<name>/<version>/plots/*.png
    models/<name>/promoted.json             # the version (and model kind) in use; moved only by a gate

Versions are UTC timestamps (sortable, unique per run). Nothing here decides *whether*
to promote: callers pass a passed gate decision, so the pointer cannot move by accident.

Nothing read back is trusted blindly: model and version names must match ``NAME_PATTERN``
and resolve inside the registry (a ``promoted.json`` saying ``../..`` is refused), and a
joblib file is unpickled only when its SHA-256 equals the one recorded in the manifest at
save time. Either failure raises :class:`ModelIntegrityError`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib


# Model and version names: one path segment, no separators, not starting with a dot.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ModelIntegrityError(RuntimeError):
    """A registry entry that must not be used: a bad name, a path outside the registry, or a
    model file whose checksum differs from the one recorded when it was saved."""


def check_name(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value) or ".." in value:
        raise ModelIntegrityError(f"invalid model {kind} {value!r}: must match {NAME_PATTERN.pattern} without '..'")
    return value


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_version(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ")


def _json_default(o: Any) -> Any:
    if isinstance(o, (dt.date, dt.datetime)):
        return o.isoformat()
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))
    tmp.replace(path)  # atomic: a reader never sees half a pointer


@dataclass
class ModelVersion:
    name: str
    version: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    def read_json(self, file: str) -> Any:
        return json.loads((self.path / file).read_text())

    @property
    def metrics(self) -> dict[str, Any]:
        return self.read_json("metrics.json")

    @property
    def features(self) -> list[str] | dict[str, Any]:
        return self.read_json("features.json")

    def verified_file(self, file: str) -> Path:
        """`file` of this version after checking its SHA-256 against the manifest."""
        target = (self.path / file).resolve()
        if not target.is_relative_to(self.path.resolve()):
            raise ModelIntegrityError(f"{self.name}/{self.version}: {file!r} is outside the version directory")
        expected = (self.manifest.get("sha256") or {}).get(file)
        if not expected:
            raise ModelIntegrityError(
                f"{self.name}/{self.version}: no SHA-256 recorded for {file} in manifest.json; "
                "refusing to load it (retrain to register a verifiable version)")
        actual = sha256_file(target)
        if actual != expected:
            raise ModelIntegrityError(
                f"{self.name}/{self.version}: {file} has SHA-256 {actual}, manifest records {expected}; "
                "the file changed after registration, refusing to load it")
        return target

    def load_joblib(self, file: str = "model.joblib") -> Any:
        # unpickling runs code: only a file whose checksum matches the manifest is loaded
        return joblib.load(self.verified_file(file))


class ModelRegistry:
    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def in_artifacts(cls, artifacts_dir: Path) -> "ModelRegistry":
        """The registry of a data directory's artifacts: ``<artifacts dir>/models``."""
        return cls(Path(artifacts_dir) / "models")

    def _dir(self, name: str, version: str) -> Path:
        path = self.root / check_name("name", name) / check_name("version", version)
        if not path.resolve().is_relative_to(self.root.resolve()):  # e.g. a symlinked version dir
            raise ModelIntegrityError(f"model {name}/{version} resolves outside the registry {self.root}")
        return path

    def save(
        self,
        name: str,
        version: str,
        *,
        metrics: dict[str, Any],
        features: list[str] | dict[str, Any],
        training_window: dict[str, Any],
        data_fingerprint: str,
        model: Any = None,
        files: dict[str, str | bytes] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Write one version. ``model`` is pickled with joblib; ``files`` are written as given."""
        path = self._dir(name, version)
        if path.exists():
            raise FileExistsError(f"{name}/{version} already exists; versions are immutable")
        path.mkdir(parents=True)
        if model is not None:
            joblib.dump(model, path / "model.joblib")
        for fname, content in (files or {}).items():
            target = path / fname
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        files_written = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        manifest = {
            "name": name,
            "version": version,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "training_window": training_window,
            "data_fingerprint": data_fingerprint,
            "python": platform.python_version(),
            "files": files_written,
            **(extra or {}),
            "sha256": {f: sha256_file(path / f) for f in files_written},
        }
        write_json(path / "metrics.json", metrics)
        write_json(path / "features.json", features)
        write_json(path / "manifest.json", manifest)
        return ModelVersion(name, version, path, manifest)

    def get(self, name: str, version: str) -> ModelVersion:
        path = self._dir(name, version)
        manifest_file = path / "manifest.json"
        if not manifest_file.exists():
            raise FileNotFoundError(f"no model {name}/{version} under {self.root}")
        manifest = json.loads(manifest_file.read_text())
        if (manifest.get("name"), manifest.get("version")) != (name, version):
            raise ModelIntegrityError(
                f"{path}/manifest.json names {manifest.get('name')}/{manifest.get('version')}, not {name}/{version}")
        return ModelVersion(name, version, path, manifest)

    def versions(self, name: str) -> list[str]:
        base = self.root / name
        if not base.exists():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "manifest.json").exists())

    def promoted(self, name: str) -> ModelVersion | None:
        pointer = self.root / name / "promoted.json"
        if not pointer.exists():
            return None
        version = json.loads(pointer.read_text()).get("version")
        try:
            return self.get(name, version)
        except ModelIntegrityError as exc:
            raise ModelIntegrityError(f"{pointer}: {exc}") from None

    def promoted_record(self, name: str) -> dict[str, Any] | None:
        pointer = self.root / name / "promoted.json"
        return json.loads(pointer.read_text()) if pointer.exists() else None

    def promote(self, name: str, version: str, decision: dict[str, Any], model_kind: str = "candidate") -> None:
        """Move the pointer to ``model_kind`` of ``version``.

        ``decision`` is the gate's verdict: the candidate needs passed=True; another kind (a
        baseline saved in the same version) must be the verdict's named ``champion``.
        """
        allowed = decision.get("passed") if model_kind == "candidate" else decision.get("champion") == model_kind
        if not allowed:
            raise PermissionError(
                f"refusing to promote {name}/{version} ({model_kind}): "
                + ("gate did not pass" if model_kind == "candidate" else "it is not the gate's champion"))
        check_name("kind", model_kind)
        self.get(name, version)  # must exist
        previous = self.promoted_record(name)
        write_json(
            self.root / name / "promoted.json",
            {
                "version": version,
                "model_kind": model_kind,
                "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "decision": decision,
                "previous_version": previous["version"] if previous else None,
                "previous_model_kind": previous.get("model_kind", "candidate") if previous else None,
            },
        )

    def prune(self, name: str, keep: int = 10) -> list[str]:
        """Delete old versions, never the promoted one; returns what was removed."""
        promoted = self.promoted_record(name)
        keep_set = set(self.versions(name)[-keep:]) | ({promoted["version"]} if promoted else set())
        removed = [v for v in self.versions(name) if v not in keep_set]
        for v in removed:
            shutil.rmtree(self._dir(name, v))
        return removed
