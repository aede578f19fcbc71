"""Command line: ``stylebridge <command>``. Thin: parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from pathlib import Path

import torch

from stylebridge.core.native import CheckpointError
from stylebridge.train.loop import TrainingInterrupted

PART_HELP = ("for files holding several networks: g_ema (default), g or d; pSp/e4e files: encoder, decoder or d; "
             "StyleMapGAN files: ema (default), nonema or d")


# -- argument types: bad values end in one line and exit 2, before anything is loaded ---------------------------
def _int_at_least(low: int, wording: str):
    """An argparse type: an integer >= ``low``, refused as 'must be WORDING, got VALUE'."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {wording}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1, "a positive integer")  # argparse type: an integer >= 1
non_negative_int = _int_at_least(0, "an integer >= 0")  # argparse type: an integer >= 0


def finite_float(text: str) -> float:
    """argparse type: a finite number (NaN and infinities refused: they render black images)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def number_list(text: str) -> list[float]:
    """argparse type: finite numbers separated by commas ("-3,0,3")."""
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers separated by commas (e.g. -3,0,3)") \
            from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"must be finite numbers separated by commas, got {text!r}")
    return values


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``stylebridge generate: error: argument --nrow: …``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _cmd_generate(args: argparse.Namespace) -> int:
    from stylebridge.core.atomic import check_writable_dir, check_writable_file
    from stylebridge.core.device import pick_device
    from stylebridge.core.imageio import save_grid, save_image
    from stylebridge.formats.loading import load
    from stylebridge.models.stylegan2 import StyleGAN2Generator
    from stylebridge.pipelines.generate import generate_images, parse_seeds

    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    (check_writable_file if out.suffix.lower() == ".png" else check_writable_dir)(out)
    G = load(args.model, part=args.part, expect=StyleGAN2Generator)
    G = G.to(pick_device(args.device))
    images = generate_images(G, seeds, args.truncation, args.noise_mode, args.batch_size, args.precision,
                             progress=not args.quiet)
    if out.suffix.lower() == ".png":
        save_grid(images, out, nrow=args.nrow)
        print(f"wrote {out} ({len(seeds)} images, {G.resolution} px)")
    else:
        for s, img in zip(seeds, images):
            save_image(img, out / f"seed{s:04d}.png")
        print(f"wrote {len(seeds)} images to {out}/")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from stylebridge.core.atomic import check_writable_dir
    from stylebridge.formats.loading import describe

    check_writable_dir(args.out_dir)
    model, info = describe(args.src, part=args.part)
    model.save_pretrained(args.out_dir, metadata={"converted_from": str(args.src), "source_format": info.format,
                                                  "part": args.part or "g_ema"})
    print(f"wrote {args.out_dir}/ ({type(model).__name__}, {info.format} → native)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from stylebridge.formats.loading import describe

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


def _cmd_evaluate_editing(args: argparse.Namespace, command: str) -> int:
    from stylebridge.evaluate.editing import run_editing_evaluation, write_editing_report
    from stylebridge.evaluate.report import prepare_out_dir
    from stylebridge.invert.editing import shipped_directions

    prepare_out_dir(args.out, create=False)  # fails before minutes of work
    if args.methods or args.inputs:
        raise ValueError("--methods and --inputs are for the translation table; --editing takes --inverters and "
                         "--directions")
    directions = args.directions or shipped_directions(args.generator)
    if not directions:
        raise ValueError(f"no shipped directions for {args.generator}: give --directions FILE ...")
    options = {name: {"steps": args.steps, "precision": args.precision} for name in args.inverters
               if name.startswith("optimize")}
    inverters: list = []
    for spec in args.inverters:
        base, _, pivot = spec.partition("@")
        if base != "pti":
            if pivot:
                raise ValueError(f"{spec}: only pti takes a pivot (pti@e4e, pti@restyle, pti@optimize-w, …)")
            inverters.append(spec)
            continue
        from stylebridge.invert.base import make_inverter

        inv = make_inverter("pti", pivot=pivot or "optimize-w", steps=args.pti_steps, rank=args.pti_rank,
                            precision=args.precision,
                            pivot_options={"steps": args.steps} if pivot.startswith("optimize-w") or not pivot else {})
        inv.name = spec  # type: ignore[misc]
        inverters.append(inv)
        options[spec] = {"pivot": pivot or "optimize-w", "steps": args.pti_steps, "rank": args.pti_rank,
                         "precision": args.precision}
    result = run_editing_evaluation(inverters, directions, n=args.n, generator=args.generator,
                                    inverter_options=options, device=args.device, progress=not args.quiet,
                                    **({} if args.seed is None else {"seed": args.seed}))
    result.report["config"]["command"] = command
    paths = write_editing_report(result, args.out)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _cmd_evaluate_local(args: argparse.Namespace) -> int:
    import shlex

    from stylebridge.evaluate.local_editing import run_local_editing_evaluation, write_local_editing_report
    from stylebridge.evaluate.report import prepare_out_dir

    prepare_out_dir(args.out, create=False)  # fails before minutes of work
    if args.methods or args.inputs or args.editing:
        raise ValueError("--local-editing takes --model, --regions and --baseline, not --methods / --inputs / "
                         "--editing")
    model = args.model or f"{args.generator}-stylemapgan"
    baseline = None if args.baseline == "none" else args.baseline
    seed = {} if args.seed is None else {"seed": args.seed}
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_local_editing_evaluation(model, regions=args.regions, n=args.n, baseline=baseline,
                                          device=args.device, progress=not args.quiet, **seed)
    parts = ["--local-editing", "--model", str(model), "--regions", *args.regions, "--baseline", args.baseline,
             "--n", str(args.n)] + (["--seed", str(args.seed)] if args.seed is not None else []) + [
             "--out", str(args.out)]
    result.report["config"]["command"] = "stylebridge evaluate " + " ".join(shlex.quote(a) for a in parts)
    paths = write_local_editing_report(result, args.out)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _cmd_evaluate_distilled(args: argparse.Namespace) -> int:
    import shlex

    from stylebridge.evaluate.distillation import run_distillation_evaluation, write_distillation_report
    from stylebridge.evaluate.report import prepare_out_dir

    prepare_out_dir(args.out, create=False)  # fails before minutes of work
    if args.methods or args.inputs or args.editing or args.local_editing:
        raise ValueError("--distilled takes --inverters (the encode → edit → decode baselines), not --methods / "
                         "--inputs / --editing / --local-editing")
    inverters = args.inverters or ["e4e", "psp", "restyle", "optimize"]
    options = {name: {"steps": args.steps, "precision": args.precision} for name in inverters
               if name.startswith("optimize")}
    if args.threads:
        torch.set_num_threads(args.threads)
    seed = {} if args.seed is None else {"seed": args.seed}
    result = run_distillation_evaluation(args.distilled, inverters, n=args.n, generator=args.generator,
                                         inverter_options=options, fd_reference=args.fd_reference,
                                         device=args.device, progress=not args.quiet, look=args.look, **seed)
    parts = ["--distilled", *args.distilled, "--inverters", *inverters, "--n", str(args.n),
             "--fd-reference", str(args.fd_reference)] + (["--look", args.look] if args.look != "clean" else []) + (
        ["--steps", str(args.steps), "--precision", args.precision] if options else []) + (
        ["--seed", str(args.seed)] if args.seed is not None else []) + ["--out", str(args.out)]
    result.report["config"]["command"] = "stylebridge evaluate " + " ".join(shlex.quote(a) for a in parts)
    paths = write_distillation_report(result, args.out)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _cmd_evaluate_photos(args: argparse.Namespace) -> int:
    from stylebridge.evaluate.photos import run_photo_evaluation, write_photo_report
    from stylebridge.evaluate.report import prepare_out_dir

    prepare_out_dir(args.out, create=False)
    if args.inputs or args.editing or args.local_editing or args.distilled:
        raise ValueError("--photos takes --methods (and --generator), not --inputs / --editing / --local-editing / "
                         "--distilled")
    if args.threads:
        torch.set_num_threads(args.threads)
    import shlex

    methods = args.methods or ["actmap", "psp", "e4e"]
    result = run_photo_evaluation(methods, None if args.photos == "bundled" else args.photos,
                                  generator=args.generator, device=args.device, progress=not args.quiet)
    result.report["command"] = "stylebridge evaluate " + " ".join(shlex.quote(a) for a in (
        ["--photos"] + ([] if args.photos == "bundled" else [args.photos]) + ["--generator", args.generator,
                                                                                "--methods", *methods, "--out",
                                                                                str(args.out)]))
    paths = write_photo_report(result, args.out)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import shlex

    if args.look != "clean" and not args.distilled:
        raise ValueError("--look applies to --distilled")
    if args.photos:
        return _cmd_evaluate_photos(args)
    if args.distilled:
        return _cmd_evaluate_distilled(args)
    if args.local_editing:
        return _cmd_evaluate_local(args)
    if args.inverters is None:
        args.inverters = ["psp", "e4e", "optimize", "optimize-e4e"]

    from stylebridge.evaluate.report import evaluate_to_folder

    inputs = None if args.inputs is None else [k for item in args.inputs for k in item.split(",") if k]
    parts = ["--generator", args.generator] + (["--methods", *args.methods] if args.methods else []) + (
        ["--inputs", *inputs] if inputs else []) + ["--n", str(args.n)] + (
        ["--seed", str(args.seed)] if args.seed is not None else []) + ["--out", str(args.out)]
    if args.editing:
        parts = ["--editing", "--generator", args.generator, "--inverters", *args.inverters] + (
            ["--directions", *args.directions] if args.directions else []) + [
            "--n", str(args.n), "--steps", str(args.steps), "--precision", args.precision] + (
            ["--pti-steps", str(args.pti_steps), "--pti-rank", str(args.pti_rank)]
            if any(i.startswith("pti") for i in args.inverters) else []) + (
            ["--seed", str(args.seed)] if args.seed is not None else []) + ["--out", str(args.out)]
    command = "stylebridge evaluate " + " ".join(shlex.quote(a) for a in parts)
    if args.editing:
        if args.threads:
            torch.set_num_threads(args.threads)
        return _cmd_evaluate_editing(args, command)
    seed = {} if args.seed is None else {"seed": args.seed}
    _, paths = evaluate_to_folder(args.out, generator=args.generator, methods=args.methods, inputs=inputs, n=args.n,
                                  device=args.device, progress=not args.quiet, command=command,
                                  threads=args.threads, **seed)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from stylebridge.apps.demo import run_demo
    from stylebridge.core.atomic import check_writable_dir

    check_writable_dir(args.out)
    run_demo(Path(args.out), model=args.model, device=args.device, precision=args.precision)
    return 0


def _cmd_studio(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ImportError(f"the studio needs {e.name} (pip install 'stylebridge[studio]')") from None
    import math

    from stylebridge.apps.studio.engine import Studio, model_thread
    from stylebridge.apps.studio.server import Limits, serve

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in [1, 65535], got {args.port}")
    if not (math.isfinite(args.max_upload_mb) and math.isfinite(args.max_upload_megapixels)
            and args.max_upload_mb >= 0.01 and args.max_upload_megapixels >= 0.01):
        raise ValueError("--max-upload-mb and --max-upload-megapixels must be finite numbers >= 0.01")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's choice), got {args.threads}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("stylebridge").warning(
            "studio: listening on %s — anyone who can reach this machine can use the page", args.host)
    print("studio: loading models …", flush=True)

    def load() -> Studio:  # on the model thread, where every later model call runs (model_thread says why)
        if args.threads:
            torch.set_num_threads(args.threads)
        studio = Studio(args.model or None, precision=args.precision)
        studio.warm_up()
        return studio

    studio = model_thread().submit(load).result()
    serve(studio, host=args.host, port=args.port,
          limits=Limits(int(args.max_upload_mb * 1e6), int(args.max_upload_megapixels * 1e6)))
    return 0


def _cmd_data_synthfaces(args: argparse.Namespace) -> int:
    from stylebridge.data.export import export_synthfaces

    extras = [e.strip() for e in args.with_.split(",") if e.strip()] if args.with_ else []
    out = export_synthfaces(args.out, args.count, args.resolution, extras, seed=args.seed, batch=args.batch_size,
                            progress=not args.quiet)
    print(f"wrote {args.count} faces ({args.resolution} px{', ' + ', '.join(extras) if extras else ''}) to {out}/")
    return 0


def _cmd_data_prepare(args: argparse.Namespace) -> int:
    from stylebridge.data.folder import prepare_folder

    report = prepare_folder(args.src, args.out, args.resolution, align=args.align, strict=args.strict,
                            progress=not args.quiet)
    print(f"wrote {report.written} images to {report.out}/; skipped {len(report.skipped)} "
          f"(listed in {report.out}/skipped.txt)")
    return 0


def _cmd_data_emoji(args: argparse.Namespace) -> int:
    from stylebridge.data.emoji import write_emoji_set

    bg = args.background.lstrip("#")
    if len(bg) != 6 or any(c not in "0123456789abcdefABCDEF" for c in bg):
        raise ValueError(f"--background must be a hex colour like #ffffff, got {args.background!r}")
    count = write_emoji_set(args.out, args.resolution, tuple(int(bg[i : i + 2], 16) for i in (0, 2, 4)))
    print(f"wrote {count} emoji faces ({args.resolution} px) to {args.out}/")
    return 0


def _cmd_train_gan(args: argparse.Namespace) -> int:
    from stylebridge.train.gan import load_gan_config, train_gan

    overrides = list(args.set or [])
    if args.steps is not None:
        overrides.append(f"optim.steps={args.steps}")
    run, cfg_path = _run_folder(args)
    cfg = load_gan_config(cfg_path, overrides)
    train_gan(cfg, run, resume=bool(args.resume), max_steps_this_run=args.max_steps_this_run)
    return 0


def _cmd_train_stylemapgan(args: argparse.Namespace) -> int:
    from stylebridge.train.stylemapgan import load_stylemap_config, train_stylemapgan

    overrides = list(args.set or [])
    if args.steps is not None:
        overrides.append(f"optim.steps={args.steps}")
    run, cfg_path = _run_folder(args)
    train_stylemapgan(load_stylemap_config(cfg_path, overrides), run, resume=bool(args.resume),
                      max_steps_this_run=args.max_steps_this_run)
    print(f"StyleMapGAN run in {run}/ (model: {run}/model once every step is done)")
    return 0


def _cmd_train_pix2pixhd(args: argparse.Namespace) -> int:
    from stylebridge.train.pix2pixhd import load_pix2pixhd_config, train_pix2pixhd

    overrides = list(args.set or [])
    if args.steps is not None:
        overrides.append(f"optim.steps={args.steps}")
    if args.pairs is not None:
        overrides.append(f"data.pairs={args.pairs}")
    run, cfg_path = _run_folder(args)
    train_pix2pixhd(load_pix2pixhd_config(cfg_path, overrides), run, resume=bool(args.resume),
                    max_steps_this_run=args.max_steps_this_run)
    print(f"pix2pixHD run in {run}/ (model: {run}/model once every step is done; run it with "
          f"stylebridge translate --model {run}/model)")
    return 0


def _run_arch(run: Path) -> str:
    """The --arch of the run in ``run`` (its resolved config.yaml), so ``--resume RUN`` needs nothing else."""
    import yaml

    path = run / "config.yaml"
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found (is {run} a run folder?)") from None
    if isinstance(doc, dict) and "generator" in doc and "encoder" in doc:
        return "actmap"
    model = (doc or {}).get("model", {}) if isinstance(doc, dict) else {}
    arch = model.get("arch") if isinstance(model, dict) else None
    if arch not in ("psp", "e4e"):
        raise ValueError(f"{path}: not an encoder run's config (no model.arch); give --arch")
    return f"restyle-{arch}" if model.get("restyle") else arch


def _cmd_train_encoder(args: argparse.Namespace) -> int:
    overrides = list(args.set or [])
    if args.steps is not None:
        overrides.append(f"optim.steps={args.steps}")
    if args.arch is None:
        if not args.resume:
            raise ValueError("--arch is required (psp, e4e, restyle-psp, restyle-e4e or actmap) unless --resume "
                             "names a run")
        args.arch = _run_arch(Path(args.resume))
    if args.arch == "actmap":
        from stylebridge.train.actmap import load_actmap_config as load_cfg
        from stylebridge.train.actmap import train_actmap as train

        if args.task not in (None, "inversion"):
            raise ValueError("--arch actmap learns from pairs the generator makes itself: it takes no --task "
                             "(it translates sketches, blurred or out-of-domain images after training)")
        if args.generator:
            overrides.append(f"generator.path={args.generator}")
    else:
        from stylebridge.train.encoder import load_encoder_config as load_cfg
        from stylebridge.train.encoder import train_encoder as train

        overrides.append(f"model.arch={args.arch.removeprefix('restyle-')}")
        overrides.append(f"model.restyle={str(args.arch.startswith('restyle-')).lower()}")
        if args.generator:
            overrides.append(f"model.generator={args.generator}")
        if args.task:
            overrides.append(f"data.task={args.task}")
    run, cfg_path = _run_folder(args)
    train(load_cfg(cfg_path, overrides), run, resume=bool(args.resume), max_steps_this_run=args.max_steps_this_run)
    return 0


def _run_folder(args: argparse.Namespace) -> tuple[Path, str | Path | None]:
    """(run folder, config file) from --out / --resume / --config, refusing to overwrite a run by accident."""
    if args.resume:
        run = Path(args.resume)
        if args.out and Path(args.out) != run:
            raise ValueError("--resume continues in its own run folder; leave out --out or give the same folder")
        return run, args.config or run / "config.yaml"
    if not args.out:
        raise ValueError("give --out RUN_DIR (or --resume RUN_DIR)")
    run = Path(args.out)
    if any(run.glob("checkpoint-*.pt")):
        raise ValueError(f"{run} already holds checkpoints: use --resume {run} to continue it")
    return run, args.config


def _cmd_encode(args: argparse.Namespace) -> int:
    from stylebridge.pipelines.encoder import encode_folder, load_encoder

    model = load_encoder(args.model)
    align = _aligner(args, args.model, lambda: _generator_of(model))
    report = encode_folder(model, args.images, args.out, batch_size=args.batch_size, progress=not args.quiet,
                           device=args.device, precision=args.precision,
                           reconstructions=not args.no_reconstructions, align=align)
    print(f"wrote {report.written} encodings to {report.out}/" + _skipped_text(report))
    return 0


def _add_align_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--align", action="store_true",
                   help="find each photo's face (dlib, the 'align' extra) and rotate, scale and crop it into the "
                        "generator's layout first; photos without a face are listed in skipped.txt")
    p.add_argument("--align-template", default="auto", metavar="SOURCE",
                   help="where the layout comes from: synthfaces (the renderer's exact landmarks), generator (dlib "
                        "on the generator's samples), ffhq (NVlabs' crop), or a template file (JSON); default auto: "
                        "synthfaces for synthfaces models, else generator")


def _aligner(args: argparse.Namespace, model: object, generator: object = None, spec: object = None) -> object:
    """--align → the aligner (None without the flag); ``generator``: the model's generator or a function giving it;
    ``spec``: the pipeline's input spec, checked first (no dlib loading for a model that takes no photos)."""
    if not args.align:
        if args.align_template != "auto":
            raise ValueError("--align-template applies with --align")
        return None
    if spec is not None:
        from stylebridge.pipelines.runner import check_alignable

        check_alignable(spec, str(model))
    from stylebridge.data.align import make_aligner

    return make_aligner(args.align_template, model=None if model is None else str(model), generator=generator)


def _generator_of(model: object) -> object:
    """The StyleGAN2 generator a loaded model renders with (translator, encoder, inverter), for --align-template
    generator."""
    from stylebridge.models.stylegan2 import StyleGAN2Generator

    for name in ("generator", "decoder"):
        g = getattr(model, name, None)
        if isinstance(g, StyleGAN2Generator):
            return g
    raise ValueError("--align-template generator: this model has no StyleGAN2 generator to take the layout from; "
                     "give a template file, synthfaces or ffhq")


def _skipped_text(report: object) -> str:
    skipped = getattr(report, "skipped", [])
    n = len(skipped)
    if not n:
        return ""
    return f" ({n} file{'s' if n != 1 else ''} skipped: unreadable, or no face found; reasons in skipped.txt)"


# translate's flags → pipeline options (a flag the chosen pipeline does not take is an error naming the flag)
_TRANSLATE_FLAGS = {"samples": "--samples", "seed": "--style-seed", "walk": "--walk", "frames": "--frames",
                    "style_encoder": "--style-encoder", "truncation_psi": "--truncation", "colors": "--colors"}


def _cmd_translate(args: argparse.Namespace) -> int:
    from stylebridge.formats.loading import describe_model
    from stylebridge.pipelines.base import load_pipeline
    from stylebridge.pipelines.generate import parse_seeds
    from stylebridge.pipelines.runner import run_folder

    pipe = load_pipeline(args.model, takes="images")  # the pipeline registered for the model's class
    options = {"truncation_psi": args.truncation, "samples": args.samples or None, "seed": args.style_seed,
               "walk": parse_seeds(args.walk) if args.walk else None, "style_encoder": args.style_encoder,
               "colors": args.colors}
    options = {k: v for k, v in options.items() if v is not None}
    if "walk" in options:
        options["frames"] = args.frames
    bad = pipe.unknown_options(options)
    bad = [k for k in bad if not (k == "frames" and "walk" in bad)]  # --frames only came along with --walk
    if bad:
        takes = [_TRANSLATE_FLAGS[k] for k in pipe.options if k in _TRANSLATE_FLAGS]
        raise ValueError(f"{args.model}: {' and '.join(_TRANSLATE_FLAGS[k] for k in bad)} "
                         f"{'does' if len(bad) == 1 else 'do'} not apply to {describe_model(pipe.model)} "
                         f"(it takes {', '.join(takes)})")
    align = _aligner(args, args.model, lambda: _generator_of(pipe.model), spec=pipe.input_spec)
    report = run_folder(pipe, args.images, args.out, batch_size=args.batch_size, device=args.device,
                        precision=args.precision, progress=not args.quiet, desc="translate", images2=args.images2,
                        align=align, **options)
    print(f"wrote {report.written} translations ({len(report.files)} files) to {report.out}/"
          + _skipped_text(report))
    return 0


def _inverter_options(args: argparse.Namespace) -> dict:
    """invert / edit flags → inverter options (flags of other inverters refused, naming the flag)."""
    method = args.method if hasattr(args, "method") else args.inverter
    flags = {"steps": ("--steps", args.steps), "seconds": ("--seconds", args.seconds),
             "space": ("--space", args.space), "lpips_backbone": ("--lpips-backbone", args.lpips_backbone),
             "lpips_heads": ("--lpips-heads", args.lpips_heads)}
    pti_flags = {"pivot": ("--pivot", args.pivot), "pivot_steps": ("--pivot-steps", args.pivot_steps),
                 "rank": ("--rank", args.rank), "shared": ("--shared", args.shared or None),
                 "locality": ("--locality", args.locality), "stop_at": ("--stop-at", args.stop_at),
                 "lr": ("--lr", args.lr)}
    given_pti = {k: v for k, (_, v) in pti_flags.items() if v is not None}
    if given_pti and method != "pti":
        raise ValueError(f"{' and '.join(pti_flags[k][0] for k in given_pti)} "
                         f"{'applies' if len(given_pti) == 1 else 'apply'} to the pti inverter, not {method}")
    if args.n_iters is not None and method != "restyle":
        raise ValueError(f"--n-iters applies to the restyle inverter, not {method}")
    if method == "restyle":
        if args.generator:
            raise ValueError("restyle inverts into its own decoder: give --model, not --generator")
        bad = [flags[k][0] for k, (_, v) in flags.items() if v is not None]
        if bad:
            raise ValueError(f"{' and '.join(bad)} {'applies' if len(bad) == 1 else 'apply'} to the optimize and "
                             "pti inverters, not restyle")
        return {"n_iters": args.n_iters} if args.n_iters is not None else {}
    if method == "pti":
        options = {k: v for k, (_, v) in flags.items() if v is not None and k != "space"}
        if args.space is not None:
            raise ValueError("--space applies to the optimize inverters (PTI's optimize-w pivot is in W)")
        pivot_steps = given_pti.pop("pivot_steps", None)
        options.update(given_pti)
        if pivot_steps is not None:
            options["pivot_options"] = {"steps": pivot_steps}
        return options  # --precision reaches the inverter through invert_folder / edit_folder
    options = {k: v for k, (_, v) in flags.items() if v is not None}
    if not method.startswith("optimize"):
        if options:
            raise ValueError(f"{' and '.join(flags[k][0] for k in options)} "
                             f"{'applies' if len(options) == 1 else 'apply'} to the optimize inverters, not {method}")
        if args.generator:
            raise ValueError(f"{method} inverts into its own decoder: give --model, not --generator")
        return {}
    return options  # --precision reaches the inverter through invert_folder / edit_folder


def _inverter_generator(args: argparse.Namespace) -> object:
    from stylebridge.formats.loading import load
    from stylebridge.models.stylegan2 import StyleGAN2Generator

    if args.generator:
        return load(args.generator, expect=StyleGAN2Generator)
    if args.model:
        return _generator_of(load(args.model))
    raise ValueError("--align-template generator: give --generator or --model")


def _cmd_invert(args: argparse.Namespace) -> int:
    from stylebridge.invert import invert_folder

    options = _inverter_options(args)
    align = _aligner(args, args.model or args.generator, lambda: _inverter_generator(args))
    report = invert_folder(args.method, args.images, args.out, model=args.model, generator=args.generator or None,
                           batch_size=args.batch_size, device=args.device, precision=args.precision,
                           progress=not args.quiet, align=align, **options)
    print(f"wrote {report.written} inversions ({args.method}) to {report.out}/" + _skipped_text(report))
    if report.summary.get("text"):
        print(report.summary["text"])
    return 0


def _cmd_edit(args: argparse.Namespace) -> int:
    from stylebridge.invert import edit_folder

    options = _inverter_options(args)
    align = _aligner(args, args.model or args.generator, lambda: _inverter_generator(args))
    report = edit_folder(args.images, args.out, args.inverter, args.direction, args.strength, layers=args.layers,
                         component=args.component, model=args.model, generator=args.generator or None,
                         batch_size=args.batch_size, device=args.device, precision=args.precision,
                         progress=not args.quiet, align=align, **options)
    print(f"edited {report.written} images ({args.inverter}; {len(report.files)} files) in {report.out}/"
          + _skipped_text(report))
    if report.summary.get("text"):
        print(report.summary["text"])
    return 0


def _cmd_train_domain(args: argparse.Namespace) -> int:
    from stylebridge.core.atomic import atomic_write_text
    from stylebridge.train.domain_net import evaluate_domain_network, load_domain_config, train_domain_network

    if args.threads:
        torch.set_num_threads(args.threads)
    flags = {"optim.steps": args.steps, "optim.batch": args.batch, "data.resolution": args.resolution,
             "optim.seed": args.seed, "model.head_spatial": args.head_spatial, "loss.blur_prob": args.blur_prob,
             "optim.lr": args.lr}
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.init_from:
        overrides.append(f"model.init_from={args.init_from}")
    run = Path(args.out)
    resume = any(run.glob("checkpoint-*.pt")) and not args.no_resume
    cfg = load_domain_config(args.config or (run / "config.yaml" if resume else None), overrides + list(args.set))
    net = train_domain_network(run, cfg, resume=resume, max_steps_this_run=args.max_steps_this_run)
    if not (run / "model").is_dir():
        print(f"checkpoint written to {run}: run the same command again to continue")
        return 0
    report = evaluate_domain_network(net, faces=args.eval_faces, resolution=cfg.data.resolution)
    atomic_write_text(run / "eval.json", json.dumps(report, indent=2) + "\n")
    for name, scores in report.items():
        print(f"{name:16s} " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    print(f"wrote {run}/model (native) and {run}/eval.json")
    return 0


def _cmd_directions_find(args: argparse.Namespace) -> int:
    from stylebridge.edit.find import find_direction

    found = find_direction(args.generator, args.method, attribute=args.attribute, labels_csv=args.labels_csv,
                           classifier=args.classifier, samples=args.samples, fraction=args.fraction,
                           conditions=args.condition, layers=args.layers, component=args.component,
                           components=args.components, seed=args.seed, name=args.name, steps=args.steps,
                           progress=not args.quiet)
    found.save_pretrained(args.out)
    c = found.config
    what = f"{c.num_components} GANSpace components" if hasattr(c, "num_components") else (
        f"direction {c.name!r} ({c.method}; strengths {c.strength_range[0]:g}..{c.strength_range[1]:g}"
        + (f"; {c.notes}" if c.notes else "") + ")")
    print(f"wrote {args.out}/: {what}")
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from stylebridge.formats.loading import load
    from stylebridge.formats.onnx import EXPORTABLE, check_onnx, export_onnx

    batch: int | str = args.batch
    if batch != "dynamic":
        try:
            batch = int(batch)
        except ValueError:
            raise ValueError(f"--batch must be 'dynamic' or a positive integer, got {args.batch!r}") from None
    model = load(args.model, expect=EXPORTABLE)
    path = export_onnx(model, args.out, batch=batch)
    diffs = check_onnx(model, path, batches=(1, 4) if batch == "dynamic" else (int(batch),))
    worst = max(diffs.values())
    text = ", ".join(f"batch {b}: {d:.1e}" for b, d in diffs.items())
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); onnxruntime vs torch max |diff|: {text}")
    if worst > 1e-4:
        print(f"warning: onnxruntime differs from torch by {worst:.1e} (> 1e-4)", file=sys.stderr)
        return 1
    return 0


def _cmd_distill_pairs(args: argparse.Namespace) -> int:
    from stylebridge.edit.distill_pairs import make_pairs

    result = make_pairs(args.generator, args.out, mode=args.mode, direction=args.direction, attribute=args.attribute,
                        count=args.count, coeff=args.coeff, layers=args.layers, classifier=args.classifier,
                        min_confidence=args.min_confidence, min_identity=args.min_identity,
                        identity_quantile=args.identity_quantile, crossover=args.crossover,
                        both_directions=args.both_directions, find_method=args.find_method,
                        find_samples=args.find_samples, find_fraction=args.find_fraction, seed=args.seed,
                        truncation_psi=args.truncation, batch_size=args.batch_size, device=args.device,
                        overwrite=args.overwrite, progress=not args.quiet)
    inputs = "source/ + source2/" if args.mode != "edit" else "source/"
    print(f"kept {result.kept} of {result.rendered} triplets ({result.kept_fraction:.1%}): {result.written} pairs in "
          f"{result.out}/ ({inputs} → target/); report: {result.out}/report.md")
    return 0


def _cmd_stylemap_edit(args: argparse.Namespace) -> int:
    from stylebridge.pipelines.stylemap import edit_folder

    report = edit_folder(args.model, args.images, args.reference, args.out, mask=args.mask, region=args.region,
                         space=args.space)
    print(f"wrote {report.written} local edits to {report.out}/ (strips: source | reference | mask | reconstruction "
          "| edit)")
    return 0


def _cmd_stylemap_interpolate(args: argparse.Namespace) -> int:
    from stylebridge.pipelines.stylemap import interpolate_folder

    report = interpolate_folder(args.model, args.images, args.reference, args.out, frames=args.frames)
    print(f"wrote {report.written} interpolations ({args.frames} frames each) to {report.out}/")
    return 0


def _cmd_directions_show(args: argparse.Namespace) -> int:
    from stylebridge.core.imageio import save_grid
    from stylebridge.edit import direction_grid, strengths_for
    from stylebridge.formats.loading import load, load_generator
    from stylebridge.models.direction import Direction, GanSpaceComponents
    from stylebridge.pipelines.generate import parse_seeds

    G = load_generator(args.generator, what="--generator")
    d = load(args.direction, expect=(Direction, GanSpaceComponents))
    if isinstance(d, GanSpaceComponents):
        d = d.direction(args.component, args.layers)
    strengths = [float(s) for s in args.strength.split(",")] if args.strength else strengths_for(d, args.columns)
    seeds = parse_seeds(args.seeds)
    images = direction_grid(G, d, seeds, strengths, args.truncation, args.layers)
    save_grid(images, args.out, nrow=len(strengths))
    print(f"wrote {args.out} ({len(seeds)} seeds × strengths {', '.join(f'{s:g}' for s in strengths)})")
    return 0


def _cmd_metrics_fd(args: argparse.Namespace) -> int:
    from stylebridge.core.device import pick_device
    from stylebridge.formats.loading import load
    from stylebridge.metrics.frechet import fd_of_generator, feature_extractor
    from stylebridge.models.stylegan2 import StyleGAN2Generator
    from stylebridge.models.stylemapgan import StyleMapGAN

    device = pick_device(args.device)
    if args.json:
        from stylebridge.core.atomic import check_writable_file

        check_writable_file(args.json)  # before minutes of feature extraction, not after
    G = load(args.model, part=args.part, expect=(StyleGAN2Generator, StyleMapGAN))
    if args.real != "synthfaces" and not Path(args.real).is_dir():
        raise NotADirectoryError(f"{args.real}: not a folder of images (or 'synthfaces')")
    extractor = feature_extractor(args.features).to(device)
    res = fd_of_generator(G.to(device).eval(), extractor, args.real, args.n, args.truncation, args.seed,
                          with_reference=args.reference, cache_dir=args.cache, progress=not args.quiet)
    print(res)
    if args.json:
        from stylebridge.core.atomic import atomic_write_text

        doc = {**res.to_dict(), "model": str(args.model), "real": args.real, "truncation": args.truncation,
               "seed": args.seed}
        atomic_write_text(Path(args.json), json.dumps(doc, indent=2) + "\n")
    return 0


def _add_inverter_flags(p: argparse.ArgumentParser) -> None:
    """The inverter flags shared by invert and edit."""
    p.add_argument("--model", default=None,
                   help="psp / e4e / restyle / optimize-e4e (and pti with an encoder pivot): the encoder (pSp / e4e / "
                        "ReStyle checkpoint, folder or shipped name; default the shipped synthfaces-64 one)")
    p.add_argument("--generator", default=None,
                   help="optimize: the StyleGAN2 generator to invert into (default synthfaces-64)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="optimize: optimisation steps (default 1000; fewer: faster, coarser); pti: tuning steps "
                        "(default 350)")
    p.add_argument("--seconds", type=finite_float, default=None,
                   help="optimize: stop after this many seconds; pti: the tuning's time budget per batch")
    p.add_argument("--space", choices=("w", "w+"), default=None, help="optimize: optimise one w or W+ (default w+)")
    p.add_argument("--lpips-backbone", default=None,
                   help="optimize: LPIPS backbone weights (torchvision AlexNet / VGG-16 state dict or a native LPIPS "
                        "folder); without it the loss uses the synthfaces-domain network")
    p.add_argument("--lpips-heads", default=None, help="optimize: the LPIPS linear heads (alex.pth / vgg.pth)")
    p.add_argument("--n-iters", type=positive_int, default=None,
                   help="restyle: refinement iterations (default: the model's, 5)")
    p.add_argument("--pivot", default=None, choices=("optimize-w", "optimize", "optimize-e4e", "e4e", "psp", "restyle"),
                   help="pti: the pivot inverter (default optimize-w: PTI's projector in W, 450 steps; e4e / restyle "
                        "take milliseconds)")
    p.add_argument("--pivot-steps", type=positive_int, default=None, help="pti: steps of an optimize pivot")
    p.add_argument("--rank", type=non_negative_int, default=None,
                   help="pti: rank of the tuned weight deltas (default 8; 0: dense, PTI's full tuning)")
    p.add_argument("--shared", action="store_true",
                   help="pti: tune one generator for each batch of images (several photos of one person or style)")
    p.add_argument("--locality", type=finite_float, default=None,
                   help="pti: weight of PTI's locality regulariser (default 0: off; PTI uses 1)")
    p.add_argument("--stop-at", type=finite_float, default=None,
                   help="pti: stop tuning an image at this perceptual distance (PTI: LPIPS 0.06)")
    p.add_argument("--lr", type=finite_float, default=None,
                   help="pti: tuning learning rate (default 3e-4 dense, 3e-3 low rank)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"),
                   help="fp32 (default) or bf16 (encoders: autocast; optimize / pti: the generator under bf16)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stylebridge", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="render images from seeds")
    g.add_argument("--model", required=True, help="checkpoint file, model folder or shipped model name")
    g.add_argument("--seeds", default="0-15", help="seeds, e.g. 0-15 or 1,5,9 (default 0-15)")
    g.add_argument("--truncation", type=finite_float, default=1.0, help="truncation psi (default 1.0: none)")
    g.add_argument("--noise-mode", default="const", choices=("const", "random", "none"))
    g.add_argument("--out", required=True, help="a .png path for one grid, or a folder for one PNG per seed")
    g.add_argument("--nrow", type=positive_int, default=None, help="images per grid row")
    g.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int, default=8,
                   help="images per forward pass (default 8)")
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

    data = sub.add_parser("data", help="data sets: synthfaces, image folders").add_subparsers(dest="what",
                                                                                               required=True)
    ds = data.add_parser("synthfaces", help="render synthfaces to PNG (+ sketches, segmentations, attributes)")
    ds.add_argument("--count", type=positive_int, required=True)
    ds.add_argument("--resolution", type=positive_int, default=64)
    ds.add_argument("--out", required=True)
    ds.add_argument("--with", dest="with_", default="attrs", help="comma list of sketch, seg, attrs (default attrs)")
    ds.add_argument("--seed", type=non_negative_int, default=0,
                    help="first seed (faces are seeds seed..seed+count-1)")
    ds.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int, default=64)
    ds.add_argument("--quiet", action="store_true")
    ds.set_defaults(func=_cmd_data_synthfaces)

    dp = data.add_parser("prepare", help="clean an image folder: decode, centre-crop or align, resize, PNG")
    dp.add_argument("src")
    dp.add_argument("--resolution", type=positive_int, required=True)
    dp.add_argument("--out", required=True)
    dp.add_argument("--align", action="store_true", help="FFHQ alignment with dlib's 68-point model (optional extra)")
    dp.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of skipping it")
    dp.add_argument("--quiet", action="store_true")
    dp.set_defaults(func=_cmd_data_prepare)
    de = data.add_parser("emoji", help="render the face-like emoji of Noto Color Emoji (out-of-domain test set)")
    de.add_argument("--out", required=True)
    de.add_argument("--resolution", type=positive_int, default=64)
    de.add_argument("--background", default="#ffffff", help="background colour, hex (default #ffffff)")
    de.set_defaults(func=_cmd_data_emoji)

    tr = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
    tg = tr.add_parser("gan", help="StyleGAN2 on synthfaces or an image folder (torchrun for several processes)")
    tg.add_argument("--config", default=None, help="YAML experiment config (see configs/gan/)")
    tg.add_argument("--out", default=None, help="run folder")
    tg.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    tg.add_argument("--steps", type=int, default=None, help="total steps (overrides optim.steps)")
    tg.add_argument("--max-steps-this-run", type=int, default=None, help="stop (checkpointed) after this many")
    tg.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                    help="config overrides, e.g. optim.lr=0.001")
    tg.set_defaults(func=_cmd_train_gan)

    ts = tr.add_parser("stylemapgan", help="StyleMapGAN (generator, encoder, discriminator) on synthfaces or an image "
                                           "folder (torchrun for several processes)")
    ts.add_argument("--config", default=None, help="YAML experiment config (see configs/stylemapgan/)")
    ts.add_argument("--out", default=None, help="run folder")
    ts.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    ts.add_argument("--steps", type=int, default=None, help="total steps (overrides optim.steps)")
    ts.add_argument("--max-steps-this-run", type=int, default=None, help="stop (checkpointed) after this many")
    ts.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE", help="config overrides")
    ts.set_defaults(func=_cmd_train_stylemapgan)

    tp = tr.add_parser("pix2pixhd", help="pix2pixHD translator on a paired folder (e.g. from stylebridge distill "
                                         "pairs; torchrun for several processes)")
    tp.add_argument("--config", default=None, help="YAML experiment config (see configs/pix2pixhd/)")
    tp.add_argument("--pairs", default=None, metavar="DIR",
                    help="pairs folder: source/, target/ (+ source2/ for two-image inputs); sets data.pairs")
    tp.add_argument("--out", default=None, help="run folder")
    tp.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    tp.add_argument("--steps", type=int, default=None, help="total steps (overrides optim.steps)")
    tp.add_argument("--max-steps-this-run", type=int, default=None, help="stop (checkpointed) after this many")
    tp.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE", help="config overrides")
    tp.set_defaults(func=_cmd_train_pix2pixhd)

    te = tr.add_parser("encoder", help="pSp / e4e / ReStyle encoders or the activation-map translator for a frozen "
                                       "generator")
    te.add_argument("--arch", default=None, choices=("psp", "e4e", "restyle-psp", "restyle-e4e", "actmap"),
                    help="required for a new run; --resume takes it from the run's config")
    te.add_argument("--generator", default=None, help="the frozen StyleGAN2 (path or shipped name)")
    te.add_argument("--task", default=None,
                    help="psp/e4e: inversion (default), sketch, segmentation, superres[:f], inpaint, frontalize")
    te.add_argument("--config", default=None, help="YAML experiment config (see configs/encoder/, configs/actmap/)")
    te.add_argument("--out", default=None, help="run folder")
    te.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    te.add_argument("--steps", type=int, default=None, help="total steps (overrides optim.steps)")
    te.add_argument("--max-steps-this-run", type=int, default=None, help="stop (checkpointed) after this many")
    te.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE", help="config overrides")
    te.set_defaults(func=_cmd_train_encoder)

    td = tr.add_parser("domain", help="the domain network on synthfaces attributes (features for metrics/losses)")
    td.add_argument("--out", required=True, help="run folder (continued if it holds a checkpoint)")
    td.add_argument("--config", default=None, help="YAML experiment config (sections data, model, loss, optim, log)")
    td.add_argument("--steps", type=int, default=None, help="total steps (optim.steps, default 3000)")
    td.add_argument("--batch", type=int, default=None, help="global batch (optim.batch, default 64)")
    td.add_argument("--resolution", type=int, default=None, help="data.resolution (default 64)")
    td.add_argument("--seed", type=int, default=None)
    td.add_argument("--eval-faces", type=int, default=1000)
    td.add_argument("--head-spatial", type=int, default=4, help="heads see the last stage pooled to S×S (0: off)")
    td.add_argument("--blur-prob", type=float, default=None, help="loss.blur_prob (default 0.3)")
    td.add_argument("--lr", type=float, default=None, help="optim.lr (default 2e-3)")
    td.add_argument("--init-from", default=None, help="model folder whose trunk starts this run")
    td.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    td.add_argument("--max-steps-this-run", type=int, default=None, help="stop (checkpointed) after this many")
    td.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE", help="config overrides")
    td.add_argument("--no-resume", action="store_true",
                    help="do not continue the folder's run (refused when it holds checkpoints: choose another --out)")
    td.set_defaults(func=_cmd_train_domain)

    en = sub.add_parser("encode", help="encode a folder of images with a pSp / e4e model: W+ latents + reconstructions")
    en.add_argument("--model", required=True, help="pSp / e4e checkpoint, native folder or shipped name")
    en.add_argument("--images", required=True, help="folder of images (searched recursively)")
    en.add_argument("--out", required=True)
    en.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int, default=8,
                    help="images per forward pass (default 8)")
    en.add_argument("--no-reconstructions", action="store_true", help="write the latents only")
    _add_align_flags(en)
    en.add_argument("--device", default="auto")
    en.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    en.add_argument("--quiet", action="store_true")
    en.set_defaults(func=_cmd_encode)

    tl = sub.add_parser("translate", help="translate a folder of images (sketches, photos, emoji …) into the "
                                          "generator's domain with a pSp / e4e model or an activation-map translator, "
                                          "or edit it in one pass with a pix2pixHD (distilled) translator")
    tl.add_argument("--model", required=True, help="translator: checkpoint, native folder or shipped name")
    tl.add_argument("--images", required=True, help="folder of images (searched recursively) or one image")
    tl.add_argument("--images2", default=None, metavar="B_DIR",
                    help="two-image translators (pix2pixHD mixing / blending): the B images, paired with --images "
                         "by file name")
    tl.add_argument("--out", required=True)
    tl.add_argument("--samples", type=non_negative_int, default=0,
                    help="pSp / e4e: K extra outputs with random fine styles")
    tl.add_argument("--style-seed", type=non_negative_int, default=None,
                    help="the style of this seed (default: the mean w)")
    tl.add_argument("--walk", default=None, metavar="S1,S2,…", help="actmap: a walk through these seeds' styles")
    tl.add_argument("--frames", type=positive_int, default=16,
                    help="frames of a --walk (PNG frames + a GIF per image)")
    tl.add_argument("--style-encoder", default=None, help="actmap: take each image's styles from this pSp / e4e")
    tl.add_argument("--colors", default=None, choices=("style", "input"),
                    help="actmap: 'input' takes the colours from the input (chroma matched, luma kept: a grayscale "
                         "photo comes out gray); default 'style': the colours the style gives")
    _add_align_flags(tl)
    tl.add_argument("--truncation", type=finite_float, default=None,
                    help="truncation psi of sampled styles (pipelines that sample; default 1.0: none)")
    tl.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int, default=8,
                    help="images per forward pass (default 8)")
    tl.add_argument("--device", default="auto")
    tl.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    tl.add_argument("--quiet", action="store_true")
    tl.set_defaults(func=_cmd_translate)

    sm = sub.add_parser("stylemap", help="StyleMapGAN: local edits with a mask, interpolation").add_subparsers(
        dest="stylemap_command", required=True)
    se = sm.add_parser("edit", help="local edits: the masked part of a reference image into each image")
    se.add_argument("--model", required=True, help="a StyleMapGAN checkpoint (official train.py .pt) or folder")
    se.add_argument("--images", required=True, help="folder of images (searched recursively) or one image")
    se.add_argument("--reference", required=True,
                    help="one reference image for all, or a folder of references paired by name")
    se.add_argument("--mask", default=None, help="mask image: white where the reference's part goes")
    se.add_argument("--region", default=None,
                    help="synthfaces regions instead of a mask, e.g. hair or hair,glasses (background, skin, hair, "
                         "eyes, brows, mouth, nose, glasses, beard, clothes)")
    se.add_argument("--space", default="w_plus", choices=("w_plus", "stylemap", "w"),
                    help="mix every stylecode level (w_plus, default) or the stylemap only (stylemap; official: w)")
    se.add_argument("--out", required=True)
    se.set_defaults(func=_cmd_stylemap_edit)
    si = sm.add_parser("interpolate", help="frames (PNG + GIF) from each image to its reference in stylemap space")
    si.add_argument("--model", required=True, help="a StyleMapGAN checkpoint or folder")
    si.add_argument("--images", required=True)
    si.add_argument("--reference", required=True, help="one reference image, or a folder paired by name")
    si.add_argument("--frames", type=positive_int, default=8, help="frames including both ends (default 8)")
    si.add_argument("--out", required=True)
    si.set_defaults(func=_cmd_stylemap_interpolate)

    di = sub.add_parser("directions", help="editing directions: find them on a generator, show them").add_subparsers(
        dest="what", required=True)
    dfd = di.add_parser("find", help="find a direction (InterFaceGAN, mean difference, GANSpace, SeFa) on a generator")
    dfd.add_argument("--generator", required=True, help="generator: checkpoint, native folder or shipped name")
    dfd.add_argument("--method", required=True,
                     choices=("interfacegan", "logistic", "meandiff", "guided", "ganspace", "sefa"),
                     help="guided: InterFaceGAN's direction refined through the generator and the classifier so "
                          "that the other attributes stay (per-row W+)")
    dfd.add_argument("--attribute", default=None,
                     help="supervised methods: an attribute of the classifier, e.g. smile, glasses, "
                          "hair_color=blonde:black")
    dfd.add_argument("--labels-csv", default=None, help="supervised methods: seed,label rows instead of --attribute")
    dfd.add_argument("--classifier", default="synthfaces-domain", help="domain network scoring --attribute")
    dfd.add_argument("--samples", type=positive_int, default=20_000, help="sampled w (default 20000)")
    dfd.add_argument("--fraction", type=finite_float, default=0.02,
                     help="most confident fraction kept at each end (default 0.02, as InterFaceGAN)")
    dfd.add_argument("--condition", nargs="*", default=[], metavar="DIRECTION",
                     help="direction files whose attributes must not change (projected off)")
    dfd.add_argument("--layers", default=None, help="W+ rows the direction moves: all, a-b or a,b,c")
    dfd.add_argument("--component", type=non_negative_int, default=0, help="sefa: eigenvector index (0: largest)")
    dfd.add_argument("--components", type=positive_int, default=32, help="ganspace: components kept")
    dfd.add_argument("--steps", type=positive_int, default=150, help="guided: optimisation steps (default 150)")
    dfd.add_argument("--seed", type=non_negative_int, default=0)
    dfd.add_argument("--name", default=None)
    dfd.add_argument("--out", required=True, help="output folder (native: config.json + model.safetensors)")
    dfd.add_argument("--quiet", action="store_true")
    dfd.set_defaults(func=_cmd_directions_find)
    dsh = di.add_parser("show", help="grid of a direction: rows seeds, columns strengths")
    dsh.add_argument("--generator", required=True)
    dsh.add_argument("--direction", required=True, help="direction file or folder (e4e .pt, .npy, native)")
    dsh.add_argument("--component", type=non_negative_int, default=0, help="GANSpace files: the component")
    dsh.add_argument("--layers", default=None, help="W+ rows to move (default: the direction's own)")
    dsh.add_argument("--seeds", default="0-5")
    dsh.add_argument("--strength", default=None, help="comma list (default: the direction's suggested range)")
    dsh.add_argument("--columns", type=positive_int, default=7, help="strengths when --strength is not given")
    dsh.add_argument("--truncation", type=finite_float, default=0.7)
    dsh.add_argument("--out", required=True, help="PNG grid")
    dsh.set_defaults(func=_cmd_directions_show)

    ex = sub.add_parser("export", help="export a model to another runtime").add_subparsers(dest="what", required=True)
    eo = ex.add_parser("onnx", help="ONNX file of a generator (W+ → images), a pSp / e4e encoder (images → W+), an "
                                    "activation-map translator (images + W+ → images), StyleMapGAN or a pix2pixHD "
                                    "translator, checked against onnxruntime")
    eo.add_argument("--model", required=True, help="shipped name, native folder or checkpoint (e.g. latest_net_G.pth)")
    eo.add_argument("--out", required=True, help="the .onnx file to write")
    eo.add_argument("--batch", default="dynamic", help="dynamic (default: any batch size) or a fixed batch size")
    eo.set_defaults(func=_cmd_export_onnx)

    dist = sub.add_parser("distill", help="StyleGAN2 distillation: paired data from the generator").add_subparsers(
        dest="what", required=True)
    dpr = dist.add_parser("pairs", help="render (−c·d, +c·d) pairs along a direction and keep the confident ones, or "
                                        "style-mixing / blending triplets: a paired folder + a filter report")
    dpr.add_argument("--generator", required=True, help="generator: checkpoint, native folder or shipped name")
    dpr.add_argument("--mode", choices=("edit", "mix", "blend"), default="edit",
                     help="edit (default): attribute pairs; mix: A, B and their style mix; blend: A, B and the "
                          "render of (w_A + w_B) / 2")
    dpr.add_argument("--direction", default=None,
                     help="edit: direction file / folder or shipped name (e.g. smile, synthfaces-64-glasses)")
    dpr.add_argument("--attribute", default=None,
                     help="edit: the attribute the classifier judges (default: the direction's own); without "
                          "--direction a direction is found for it (e.g. smile, glasses, hair_color=blonde:black)")
    dpr.add_argument("--count", type=positive_int, required=True, help="triplets to render (kept ones are fewer)")
    dpr.add_argument("--out", required=True, help="output folder (source/, target/, report.md …)")
    dpr.add_argument("--layers", default=None, help="edit: W+ rows to move (a-b, a,b,c or all; default: the "
                                                    "direction's own)")
    dpr.add_argument("--coeff", type=finite_float, default=None,
                     help="edit: strength c of ±c·d (default: the end of the direction's suggested range)")
    dpr.add_argument("--classifier", default="synthfaces-domain", help="domain network reading the attribute and "
                                                                       "the identity")
    dpr.add_argument("--min-confidence", type=finite_float, default=0.75,
                     help="edit: probability each render must give its side, in (0.5, 1) (default 0.75)")
    dpr.add_argument("--min-identity", type=finite_float, default=None,
                     help="edit: identity similarity a pair needs (default: the --identity-quantile of the run)")
    dpr.add_argument("--identity-quantile", type=finite_float, default=0.1,
                     help="edit without --min-identity: drop pairs below this quantile of the run's identities "
                          "(default 0.1; 0 keeps all)")
    dpr.add_argument("--crossover", type=positive_int, default=None,
                     help="mix: first W+ row taken from B (default num_ws / 2)")
    dpr.add_argument("--both-directions", action="store_true",
                     help="edit: also write the reverse pair (+c·d → −c·d): a model that toggles the attribute")
    dpr.add_argument("--find-method", choices=("logistic", "interfacegan", "meandiff"), default="logistic",
                     help="--attribute without --direction: how to find it (default logistic, as the paper)")
    dpr.add_argument("--find-samples", type=positive_int, default=5000,
                     help="--attribute without --direction: sampled faces (default 5000)")
    dpr.add_argument("--find-fraction", type=finite_float, default=0.02,
                     help="--attribute without --direction: most confident fraction at each end (default 0.02)")
    dpr.add_argument("--seed", type=non_negative_int, default=0, help="first seed (sample i: seed + i)")
    dpr.add_argument("--truncation", type=finite_float, default=1.0)
    dpr.add_argument("--batch-size", type=positive_int, default=16)
    dpr.add_argument("--device", default="auto")
    dpr.add_argument("--overwrite", action="store_true", help="replace an earlier run's outputs in --out")
    dpr.add_argument("--quiet", action="store_true")
    dpr.set_defaults(func=_cmd_distill_pairs)

    me = sub.add_parser("metrics", help="quality metrics").add_subparsers(dest="what", required=True)
    mf = me.add_parser("fd", help="Fréchet distance of a generator to real images (FID with an Inception file)")
    mf.add_argument("--model", required=True, help="generator: checkpoint file, model folder or shipped name")
    mf.add_argument("--real", default="synthfaces", help="'synthfaces' (rendered) or a folder of real images")
    mf.add_argument("--features", default="synthfaces-domain",
                    help="feature network: a domain network (name or folder) → FD[name], or an Inception-v3 "
                         "weights file (pytorch-fid's pt_inception-2015-12-05 → standard FID)")
    mf.add_argument("--n", type=positive_int, default=10_000, help="images per set (default 10000)")
    mf.add_argument("--truncation", type=finite_float, default=1.0)
    mf.add_argument("--seed", type=non_negative_int, default=0, help="seed of the generated set")
    mf.add_argument("--reference", action="store_true", help="also the distance between two real synthfaces sets")
    mf.add_argument("--cache", default=None, help="folder to cache real-set statistics in")
    mf.add_argument("--json", default=None, help="also write the result to this JSON file")
    mf.add_argument("--part", default=None, help=PART_HELP)
    mf.add_argument("--device", default="auto")
    mf.add_argument("--quiet", action="store_true")
    mf.set_defaults(func=_cmd_metrics_fd)

    methods = ("psp", "e4e", "restyle", "optimize", "optimize-e4e", "pti")
    iv = sub.add_parser("invert", help="invert a folder of images into a generator's W+: pSp, e4e, ReStyle, "
                                       "optimisation or PTI (W+ latents + reconstructions; PTI: + tuned weights)")
    iv.add_argument("--method", required=True, choices=methods,
                    help="psp / e4e (encoders), restyle (iterative encoder), optimize (NVlabs' projector recipe from "
                         "w_avg), optimize-e4e (optimisation started from e4e's code), pti (pivotal tuning: a pivot, "
                         "then the generator tuned per image; latents hold the tuned weights)")
    _add_inverter_flags(iv)
    iv.add_argument("--images", required=True, help="folder of images (searched recursively) or one image")
    iv.add_argument("--out", required=True)
    _add_align_flags(iv)
    iv.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int, default=8,
                    help="images per batch (optimisation: each image its own latent; default 8)")
    iv.set_defaults(func=_cmd_invert)

    ed = sub.add_parser("edit", help="edit a folder of images: invert, move along a direction at each strength, "
                                     "render (images, before/after strips, latents)")
    ed._negative_number_matcher = re.compile(r"^-\d[\d.,]*$|^-\.\d[\d.,]*$")  # --strength -3,0,3 is a value
    ed.add_argument("--images", required=True, help="folder of images (searched recursively) or one image")
    ed.add_argument("--inverter", required=True, choices=methods)
    ed.add_argument("--direction", required=True,
                    help="a direction file or folder (native, e4e InterFaceGAN .pt, InterFaceGAN .npy, GANSpace .pt "
                         "with --component) or a shipped direction's name (synthfaces-64: smile, mouth_open, yaw, "
                         "glasses, beard, blond_hair)")
    ed.add_argument("--strength", required=True, metavar="S1,S2,…", type=number_list,
                    help="strengths, comma separated, e.g. -3,0,3 (one image per strength)")
    ed.add_argument("--layers", default=None, metavar="A-B",
                    help="W+ rows to edit ('a-b', 'a,b', 'all'; default: the direction's own range)")
    ed.add_argument("--component", type=non_negative_int, default=None,
                    help="GANSpace components: the component to edit along")
    _add_inverter_flags(ed)
    ed.add_argument("--out", required=True)
    _add_align_flags(ed)
    ed.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int, default=4,
                    help="images per batch (default 4)")
    ed.set_defaults(func=_cmd_edit)

    ev = sub.add_parser("evaluate", help="the comparison table: methods × input kinds × metrics on held-out "
                        "synthfaces (report.md, report.json, charts)")
    ev.add_argument("--generator", default="synthfaces-64", help="generator the methods belong to (default "
                    "synthfaces-64); shipped methods are its {generator}-psp-inversion etc.")
    ev.add_argument("--methods", nargs="+", default=None, metavar="NAME[=MODEL]",
                    help="registered methods (default psp, e4e, actmap, psp-sketch; also stylemapgan, restyle, "
                         "optimize, optimize-e4e, pti) or LABEL=MODEL for a model of your own (shipped name or path)")
    ev.add_argument("--inputs", nargs="+", default=None, metavar="KIND",
                    help="input kinds (default all): reconstruction blur sketch segmentation superres4 superres8 "
                         "inpaint frontalize emoji")
    ev.add_argument("--n", type=int, default=500, help="held-out faces per input kind (default 500)")
    ev.add_argument("--out", default="evaluate_out", help="output folder (default evaluate_out/)")
    ev.add_argument("--seed", type=int, default=None,
                    help="first face seed (default: core.seeds.HELD_OUT_SEED, 10,000,000; lower seeds are training "
                         "faces and refused)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--threads", type=int, default=1,
                    help="CPU threads (default 1: fast on a shared machine, same figures; 0: all cores)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--editing", action="store_true",
                    help="the editing table instead: inverters × directions against synthfaces' ground-truth edits "
                         "(report.md, report.json, tradeoff.png, examples.png)")
    ev.add_argument("--inverters", nargs="+", default=None, metavar="NAME",
                    help="--editing: inverters to compare (default psp e4e optimize optimize-e4e; also restyle, "
                         "pti@PIVOT with PIVOT e4e, restyle, optimize-w, …); --distilled: the encode → edit → decode "
                         "baselines (default e4e psp restyle optimize)")
    ev.add_argument("--directions", nargs="+", default=None, metavar="NAME_OR_FILE",
                    help="--editing: directions (default: the generator's shipped directions)")
    ev.add_argument("--steps", type=positive_int, default=200,
                    help="--editing: optimisation steps of the optimize inverters (default 200)")
    ev.add_argument("--precision", default="bf16", choices=("fp32", "bf16"),
                    help="--editing: the optimize and pti inverters' generator precision (default bf16)")
    ev.add_argument("--pti-steps", type=positive_int, default=100,
                    help="--editing: PTI's tuning steps (default 100; PTI's own 350)")
    ev.add_argument("--pti-rank", type=int, default=8, help="--editing: rank of PTI's tuned deltas (0: dense)")
    ev.add_argument("--distilled", nargs="+", default=None, metavar="MODEL",
                    help="the distillation table instead: one-pass distilled pix2pixHD edits (shipped names or "
                         "RUN/model folders) against encode → edit → decode with the same direction, scored against "
                         "synthfaces' ground-truth edits (report.md, report.json, examples.png)")
    ev.add_argument("--photos", nargs="?", const="bundled", default=None, metavar="DIR",
                    help="real photos (a folder, or scikit-image's bundled face photos without DIR): aligned with "
                         "dlib, translated by --methods, geometry of photo vs translation correlated; grid.png")
    ev.add_argument("--look", default="clean", choices=("clean", "photo"),
                    help="--distilled: give every method the faces as rendered (clean) or drawn as photos (photo: "
                         "out of domain; the ground truth stays the clean edit)")
    ev.add_argument("--fd-reference", type=int, default=2000,
                    help="--distilled: faces rendered with each edit that the FD compares against (default 2000; "
                         "0: no FD)")
    ev.add_argument("--local-editing", action="store_true",
                    help="the local-editing table instead: StyleMapGAN region transplants (A with B's hair, glasses, "
                         "beard, mouth) against synthfaces' ground truth, beside pSp W+ mixing and a pixel paste")
    ev.add_argument("--model", default=None,
                    help="--local-editing: the StyleMapGAN (default {generator}-stylemapgan)")
    ev.add_argument("--regions", nargs="+", default=["hair", "glasses", "beard", "mouth"],
                    choices=("hair", "glasses", "beard", "mouth"), help="--local-editing: regions (default all four)")
    ev.add_argument("--baseline", default="psp",
                    help="--local-editing: the W+ baseline's inverter (default psp; none: no baseline)")
    ev.set_defaults(func=_cmd_evaluate)

    d = sub.add_parser("demo", help="the project's demo: samples, truncation sweep, style mixing")
    d.add_argument("--out", default="demo_out", help="output folder (default demo_out/)")
    d.add_argument("--model", default=None, help="generator to use (default: the best one available)")
    d.add_argument("--device", default="auto")
    d.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    d.set_defaults(func=_cmd_demo)

    st = sub.add_parser("studio", help="the web studio: generate, translate (draw), edit, local edit, compare — "
                                       "one page on 127.0.0.1, offline")
    st.add_argument("--model", nargs="+", default=None, metavar="NAME_OR_PATH",
                    help="models to load (any the CLI loads; default: every shipped model)")
    st.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    st.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    st.add_argument("--max-upload-mb", type=float, default=8.0, help="largest upload accepted (default 8 MB)")
    st.add_argument("--max-upload-megapixels", type=float, default=16.8,
                    help="largest decoded upload, checked before decoding (default 16.8 MP, 4096 × 4096)")
    st.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                    help="autocast around model calls (default fp32: at 64 px bf16 gains nothing)")
    st.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    st.set_defaults(func=_cmd_studio)
    return p


def _version() -> str:
    from stylebridge import __version__

    return __version__


def _error_text(exc: BaseException) -> str:
    """One line for an error: 'PATH: cause' for OS errors (full disk, permissions, a file in the way)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
        return text + (f" ({exc.filename2})" if exc.filename2 is not None else "")
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return " ".join(str(msg).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # bad arguments (one line, exit 2), --help, --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    # Warnings (skipped files, which model a name resolved to) go to stderr as one line each.
    log = logging.getLogger("stylebridge")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    log.addHandler(handler)
    try:
        return args.func(args)
    except (CheckpointError, ValueError, KeyError, ImportError, OSError) as exc:
        print(f"stylebridge {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:  # SIGINT / SIGTERM during training: checkpointed, but not finished
        print(f"stylebridge {args.command}: {exc}", file=sys.stderr)
        return 128 + int(exc.signum)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    raise SystemExit(main())
