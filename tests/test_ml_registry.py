"""Model registry: artifacts round-trip, immutability, promotion pointer, data fingerprint."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from ml.forecast.models import ProphetForecaster
from ml.registry import ModelRegistry, new_version
from ml.warehouse import data_fingerprint


def test_sklearn_and_prophet_artifacts_round_trip(tmp_path):
    from prophet.serialize import model_from_json, model_to_json

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    series = pd.Series(
        10 + 3 * np.sin(np.arange(120) * 2 * np.pi / 7) + rng.normal(size=120),
        index=pd.date_range("2024-01-01", periods=120, freq="D"),
    )
    pf = ProphetForecaster(country_holidays=None, uncertainty_samples=50)
    pf.fit_predict(series, 7)

    reg = ModelRegistry(tmp_path / "models")
    version = new_version()
    window = {"from": pd.Timestamp("2024-01-01").date(), "to": pd.Timestamp("2024-04-29").date()}
    reg.save(
        "demo", version, model={"estimator": clf, "channels": ["a"]}, metrics={"roc_auc": 0.9},
        features=["f1", "f2", "f3"], training_window=window, data_fingerprint="abc123",
        files={"prophet/total.json": model_to_json(pf.last_model)},
    )
    mv = reg.get("demo", version)
    assert mv.metrics == {"roc_auc": 0.9}
    assert mv.features == ["f1", "f2", "f3"]
    assert mv.manifest["training_window"] == {"from": "2024-01-01", "to": "2024-04-29"}
    assert mv.manifest["data_fingerprint"] == "abc123"
    assert {"model.joblib", "prophet/total.json"} <= set(mv.manifest["files"])
    loaded = mv.load_joblib()
    np.testing.assert_array_equal(loaded["estimator"].predict_proba(X), clf.predict_proba(X))
    m2 = model_from_json((mv.path / "prophet" / "total.json").read_text())
    future = pd.DataFrame({"ds": pd.date_range("2024-04-30", periods=7, freq="D")})
    np.testing.assert_allclose(m2.predict(future)["yhat"], pf.last_model.predict(future)["yhat"])

    with pytest.raises(FileExistsError):  # versions are immutable
        reg.save("demo", version, metrics={}, features=[], training_window={}, data_fingerprint="x")


def test_promotion_pointer_moves_only_with_a_passed_decision(tmp_path):
    reg = ModelRegistry(tmp_path)
    v1, v2 = "20240101T000000000000Z", "20240102T000000000000Z"
    for v in (v1, v2):
        reg.save("m", v, metrics={}, features=[], training_window={}, data_fingerprint="f")
    assert reg.promoted("m") is None
    reg.promote("m", v1, {"passed": True, "reasons": ["ok"]})
    with pytest.raises(PermissionError):
        reg.promote("m", v2, {"passed": False, "reasons": ["worse"]})
    assert reg.promoted("m").version == v1
    reg.promote("m", v2, {"passed": True, "reasons": ["better"]})
    record = json.loads((tmp_path / "m" / "promoted.json").read_text())
    assert record["version"] == v2 and record["previous_version"] == v1
    assert reg.versions("m") == [v1, v2]
    # Pruning never deletes the promoted version.
    v0 = "20231231T000000000000Z"
    reg.save("m", v0, metrics={}, features=[], training_window={}, data_fingerprint="f")
    assert reg.prune("m", keep=1) == [v0, v1]
    assert reg.versions("m") == [v2]


def test_data_fingerprint_tracks_content():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA s; CREATE TABLE s.t AS SELECT range AS id, range * 2 AS v FROM range(100)")
    a = data_fingerprint(con, ["s.t"])
    assert a == data_fingerprint(con, ["s.t"])
    con.execute("UPDATE s.t SET v = v + 1 WHERE id = 42")
    b = data_fingerprint(con, ["s.t"])
    assert b != a
    con.execute("UPDATE s.t SET v = v - 1 WHERE id = 42")
    assert data_fingerprint(con, ["s.t"]) == a


class _RunsOnUnpickle:
    """A pickle payload that creates `marker` when loaded: proof that a file's code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _registry_with_churn_version(tmp_path):
    reg = ModelRegistry(tmp_path / "artifacts" / "models")
    version = "20240101T000000000000Z"
    reg.save("churn", version, model={"estimator": "ok"}, metrics={}, features=[], training_window={},
             data_fingerprint="f")
    reg.promote("churn", version, {"passed": True, "reasons": ["ok"]})
    return reg, version


def test_a_promoted_pointer_outside_the_registry_is_refused_before_anything_is_loaded(tmp_path):
    from ml.registry import ModelIntegrityError

    reg, _ = _registry_with_churn_version(tmp_path)
    # a complete-looking version planted outside the registry, reached through ../..
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "pickle_code_ran"
    import joblib

    joblib.dump(_RunsOnUnpickle(marker), evil / "model.joblib")
    (evil / "manifest.json").write_text(json.dumps({"name": "churn", "version": "../../../evil"}))
    (evil / "features.json").write_text("[]")
    pointer = reg.root / "churn" / "promoted.json"
    pointer.write_text(json.dumps({"version": "../../../evil"}))
    assert (reg.root / "churn" / "../../../evil" / "manifest.json").exists()
    with pytest.raises(ModelIntegrityError, match="invalid model version '../../../evil'"):
        reg.promoted("churn").load_joblib()
    assert not marker.exists()
    for bad in ("..", ".hidden", "a/b", "a\\b", "v1\n", "", None):
        with pytest.raises(ModelIntegrityError):
            reg.get("churn", bad)


def test_a_model_file_changed_after_registration_is_not_unpickled(tmp_path):
    from ml.registry import ModelIntegrityError

    reg, version = _registry_with_churn_version(tmp_path)
    mv = reg.promoted("churn")
    assert mv.load_joblib() == {"estimator": "ok"}
    assert len(mv.manifest["sha256"]["model.joblib"]) == 64
    marker = tmp_path / "pickle_code_ran"
    import joblib

    joblib.dump(_RunsOnUnpickle(marker), mv.path / "model.joblib")
    with pytest.raises(ModelIntegrityError, match="model.joblib has SHA-256 .* the file changed after registration"):
        reg.promoted("churn").load_joblib()
    assert not marker.exists()
    # a manifest without a checksum (written by hand, or before checksums existed) is refused too
    manifest = json.loads((mv.path / "manifest.json").read_text())
    del manifest["sha256"]
    (mv.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="no SHA-256 recorded"):
        reg.get("churn", version).load_joblib()
    assert not marker.exists()
