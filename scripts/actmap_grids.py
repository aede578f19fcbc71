"""The picture grids of the synthfaces-64-actmap card (run from the repository root):

    python scripts/actmap_grids.py [--model synthfaces-64-actmap] [--out docs]

``docs/synthfaces-64-actmap_synthfaces.png``: per input kind (rendered face, sketch, segmentation map, photo-style,
grayscale close-up), 4 held-out faces as rows of input | each method | ground truth.
``docs/synthfaces-64-actmap_emoji.png``: 24 hand-labelled Noto emoji (`data.emoji.EXPRESSIONS`) as rows of
emoji | each method. Methods: the translator with the mean w and with e4e's styles, pSp and e4e inversion, pSp sketch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylebridge.core.imageio import make_grid, save_image, to_tensor
from stylebridge.core.seeds import HELD_OUT_SEED
from stylebridge.data.emoji import EXPRESSIONS, render_emoji
from stylebridge.evaluate.inputs import InputBatch, make_inputs
from stylebridge.evaluate.methods import build_method

KINDS = ("reconstruction", "sketch", "segmentation", "photo", "closeup")
METHODS = ("actmap", "actmap-e4e", "psp", "e4e", "psp-sketch")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="synthfaces-64-actmap")
    p.add_argument("--out", default="docs")
    p.add_argument("--faces", type=int, default=4, help="faces per input kind")
    args = p.parse_args()
    torch.set_num_threads(1)
    methods = [build_method(m, args.model if m.startswith("actmap") else None, "synthfaces-64", torch.device("cpu"))
               for m in METHODS]
    rows = []
    seeds = list(range(HELD_OUT_SEED + 7, HELD_OUT_SEED + 7 + args.faces))
    with torch.no_grad():
        for kind in KINDS:
            b = make_inputs(kind, seeds)
            outs = [m.translate(b).clamp(-1, 1) for m in methods]
            for i in range(len(seeds)):
                rows += [b.rgb[i], *[o[i] for o in outs], b.target[i]]
        out = Path(args.out)
        save_image(make_grid(torch.stack(rows), nrow=len(METHODS) + 2), out / "synthfaces-64-actmap_synthfaces.png")
        labelled = [(n, img) for n, img in render_emoji(64) if n in EXPRESSIONS]
        idx = torch.linspace(0, len(labelled) - 1, 24).round().long().tolist()
        x = torch.stack([to_tensor(labelled[i][1]) for i in idx])
        b = InputBatch("emoji", x, x)
        outs = [m.translate(b).clamp(-1, 1) for m in methods if m.name != "psp-sketch"]
        rows = [t for i in range(len(x)) for t in (x[i], *[o[i] for o in outs])]
        save_image(make_grid(torch.stack(rows), nrow=len(outs) + 1), out / "synthfaces-64-actmap_emoji.png")


if __name__ == "__main__":
    main()
