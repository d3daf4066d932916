"""The shared chapter protocol (`experiments/base.py`): stacked rows, rows I/O and the one checkpoint format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icl_geometry.experiments import base


def test_stacked_parts_read_back_with_their_own_columns_and_types(tmp_path):
    fits = pd.DataFrame({"seed": [0, 1], "mse": [0.5, 0.25], "kept": [True, False]})
    checks = pd.DataFrame({"name": ["a"], "z": [1.5]})
    rows = base.stack(fits=fits, checks=checks)
    assert list(rows.columns)[0] == base.PART and len(rows) == 3
    path = base.save_rows(rows, tmp_path / "05.json")
    assert path.name == "05_rows.csv.gz"
    again = base.load_rows(tmp_path / "05.json")
    for table in (rows, again):
        got = base.part(table, "fits")
        assert list(got.columns) == ["seed", "mse", "kept"] and got.kept.dtype == bool
        np.testing.assert_array_equal(got.mse.to_numpy(), [0.5, 0.25])
        assert list(base.part(table, "checks").columns) == ["name", "z"]
    with pytest.raises(ValueError, match="no part 'other'"):
        base.part(rows, "other")


def test_floats_survive_the_rows_file_to_the_last_digit(tmp_path):
    x = np.random.default_rng(0).normal(size=200) * 10.0 ** np.arange(-100, 100)
    base.save_rows(pd.DataFrame({"x": x}), tmp_path / "r.json")
    np.testing.assert_array_equal(base.load_rows(tmp_path / "r_rows.csv.gz").x.to_numpy(), x)


def test_settings_from_a_config_or_a_json_dict():
    class Config:
        def as_dict(self):
            return {"seed": 1}

    assert base.settings(Config()) == {"seed": 1} and base.settings({"seed": 2}) == {"seed": 2}
    with pytest.raises(TypeError, match="config"):
        base.settings(3)


def test_checkpoint_round_trip_is_atomic_and_keyed(tmp_path):
    path = tmp_path / "ck.pkl"
    key = base.checkpoint_key(model="m", shots=[1, 2])
    assert key == base.checkpoint_key(shots=[1, 2], model="m") != base.checkpoint_key(model="m", shots=[1])
    base.Checkpoint(path, key).save({"done": 3, "parts": [1, 2]})
    assert base.Checkpoint(path, key).load()["done"] == 3
    assert base.Checkpoint(path, "other settings").load() is None  # other settings start afresh
    assert base.Checkpoint(None, key).load() is None and not (tmp_path / "ck.pkl.tmp").exists()
