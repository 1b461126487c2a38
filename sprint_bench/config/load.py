"""Loading, merging, overriding and validating experiment configs.

Pipeline of :func:`load_config`:

1. read the YAML file; ``base: <path>`` or ``base: [<path>, ...]`` names
   files (relative to the referencing file's directory) that are applied
   first, recursively, in order; cycles and missing files are errors;
2. merge, on top of the schema defaults: dicts merge key by key, every other
   value (lists included) replaces;
3. apply command-line overrides ``a.b.c=value`` in order (value parsed with
   ``yaml.safe_load``; a mapping value merges like a file would);
4. validate the merged tree against :class:`ExperimentConfig` (unknown keys,
   types, ranges, choices), then run its cross-field ``validate()``;
5. a ``distill.student_init`` naming an experiment YAML (relative to the file
   that set it) becomes that experiment's export folder,
   ``<output_dir>/<name>-<hash>/export``, loaded with this config's
   ``output_dir`` (so a first stage's config change is followed, not stale).

For every key the loader remembers which file (or ``"<command line>"``) last
set it, so each error names the key and where it came from.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
import types
import typing
from typing import Any, Iterable, Mapping, Union

import yaml

from .schema import ConfigError, ExperimentConfig

__all__ = ["load_config", "from_dict", "to_dict", "config_hash", "run_name", "ConfigError", "COMMAND_LINE", "DEFAULTS"]

COMMAND_LINE = "<command line>"
DEFAULTS = "<defaults>"
_HASH_EXCLUDED = ("tracking", "output_dir")
# Fields added after runs were recorded, left out of the hash while at their default so those runs keep it.
_HASH_LATE_FIELDS = {"distill": ("d_translate", "ode_weight", "ode_pairs", "ode_steps", "ode_metric",
                                   "student_init", "d_norm_stats", "d_steps", "ode_shift", "ode_shift_window",
                                   "dmd_weight", "dmd_p_mean", "dmd_p_std", "fake_lr", "d_text_proj",
                                   "compile")}
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# --------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys in a mapping (PyYAML keeps the last)."""


def _construct_mapping_no_dupes(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        except TypeError:  # unhashable key: let construct_mapping report it
            pass
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_dupes)


def _read_yaml(path: str, referenced_by: str | None) -> dict:
    if not os.path.isfile(path):
        if referenced_by is None:
            raise ConfigError(f"config file not found: '{path}'", origin=path)
        raise ConfigError(
            f"base file '{path}' not found (referenced by '{referenced_by}')", origin=referenced_by)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse YAML in '{path}': {exc}", origin=path) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{path}': {exc}", origin=path) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"top level of '{path}' must be a mapping, got {type(data).__name__}", origin=path)
    return data


def _layers(path: str, chain: tuple[str, ...], referenced_by: str | None) -> list[tuple[str, dict]]:
    """(file, data-without-base) pairs in application order: bases first, then the file."""
    real = os.path.realpath(path)
    if real in (os.path.realpath(p) for p in chain):
        start = [os.path.realpath(p) for p in chain].index(real)
        cycle = " -> ".join([*chain[start:], path])
        raise ConfigError(f"base cycle detected: {cycle}", origin=path)
    data = _read_yaml(path, referenced_by)
    bases = data.pop("base", None)
    if bases is None:
        bases = []
    elif isinstance(bases, str):
        bases = [bases]
    elif not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
        raise ConfigError(
            f"invalid type for 'base' in {path}: expected a path or a list of paths, got {bases!r}",
            key="base", origin=path)
    out: list[tuple[str, dict]] = []
    here = os.path.dirname(path)
    for base in bases:
        base_path = os.path.normpath(os.path.join(here, os.path.expanduser(base)))
        out.extend(_layers(base_path, (*chain, path), path))
    out.append((path, data))
    return out


# --------------------------------------------------------------------------- merging


def _set_origins(value: Any, key: str, origin: str, origins: dict[str, str]) -> None:
    origins[key] = origin
    if isinstance(value, dict):
        for k, v in value.items():
            _set_origins(v, f"{key}.{k}", origin, origins)


def _drop_descendants(key: str, origins: dict[str, str]) -> None:
    prefix = key + "."
    for k in [k for k in origins if k.startswith(prefix)]:
        del origins[k]


def _merge(dst: dict, src: Mapping, origin: str, origins: dict[str, str], prefix: str = "") -> None:
    """Deep-merge ``src`` into ``dst`` in place, recording the origin of every key set."""
    for k, v in src.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            origins[key] = origin
            _merge(dst[k], v, origin, origins, key + ".")
        else:
            _drop_descendants(key, origins)
            dst[k] = copy.deepcopy(v)
            _set_origins(v, key, origin, origins)


def _apply_override(tree: dict, item: str, origins: dict[str, str]) -> None:
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(
            f"override {item!r} in {COMMAND_LINE} is not of the form key=value (e.g. model.depth=4)",
            origin=COMMAND_LINE)
    key, _, raw = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"override {item!r} in {COMMAND_LINE} has an empty key", origin=COMMAND_LINE)
    try:
        value = yaml.load(raw, Loader=_StrictLoader) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"cannot parse the value of override {item!r} in {COMMAND_LINE}: {exc}",
            key=key, origin=COMMAND_LINE) from exc
    _check_override_key(parts)
    node = tree
    for i, part in enumerate(parts[:-1]):
        sub = node.get(part)
        if sub is None:
            sub = node[part] = {}
        elif not isinstance(sub, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(
                f"cannot set '{key}' from {COMMAND_LINE}: '{where}' is {sub!r}, not a mapping",
                key=key, origin=COMMAND_LINE)
        origins[".".join(parts[: i + 1])] = COMMAND_LINE
        node = sub
    _merge(node, {parts[-1]: value}, COMMAND_LINE, origins, ".".join(parts[:-1]) + "." if parts[:-1] else "")


def _check_override_key(parts: list[str]) -> None:
    """Reject an override whose dotted key does not exist in the schema."""
    key = ".".join(parts)
    ctx = _Ctx({key: COMMAND_LINE})
    if parts[0] == "base":
        raise ConfigError(f"unknown key 'base' in {COMMAND_LINE}: 'base' can only be set in a YAML file",
                          key=key, origin=COMMAND_LINE)
    tp: Any = ExperimentConfig
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i]) + "." if i else ""
        tp = _is_optional(tp)[1]
        if dataclasses.is_dataclass(tp):
            fields = _schema_fields(tp)
            if part not in fields:
                raise _unknown_key_error(key, part, fields, prefix, ctx, rest=".".join(parts[i + 1:]))
            tp = typing.get_type_hints(tp)[part]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            raise ConfigError(
                f"unknown key '{key}' in {COMMAND_LINE}: '{prefix.rstrip('.')}' holds a value of "
                f"type {_type_name(tp)}, not a section", key=key, origin=COMMAND_LINE)


# --------------------------------------------------------------------------- validation


class _Ctx:
    def __init__(self, origins: Mapping[str, str] | None):
        self.origins = dict(origins or {})

    def origin(self, key: str) -> str:
        return self.origins.get(re.sub(r"\[\d+\]", "", key), DEFAULTS)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != len(typing.get_args(tp)) and len(args) == 1:
            return True, args[0]
    return False, tp


def _type_name(tp: Any) -> str:
    optional, inner = _is_optional(tp)
    if optional:
        return f"{_type_name(inner)} or null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    origin = typing.get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", str(tp))
    args = typing.get_args(tp)
    inner_names = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
    return f"{origin.__name__}[{inner_names}]"


def _type_error(key: str, tp: Any, value: Any, ctx: _Ctx, note: str = "") -> ConfigError:
    origin = ctx.origin(key)
    return ConfigError(
        f"invalid type for '{key}' in {origin}: expected {_type_name(tp)}{note}, "
        f"got {_short(value)} ({type(value).__name__})",
        key=key, origin=origin)


def _describe_range(meta: Mapping[str, Any]) -> str:
    if "min" in meta:
        lo = f"[{meta['min']}"
    elif "gt" in meta:
        lo = f"({meta['gt']}"
    else:
        lo = "(-inf"
    if "max" in meta:
        hi = f"{meta['max']}]"
    elif "lt" in meta:
        hi = f"{meta['lt']})"
    else:
        hi = "inf)"
    return f"{lo}, {hi}"


def _check_value(key: str, value: Any, meta: Mapping[str, Any], ctx: _Ctx) -> None:
    if "choices" in meta and value not in meta["choices"]:
        origin = ctx.origin(key)
        raise ConfigError(
            f"invalid value for '{key}' in {origin}: {_short(value)} is not one of {list(meta['choices'])}",
            key=key, origin=origin)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ok = (("min" not in meta or value >= meta["min"]) and ("max" not in meta or value <= meta["max"])
              and ("gt" not in meta or value > meta["gt"]) and ("lt" not in meta or value < meta["lt"]))
        if not ok:
            origin = ctx.origin(key)
            raise ConfigError(
                f"invalid value for '{key}' in {origin}: {value!r} is outside the allowed range "
                f"{_describe_range(meta)}", key=key, origin=origin)


def _check_size(key: str, value: Any, meta: Mapping[str, Any], ctx: _Ctx) -> None:
    n = len(value)
    problem = None
    if "length" in meta and n != meta["length"]:
        problem = f"exactly {meta['length']}"
    elif "min_items" in meta and n < meta["min_items"]:
        problem = f"at least {meta['min_items']}"
    elif "max_items" in meta and n > meta["max_items"]:
        problem = f"at most {meta['max_items']}"
    if problem:
        origin = ctx.origin(key)
        raise ConfigError(
            f"invalid value for '{key}' in {origin}: needs {problem} entries, got {n}: {_short(value)}",
            key=key, origin=origin)


def _convert(value: Any, tp: Any, key: str, meta: Mapping[str, Any], ctx: _Ctx) -> Any:
    optional, tp_inner = _is_optional(tp)
    if optional:
        if value is None:
            return None
        try:
            return _convert(value, tp_inner, key, meta, ctx)
        except ConfigError as exc:
            if value is not None and exc.key == key and exc.message.startswith("invalid type"):
                raise _type_error(key, tp, value, ctx) from None
            raise
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".", ctx)
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            raise _type_error(key, tp, value, ctx)
        (elem,) = typing.get_args(tp)
        _check_size(key, value, meta, ctx)
        return [_convert(v, elem, f"{key}[{i}]", meta, ctx) for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, tp, value, ctx)
        if len(args) == 2 and args[1] is Ellipsis:
            elems = [args[0]] * len(value)
        else:
            elems = list(args)
            if len(value) != len(elems):
                raise _type_error(key, tp, value, ctx, note=f" (a list of {len(elems)} values)")
        _check_size(key, value, meta, ctx)
        return tuple(_convert(v, t, f"{key}[{i}]", meta, ctx) for i, (v, t) in enumerate(zip(value, elems)))
    if origin is dict:
        ktp, vtp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise _type_error(key, tp, value, ctx)
        _check_size(key, value, meta, ctx)
        out = {}
        for k, v in value.items():
            if not isinstance(k, ktp) or isinstance(k, bool):
                sub = f"{key}.{k}"
                where = ctx.origin(sub) if ctx.origin(sub) != DEFAULTS else ctx.origin(key)
                raise ConfigError(
                    f"invalid key {k!r} in '{key}' in {where}: expected {_type_name(ktp)} keys",
                    key=key, origin=where)
            out[k] = _convert(v, vtp, f"{key}.{k}", meta, ctx)
        return out
    # scalars
    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(key, tp, value, ctx)
    elif tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(key, tp, value, ctx)
    elif tp is float:
        if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
            # PyYAML (YAML 1.1) reads `1e-3` as a string; accept plain numeric literals.
            value = float(value)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _type_error(key, tp, value, ctx)
        value = float(value)
        if not math.isfinite(value):
            origin = ctx.origin(key)
            raise ConfigError(f"invalid value for '{key}' in {origin}: {value!r} is not finite",
                              key=key, origin=origin)
    elif tp is str:
        if not isinstance(value, str):
            raise _type_error(key, tp, value, ctx)
    else:  # pragma: no cover - schema uses only the types above
        raise TypeError(f"unsupported schema type {tp!r} for '{key}'")
    _check_value(key, value, meta, ctx)
    return value


def _schema_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for name in _schema_fields(cls):
        out.append(prefix + name)
        if dataclasses.is_dataclass(hints[name]):
            out.extend(_all_keys(hints[name], f"{prefix}{name}."))
    return out


def _unknown_key_error(key: str, name: str, siblings: Iterable[str], prefix: str, ctx: _Ctx,
                       rest: str = "") -> ConfigError:
    """Unknown-key error with a difflib suggestion (sibling keys first, then any schema key)."""
    origin = ctx.origin(key)
    hint = difflib.get_close_matches(name, list(siblings), n=1)
    suggestion = prefix + hint[0] + (f".{rest}" if rest else "") if hint else None
    if suggestion is None:
        everything = _all_keys(ExperimentConfig)
        hint = difflib.get_close_matches(key, everything, n=1, cutoff=0.75)
        if not hint:
            by_leaf: dict[str, str] = {}
            for k in everything:
                by_leaf.setdefault(k.rpartition(".")[2], k)
            leaf = difflib.get_close_matches(name, list(by_leaf), n=1, cutoff=0.75)
            hint = [by_leaf[leaf[0]]] if leaf else []
        suggestion = hint[0] if hint else None
    if suggestion:
        tail = f"; did you mean '{suggestion}'?"
    else:
        tail = f"; valid keys here: {', '.join(prefix + s for s in siblings)}"
    return ConfigError(f"unknown key '{key}' in {origin}{tail}", key=key, origin=origin)


def _build(cls: type, data: Any, prefix: str, ctx: _Ctx) -> Any:
    if not isinstance(data, dict):
        key = prefix.rstrip(".")
        raise _type_error(key, cls, data, ctx, note=f" (section {cls.__name__})")
    fields = _schema_fields(cls)
    for k in data:
        if not isinstance(k, str) or k not in fields:
            raise _unknown_key_error(f"{prefix}{k}", str(k), fields, prefix, ctx)
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(data[name], hints[name], prefix + name, f.metadata, ctx)
              for name, f in fields.items() if name in data}
    return cls(**kwargs)


def _with_origins(exc: ConfigError, ctx: _Ctx) -> ConfigError:
    if not exc.keys or exc.origin is not None:
        return exc
    where = "; ".join(f"{k} from {ctx.origin(k)}" for k in exc.keys)
    origins = sorted({ctx.origin(k) for k in exc.keys})
    return ConfigError(f"{exc.message} ({where})", key=exc.key or exc.keys[0],
                       origin=", ".join(origins), keys=exc.keys)


def from_dict(data: Mapping[str, Any], origins: Mapping[str, str] | None = None,
              source: str = "") -> ExperimentConfig:
    """Validate a plain nested dict (e.g. :func:`to_dict` output) into an ExperimentConfig.

    ``origins`` maps dotted keys to the file that set them (for error messages).
    Runs the per-field checks and then the cross-field ``validate()`` hook.
    """
    ctx = _Ctx(origins)
    cfg = _build(ExperimentConfig, dict(data), "", ctx)
    cfg.source = source
    try:
        cfg.validate()
    except ConfigError as exc:
        raise _with_origins(exc, ctx) from None
    return cfg


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Load, merge, override and validate an experiment config.

    ``path``: YAML file (may use ``base:``). ``overrides``: ``"a.b.c=value"``
    strings applied in order, values parsed as YAML. Raises :class:`ConfigError`
    (naming the key and the file or ``"<command line>"``) on any problem;
    nothing else is done, so callers build models only after this returns.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    return _load(os.fspath(path), list(overrides), ())


def _load(top: str, overrides: list[str], stages: tuple[str, ...]) -> ExperimentConfig:
    # Schema defaults are the bottom layer, so dict-valued fields (family_weights)
    # deep-merge with their defaults like any base file would.
    tree: dict = to_dict(ExperimentConfig())
    origins: dict[str, str] = {}
    for file, data in _layers(top, (), None):
        _merge(tree, data, file, origins)
    for item in overrides:
        _apply_override(tree, item, origins)
    cfg = from_dict(tree, origins, source=top)
    init = cfg.distill.student_init
    if init and init.endswith((".yaml", ".yml")):
        cfg.distill.student_init = _stage_export(init, origins.get("distill.student_init", COMMAND_LINE),
                                                 cfg.output_dir, (*stages, top))
    return cfg


def _stage_export(ref: str, origin: str, output_dir: str, stages: tuple[str, ...]) -> str:
    """The export folder of the experiment YAML ``ref`` (a ``distill.student_init`` set in ``origin``)."""
    here = "" if origin in (COMMAND_LINE, DEFAULTS) else os.path.dirname(origin)
    path = os.path.normpath(os.path.join(here, os.path.expanduser(ref)))
    if os.path.realpath(path) in map(os.path.realpath, stages):
        raise ConfigError(f"distill.student_init cycle: {' -> '.join([*stages, path])}", key="distill.student_init",
                          origin=origin)
    if not os.path.isfile(path):
        raise ConfigError(f"distill.student_init names the experiment {path}, which does not exist",
                          key="distill.student_init", origin=origin)
    first = _load(path, [f"output_dir={json.dumps(output_dir)}"], stages)
    return os.path.join(first.output_dir, run_name(first), "export")


# --------------------------------------------------------------------------- export


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name))
                for f in dataclasses.fields(value) if not f.metadata.get("internal")}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as a plain nested dict (tuples become lists).

    Excludes the loader-set ``source`` field, so the result can be written to
    YAML and loaded again (or passed to :func:`from_dict`).
    """
    return _plain(cfg)


def config_hash(cfg: ExperimentConfig) -> str:
    """First 12 hex chars of the sha256 of the canonical JSON of the config.

    Canonical JSON: :func:`to_dict` with sorted keys and no whitespace. Every
    field counts (``name`` and ``seed`` included) except ``tracking`` and
    ``output_dir``, which do not change results, and ``source``, which
    records only where the config was read from. A ``distill`` or ``control``
    section equal to its defaults is left out too (configs written before them keep
    their hash), and so is a field of ``_HASH_LATE_FIELDS`` at its default. Stable across processes, Python hash
    seeds and YAML key order; ints given for float fields are stored as floats, so ``lr: 1`` and ``lr: 1.0`` hash
    alike.
    """
    data = to_dict(cfg)
    for k in _HASH_EXCLUDED:
        data.pop(k, None)
    defaults = to_dict(ExperimentConfig())
    for section, names in _HASH_LATE_FIELDS.items():
        for name in names:
            if data[section][name] == defaults[section][name]:
                del data[section][name], defaults[section][name]
    for section in ("distill", "control"):  # a default section leaves the hash of configs written before it unchanged
        if data.get(section) == defaults.get(section):
            data.pop(section)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def run_name(cfg: ExperimentConfig) -> str:
    """The run folder's name under ``output_dir``: ``<name>-<config hash>`` (re-running a config resumes it)."""
    return f"{cfg.name}-{config_hash(cfg)}"
