"""Command line: ``stylebridge <command>``. Thin: parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from stylebridge.models.base import CheckpointError

PART_HELP = "for files holding several networks: g_ema (default), g or d"


def _cmd_generate(args: argparse.Namespace) -> int:
    from stylebridge.imageio import save_grid, save_image
    from stylebridge.io.loading import load
    from stylebridge.models.stylegan2 import StyleGAN2Generator
    from stylebridge.runtime import pick_device
    from stylebridge.sampling import generate_images, parse_seeds

    seeds = parse_seeds(args.seeds)
    G = load(args.model, part=args.part)
    if not isinstance(G, StyleGAN2Generator):
        raise CheckpointError(f"{args.model}: holds a {type(G).__name__}, not a generator")
    G = G.to(pick_device(args.device))
    images = generate_images(G, seeds, args.truncation, args.noise_mode, args.batch, args.precision,
                             progress=not args.quiet)
    out = Path(args.out)
    if out.suffix.lower() == ".png":
        save_grid(images, out, nrow=args.nrow)
        print(f"wrote {out} ({len(seeds)} images, {G.resolution} px)")
    else:
        for s, img in zip(seeds, images):
            save_image(img, out / f"seed{s:04d}.png")
        print(f"wrote {len(seeds)} images to {out}/")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from stylebridge.io.loading import describe

    model, info = describe(args.src, part=args.part)
    model.save_pretrained(args.out_dir, metadata={"converted_from": str(args.src), "source_format": info.format,
                                                  "part": args.part or "g_ema"})
    print(f"wrote {args.out_dir}/ ({type(model).__name__}, {info.format} → native)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from stylebridge.io.loading import describe

    model, info = describe(args.path, part=args.part)
    doc = {
        "path": info.path,
        "format": info.format,
        "parts": list(info.parts),
        "model": type(model).__name__,
        "config": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "buffers": sum(b.numel() for b in model.buffers()),
    }
    if info.extra.get("args"):
        doc["args"] = info.extra["args"]
    print(json.dumps(doc, indent=2, default=str))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from stylebridge.demo import run_demo

    run_demo(Path(args.out), model=args.model, device=args.device, precision=args.precision)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stylebridge", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="render images from seeds")
    g.add_argument("--model", required=True, help="checkpoint file, model folder or shipped model name")
    g.add_argument("--seeds", default="0-15", help="seeds, e.g. 0-15 or 1,5,9 (default 0-15)")
    g.add_argument("--truncation", type=float, default=1.0, help="truncation psi (default 1.0: none)")
    g.add_argument("--noise-mode", default="const", choices=("const", "random", "none"))
    g.add_argument("--out", required=True, help="a .png path for one grid, or a folder for one PNG per seed")
    g.add_argument("--nrow", type=int, default=None, help="images per grid row")
    g.add_argument("--batch", type=int, default=8)
    g.add_argument("--part", default=None, help=PART_HELP)
    g.add_argument("--device", default="auto")
    g.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_generate)

    c = sub.add_parser("convert", help="convert any supported checkpoint to a native model folder")
    c.add_argument("src")
    c.add_argument("out_dir")
    c.add_argument("--part", default=None, help=PART_HELP)
    c.set_defaults(func=_cmd_convert)

    i = sub.add_parser("info", help="format, config and parameter count of a checkpoint")
    i.add_argument("path")
    i.add_argument("--part", default=None, help=PART_HELP)
    i.set_defaults(func=_cmd_info)

    d = sub.add_parser("demo", help="the project's demo: samples, truncation sweep, style mixing")
    d.add_argument("--out", default="demo_out", help="output folder (default demo_out/)")
    d.add_argument("--model", default=None, help="generator to use (default: the best one available)")
    d.add_argument("--device", default="auto")
    d.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    d.set_defaults(func=_cmd_demo)
    return p


def _version() -> str:
    from stylebridge import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, FileNotFoundError, ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"stylebridge {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    raise SystemExit(main())
