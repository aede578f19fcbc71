"""Re-measure the attribute-accuracy figures of the shipped encoders' cards with the current synthfaces-domain heads.

The domain network's trunk (features, distance, similarity: every MSE, perceptual, identity and Fréchet figure) is
unchanged when only its heads are retrained (``model.freeze_trunk``), but its ``predict`` changes, and with it the
cards' "attribute accuracy" line. This re-runs `evaluate_encoder` on the same 500 held-out faces (fp32), stores the
new figures in each ``eval.json`` under ``"attributes_current_heads"`` and rewrites the card's line.

    python scripts/remeasure_attributes.py
"""

from __future__ import annotations

import json
import re

from stylebridge.core import registry
from stylebridge.core.atomic import atomic_write_text
from stylebridge.evaluate.encoder import evaluate_encoder

CARDS = {"synthfaces-64-psp-inversion": "inversion", "synthfaces-64-e4e-inversion": "inversion",
         "synthfaces-64-psp-sketch": "sketch"}


def main() -> None:
    for name, task in CARDS.items():
        folder = registry.WEIGHTS_DIR / name
        ev = json.loads((folder / "eval.json").read_text())
        rep = evaluate_encoder(name, task=task, n=ev["fp32"]["n"], timing=False, progress=False)
        old = ev["fp32"]["attributes"]
        if abs(rep["mse"] - ev["fp32"]["mse"]) > 1e-4:  # the same faces and weights, or the comparison is void
            raise SystemExit(f"{name}: MSE {rep['mse']:.5f} differs from the card's {ev['fp32']['mse']:.5f}")
        ev["attributes_current_heads"] = rep["attributes"]
        atomic_write_text(folder / "eval.json", json.dumps(ev, indent=1) + "\n")
        card = (folder / "MODEL_CARD.md").read_text()
        a = rep["attributes"]
        line = (f"| attribute accuracy (mean of 23) | {a['accuracy_mean']:.3f} (targets: "
                f"{a['accuracy_mean_on_targets']:.3f}); with the domain network's first heads "
                f"{old['accuracy_mean']:.3f} (targets {old['accuracy_mean_on_targets']:.3f}) | synthfaces-domain "
                "predict (region heads, 2026-12-02; `eval.json` → attributes_current_heads) |")
        card = re.sub(r"^\| attribute accuracy \(mean of 23\) \|.*$", line, card, count=1, flags=re.M)
        atomic_write_text(folder / "MODEL_CARD.md", card)
        print(f"{name}: {old['accuracy_mean']:.3f} → {a['accuracy_mean']:.3f} "
              f"(targets {old['accuracy_mean_on_targets']:.3f} → {a['accuracy_mean_on_targets']:.3f})")


if __name__ == "__main__":
    main()
