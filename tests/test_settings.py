"""Typed settings: --set values and config files are parsed by each field's type and checked before any
data is read; errors are one line naming the key, the expected type and the allowed values."""

from __future__ import annotations

import pytest

from genrec.models import REGISTRY, get_model_class
from genrec.training.settings import SettingError, describe, parse_sets, read_config_file, resolve


def test_values_are_parsed_by_type():
    cfg, train = resolve(
        "sasrec",
        {
            "lr": "1e-3",
            "epochs": "7",
            "loss": "sampled",
            "dropout": "0.25",
            "threads": "1",
            "max_minutes": "2.5",
            "size": "tiny",
        },
    )
    assert (cfg.lr, cfg.epochs, cfg.loss, cfg.dropout, cfg.size) == (1e-3, 7, "sampled", 0.25, "tiny")
    assert (train.threads, train.max_minutes) == (1, 2.5)
    ease, _ = resolve("ease", {"l2_grid": "10,100", "l2": "0"})
    assert ease.l2_grid == [10.0, 100.0] and ease.l2 == 0.0
    assert resolve("ease", {"l2_grid": "[5, 50.5]"})[0].l2_grid == [5.0, 50.5]


@pytest.mark.parametrize(
    "model, key, text, expected",
    [
        ("ease", "l2", "abc", "l2 expects number, got 'abc'"),
        ("sasrec", "lr", "fast", "lr expects number"),
        ("sasrec", "max_minutes", "abc", "max_minutes expects number"),
        ("sasrec", "max_minutes", "inf", "must be finite"),
        ("sasrec", "epochs", "2.5", "epochs expects integer"),
        ("sasrec", "amp", "maybe", "amp expects true/false"),
        ("sasrec", "loss", "bpr", "loss expects one of auto, ce, sampled"),
        ("sasrec", "size", "[1]", "size"),
        ("ease", "l2_grid", "5,x", "l2_grid expects list of number"),
        ("hstu", "side_tokens", "genre", "side_tokens expects one of none, rating"),
        ("sasrec", "device", "tpu", "device expects one of auto, cpu, cuda"),
        ("hstu", "compile", "yes", "compile expects one of auto, on, off"),
    ],
)
def test_wrong_type_or_value_is_one_line_naming_key_type_and_values(model, key, text, expected):
    with pytest.raises(SettingError) as e:
        resolve(model, {key: text})
    msg = str(e.value)
    assert expected in msg and "\n" not in msg, msg


def test_range_checks_name_the_field():
    with pytest.raises(SettingError, match="dropout"):
        resolve("sasrec", {"dropout": "1.5"})
    with pytest.raises(SettingError, match="threads"):
        resolve("pop", {"threads": "-1"})


def test_unknown_key_lists_the_settings():
    with pytest.raises(SettingError, match=r"ease has no setting 'lr'.*l2_grid.*training settings: seed"):
        resolve("ease", {"lr": "1"})


def test_training_settings_work_for_every_model():
    for name in REGISTRY:
        _, train = resolve(name, {"threads": "1", "max_minutes": "1", "seed": "3"})
        assert (train.threads, train.max_minutes, train.seed) == (1, 1.0, 3)


def test_set_syntax():
    assert parse_sets(["a=1", "b = x=y"]) == {"a": "1", "b": " x=y"}
    with pytest.raises(SettingError, match="KEY=VALUE"):
        parse_sets(["novalue"])


@pytest.mark.parametrize(
    "suffix, text",
    [
        (".toml", 'lr = 0.001\nepochs = 3\nloss = "ce"\nthreads = 1\n'),
        (".yaml", "lr: 0.001\nepochs: 3\nloss: ce\nthreads: 1\n"),
    ],
)
def test_config_file_toml_and_yaml(tmp_path, suffix, text):
    f = tmp_path / f"run{suffix}"
    f.write_text(text)
    cfg, train = resolve("sasrec", {"epochs": "5"}, read_config_file(f))
    assert (cfg.lr, cfg.loss, train.threads) == (0.001, "ce", 1)
    assert cfg.epochs == 5  # --set wins over the file


def test_config_file_values_are_type_checked(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('epochs = "many"\n')
    with pytest.raises(SettingError, match="epochs expects integer, got 'many'"):
        resolve("sasrec", None, read_config_file(f))
    f.write_text("epochs = true\n")
    with pytest.raises(SettingError, match="epochs expects integer"):
        resolve("sasrec", None, read_config_file(f))
    f.write_text("epochs = [\n")
    with pytest.raises(SettingError, match="not valid TOML"):
        read_config_file(f)
    f.write_text("[sasrec]\nepochs = 3\n")
    with pytest.raises(SettingError, match="top level"):
        read_config_file(f)


def test_every_default_is_described():
    for name in REGISTRY:
        cls = get_model_class(name).config_cls
        rows = describe(cls)
        assert all(default is not ... for _, _, default in rows)
    rows = {n: (t, d) for n, t, d in describe(get_model_class("ease").config_cls)}
    assert rows["l2_grid"][0] == "list of number" and rows["l2_grid"][1][0] == 10.0
