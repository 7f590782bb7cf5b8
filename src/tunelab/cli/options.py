"""The flags every command that runs training shares: one per :class:`TrainConfig` field, and ``--config``."""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, fields

from tunelab.config import TrainConfig, field_docs, load_yaml

_EXCLUDED = {"extra"}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit code 2; a command with a list of positional inputs
    (``intermixed = True``) takes its options between them too (``predict DIR --json "a text"``)."""

    intermixed = False
    _parsing = False

    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        # a prefix is not a flag: ``compare --lr 1e-3`` was taken for --lr-overrides (and refused under that name), and
        # ``--data-fraction 0.5`` for --data-fractions in silence
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        from tunelab.run import ranks

        line = f"tunelab: error: {message} (see `{self.prog} --help`)"
        ranks.say_once(line)  # under a launcher every process parses the same command line
        self.exit(2)

    def parse_args(self, args=None, namespace=None):
        """argparse's, but a flag that the command does not know is reported by the command's own parser, so that the
        line points to ``tunelab COMMAND --help`` (argparse leaves unknown flags to the top-level parser)."""
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            commands = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
            owner = commands.get(getattr(namespace, "command", None), self)
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace

    def parse_known_args(self, args=None, namespace=None):
        if not self.intermixed or self._parsing:  # the intermixed parse calls this method itself
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False


def add_config_flags(parser: argparse.ArgumentParser, *, skip: set[str] = frozenset(),
                     defaults: typing.Mapping[str, str] | None = None) -> None:
    """One flag per TrainConfig field; defaults are SUPPRESSed so only given flags override --config. ``defaults``:
    what a command does without a flag, where that is not TrainConfig's default (said in its help)."""
    docs = field_docs(TrainConfig)
    hints = typing.get_type_hints(TrainConfig)
    parser.add_argument("--config", help="YAML file of options (flags given here override it)")
    for f in fields(TrainConfig):
        if f.name in _EXCLUDED | set(skip):
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        base = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        kind = base[0] if typing.get_origin(hint) is not None else hint
        default = f.default if f.default is not MISSING else None
        said = (defaults or {}).get(f.name, default)
        text = docs.get(f.name, "") + (f" (default: {said})" if said not in (None, "") else "")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text, metavar=f.name.upper())
    if "extra" not in skip:
        parser.add_argument("--extra", action="append", type=_extra_item, default=argparse.SUPPRESS, metavar="KEY=VALUE",
                            help="a plugin strategy's own setting, into TrainConfig.extra (repeat it for several; the "
                                 "value is read as YAML: 64, 0.1, true, [a, b]); it overrides the same key of an "
                                 "extra: mapping in --config")


def add_metric_flag(parser: argparse.ArgumentParser) -> None:
    """``--metric``, as every command that ranks strategies takes it (``compare``, ``recommend``)."""
    parser.add_argument("--metric", help="what strategies are ranked by: accuracy (classification default) or f1_macro "
                        "(for imbalanced classes); perplexity (causal-LM default) or loss (its words in any order: "
                        "macro-f1 is f1_macro)")


def _extra_item(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with a YAML value (``rank=64`` gives the int 64, ``name=abc`` the string)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (for instance --extra rank=64)")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value  # not YAML: the text as given
    return key.strip(), parsed


def config_from_args(args: argparse.Namespace, **fixed) -> TrainConfig:
    values = load_yaml(args.config) if getattr(args, "config", None) else {}
    for name in TrainConfig.field_names():
        if name in vars(args) and name != "extra":
            values[name] = getattr(args, name)
    if getattr(args, "extra", None):
        given = values.get("extra") or {}
        values["extra"] = {**given, **dict(args.extra)} if isinstance(given, dict) else given  # not a mapping: refused
    values.update(fixed)
    return TrainConfig.from_dict(values, where=args.config or "flags")


def warn_unused_fractions(args: argparse.Namespace, config: TrainConfig) -> None:
    """Warn, in one line, where ``--validation-fraction`` / ``--test-fraction`` was typed and the data brings that
    split itself (the fraction then cuts nothing). Only a typed flag: a value from ``--config``, or one a run
    recorded, is left alone; the data is read for it only then."""
    import logging

    from tunelab.run import ranks

    typed = [name for name in ("validation_fraction", "test_fraction") if name in vars(args)]
    if not typed or ranks.local_rank() > 0 or config.problems():  # a launch's processes read the same options; a
        return  # bad option is the command's error, said alone
    from tunelab.data.load import own_splits

    given = own_splits(config.data, config.text_column, config.label_column, config.task)
    unused = [(name, name.split("_")[0]) for name in typed if name.split("_")[0] in given]
    if not unused:
        return
    flags = " and ".join(f"--{name.replace('_', '-')} {getattr(config, name):g}" for name, _ in unused)
    splits = " and ".join(split for _, split in unused)
    logging.getLogger("tunelab").warning(
        f"{flags} ignored: {config.data} brings its own {splits} split{'s' if len(unused) > 1 else ''} (a fraction "
        "cuts only data without that split)")
