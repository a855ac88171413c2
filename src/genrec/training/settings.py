"""Typed settings: `--set KEY=VALUE`, `--config FILE` (TOML or YAML) and the defaults, resolved into a
model config and a TrainConfig and checked before any data is read.

One namespace: a key is a field of the model's config dataclass or of TrainConfig. Values are parsed by
the field's annotated type (int, float, bool, str, Literal[...], list[...], X | None); a wrong type or
value raises SettingError with one line naming the key, the expected type and the allowed values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from genrec.models import get_model_class
from genrec.models.base import ModelConfig
from genrec.training.config import TrainConfig


class SettingError(ValueError):
    """A setting that cannot be used; the message is one line meant for a person."""


@dataclasses.dataclass
class Setting:
    name: str
    type: Any  # the annotation, resolved
    default: Any
    owner: type  # the dataclass that holds it


def settings_of(cls: type) -> dict[str, Setting]:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out[f.name] = Setting(f.name, hints[f.name], default, cls)
    return out


def type_label(t: Any) -> str:
    """'int', 'float', 'one of auto, ce, sampled', 'list of float', 'float or none', ..."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        return f"list of {type_label(args[0])}"
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " or ".join(type_label(a) for a in rest) + (" or none" if len(rest) < len(args) else "")
    names = {int: "integer", float: "number", bool: "true/false", str: "text"}
    return names.get(t, getattr(t, "__name__", str(t)))


def coerce(key: str, value: Any, t: Any, from_text: bool) -> Any:
    """`value` (a --set string when from_text, else a TOML/YAML value) as type `t`, or SettingError."""
    origin, args = typing.get_origin(t), typing.get_args(t)

    def bad(why: str = "") -> SettingError:
        got = repr(value) if not from_text else repr(str(value))
        return SettingError(f"{key} expects {type_label(t)}, got {got}{why}")

    if origin in (typing.Union, types.UnionType):
        if value is None or (from_text and str(value).strip().lower() in ("none", "null")):
            if type(None) in args:
                return None
            raise bad()
        for a in (a for a in args if a is not type(None)):
            try:
                return coerce(key, value, a, from_text)
            except SettingError:
                continue
        raise bad()
    if origin is Literal:
        v = str(value).strip() if from_text else value
        if v not in args:
            raise bad()
        return v
    if origin is list:
        items = value
        if from_text:
            text = str(value).strip()
            try:
                items = (
                    json.loads(text) if text.startswith("[") else [x for x in text.split(",") if x.strip()]
                )
            except json.JSONDecodeError:
                raise bad() from None
            if not isinstance(items, list):
                raise bad()
            items = [x if isinstance(x, str) else json.dumps(x) for x in items]
        if not isinstance(items, list):
            raise bad()
        out = []
        for x in items:
            try:
                out.append(coerce(key, x, args[0], from_text))
            except SettingError:
                raise bad(f" ({x!r} is not a {type_label(args[0])})") from None
        return out
    if t is bool:
        if from_text:
            s = str(value).strip().lower()
            if s in ("true", "yes", "on", "1"):
                return True
            if s in ("false", "no", "off", "0"):
                return False
            raise bad()
        if isinstance(value, bool):
            return value
        raise bad()
    if t is int:
        if isinstance(value, bool):
            raise bad()
        if from_text:
            try:
                return int(str(value).strip())
            except ValueError:
                raise bad() from None
        if isinstance(value, int):
            return value
        raise bad()
    if t is float:
        if isinstance(value, bool):
            raise bad()
        try:
            v = float(str(value).strip()) if from_text else value
        except ValueError:
            raise bad() from None
        if not isinstance(v, (int, float)):
            raise bad()
        if not math.isfinite(v):
            raise bad(" (must be finite)")
        return float(v)
    if t is str:
        if from_text or isinstance(value, str):
            return str(value).strip() if from_text else value
        raise bad()
    raise SettingError(f"{key}: settings of type {t!r} cannot be set")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A flat mapping of settings (RecBole style) from TOML (.toml) or YAML (.yaml/.yml)."""
    path = Path(path)
    if not path.is_file():
        raise SettingError(f"--config {path}: no such file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise SettingError(f"--config {path}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, ValueError) as e:
        if isinstance(e, SettingError):
            raise
        kind = path.suffix[1:].upper()
        raise SettingError(f"--config {path}: not valid {kind}: {e}".splitlines()[0]) from None
    except Exception as e:  # yaml.YAMLError: report it the same way
        raise SettingError(f"--config {path}: not valid YAML: {e}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise SettingError(f"--config {path}: expected a mapping of settings (key = value)")
    for k, v in data.items():
        if isinstance(v, dict):
            raise SettingError(
                f"--config {path}: {k}: nested tables are not settings; write every key at top level"
            )
    return data


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """`--set KEY=VALUE` strings -> {key: text}."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise SettingError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def resolve(
    model: str,
    sets: dict[str, str] | None = None,
    file_values: dict[str, Any] | None = None,
    train_defaults: TrainConfig | None = None,
) -> tuple[ModelConfig, TrainConfig]:
    """The model config and training config from defaults < config file < --set, validated."""
    try:
        cls = get_model_class(model)
    except KeyError as e:
        raise SettingError(str(e.args[0])) from None
    model_fields, train_fields = settings_of(cls.config_cls), settings_of(TrainConfig)
    values: dict[str, Any] = {}
    for source, items, from_text in (("--config", file_values or {}, False), ("--set", sets or {}, True)):
        for key, raw in items.items():
            s = model_fields.get(key) or train_fields.get(key)
            if s is None:
                raise SettingError(
                    f"{source}: {model} has no setting {key!r}; model settings: {', '.join(model_fields)}; "
                    f"training settings: {', '.join(train_fields)}"
                )
            values[key] = coerce(key, raw, s.type, from_text)
    model_values = {k: v for k, v in values.items() if k in model_fields}
    train_values = {k: v for k, v in values.items() if k in train_fields}
    try:
        config = cls.config_cls(**model_values)
        config.validate()
        train = dataclasses.replace(train_defaults or TrainConfig(), **train_values)
        train.validate()
    except ValueError as e:
        raise SettingError(str(e)) from None
    return config, train


def describe(cls: type) -> list[tuple[str, str, Any]]:
    """(name, type label, default) of every setting of a config dataclass, for `genrec models`."""
    return [(s.name, type_label(s.type), s.default) for s in settings_of(cls).values()]
