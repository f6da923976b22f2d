from __future__ import annotations

import copy

import pytest

from svg_quality.config import flatten, load_params, parse_params
from tests.conftest import REPO_ROOT


def test_repo_params_load():
    p = load_params(REPO_ROOT / "params.yaml")
    assert p.data.sources == ("synthetic", "artwork")
    assert p.data.per_type >= 100  # issue 3: at least 100 logos per type by default
    assert len(p.vtracer.ranges) == 8


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("train", "lrr", 0.1, "train.lrr"),  # unknown key
        ("train", "lr", -1.0, "train.lr"),  # out of range
        ("train", "optimizer", "lion", "train.optimizer"),  # not a choice
        ("train", "epochs", "ten", "train.epochs"),  # wrong type
        ("data", "image_size", 8, "data.image_size"),
        ("split", "test", 0.7, "split.test"),
        ("model", "dropout", [0.1], "model.dropout"),  # length must match hidden
        ("features", "weights", "coco", "features.weights"),
        ("model", "resnet_pca", 4096, "model.resnet_pca"),
        ("model", "resnet_pca", -1, "model.resnet_pca"),
        ("model", "resnet_dropout", 1.0, "model.resnet_dropout"),
    ],
)
def test_bad_values_name_the_key(repo_params, section, key, value, needle):
    raw = copy.deepcopy(repo_params)
    raw[section][key] = value
    with pytest.raises(ValueError) as exc:
        parse_params(raw)
    assert needle in str(exc.value)
    assert repr(value) in str(exc.value) or "unknown key" in str(exc.value)


def test_vtracer_range_outside_limits_is_rejected(repo_params):
    raw = copy.deepcopy(repo_params)
    raw["vtracer"]["ranges"]["color_precision"] = [0, 8]  # 0 panics VTracer
    with pytest.raises(ValueError, match="vtracer.ranges.color_precision"):
        parse_params(raw)


def test_unknown_section_is_rejected(repo_params):
    raw = copy.deepcopy(repo_params)
    raw["trian"] = {}
    with pytest.raises(ValueError, match="trian"):
        parse_params(raw)


def test_ints_accepted_for_floats_and_flatten(repo_params):
    raw = copy.deepcopy(repo_params)
    raw["train"]["lr"] = 1  # `dvc exp run -S train.lr=1` gives an int
    p = parse_params(raw)
    assert p.train.lr == 1.0 and isinstance(p.train.lr, float)
    flat = flatten(p.to_dict())
    assert flat["train.lr"] == 1.0
    assert flat["vtracer.ranges.color_precision"] == (1, 8)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "lr", float("nan")),  # NaN passes every range check
        ("train", "weight_decay", float("inf")),
        ("split", "val", float("nan")),
        ("validate", "cv_val_share", float("-inf")),
    ],
)
def test_non_finite_floats_are_refused(repo_params, section, key, value):
    raw = copy.deepcopy(repo_params)
    raw[section][key] = value
    with pytest.raises(ValueError, match=rf"{section}\.{key} = .* allowed: a finite number"):
        parse_params(raw)


def test_yaml_syntax_error_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "params.yaml"
    text = (REPO_ROOT / "params.yaml").read_text()
    path.write_text(text.replace("train:\n", "train:\n  lr: [0.1\n", 1))
    with pytest.raises(ValueError) as exc:
        load_params(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: not valid YAML: line ") and "fix the syntax" in message
    assert "\n" not in message


def test_duplicate_key_is_refused_naming_it(tmp_path):
    path = tmp_path / "params.yaml"
    text = (REPO_ROOT / "params.yaml").read_text()
    path.write_text(text.replace("train:\n", "train:\n  lr: 0.5\n", 1))
    with pytest.raises(ValueError, match=r"key 'lr' is given twice \(first on line \d+\)"):
        load_params(path)
    # The same key in different sections is fine: the real file loads.
    assert load_params(REPO_ROOT / "params.yaml").train.lr > 0
