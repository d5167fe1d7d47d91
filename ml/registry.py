"""A file-system model registry under ``<data dir>/artifacts/models``.

Layout::

    models/<name>/<version>/manifest.json   # training window, data fingerprint, versions
    models/<name>/<version>/metrics.json
    models/<name>/<version>/features.json
    models/<name>/<version>/<model files>   # joblib for sklearn, model_to_json for Prophet
    models/<name>/<version>/plots/*.png
    models/<name>/promoted.json             # the version in use; moved only by a gate

Versions are UTC timestamps (sortable, unique per run). Nothing here decides *whether*
to promote: callers pass a passed gate decision, so the pointer cannot move by accident.
"""
from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib


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

    def load_joblib(self, file: str = "model.joblib") -> Any:
        return joblib.load(self.path / file)


class ModelRegistry:
    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def in_artifacts(cls, artifacts_dir: Path) -> "ModelRegistry":
        """The registry of a data directory's artifacts: ``<artifacts dir>/models``."""
        return cls(Path(artifacts_dir) / "models")

    def _dir(self, name: str, version: str) -> Path:
        return self.root / name / version

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
        manifest = {
            "name": name,
            "version": version,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "training_window": training_window,
            "data_fingerprint": data_fingerprint,
            "python": platform.python_version(),
            "files": sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()),
            **(extra or {}),
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
        return ModelVersion(name, version, path, json.loads(manifest_file.read_text()))

    def versions(self, name: str) -> list[str]:
        base = self.root / name
        if not base.exists():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "manifest.json").exists())

    def promoted(self, name: str) -> ModelVersion | None:
        pointer = self.root / name / "promoted.json"
        if not pointer.exists():
            return None
        return self.get(name, json.loads(pointer.read_text())["version"])

    def promoted_record(self, name: str) -> dict[str, Any] | None:
        pointer = self.root / name / "promoted.json"
        return json.loads(pointer.read_text()) if pointer.exists() else None

    def promote(self, name: str, version: str, decision: dict[str, Any]) -> None:
        """Move the pointer. ``decision`` is the gate's verdict and must say passed=True."""
        if not decision.get("passed"):
            raise PermissionError(f"refusing to promote {name}/{version}: gate did not pass")
        self.get(name, version)  # must exist
        previous = self.promoted_record(name)
        write_json(
            self.root / name / "promoted.json",
            {
                "version": version,
                "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "decision": decision,
                "previous_version": previous["version"] if previous else None,
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
