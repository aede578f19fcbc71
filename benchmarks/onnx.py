"""onnxruntime vs torch, fp32, ms per image side by side in one run, for every shipped model family.

For each model: export it (`stylebridge.formats.onnx.export_onnx`, dynamic batch) into a temporary folder, check that
onnxruntime reproduces torch (max |diff| < 1e-4, `check_onnx`), then time both on the same inputs (`OnnxPlan.draw`):
torch through the model's own API (``OnnxPlan.reference``, as ``stylebridge`` runs it; no autograd) and onnxruntime's
CPU provider with as many threads as torch. Best of ``--repeats`` after a warm-up; batch 1 and 8.

    python benchmarks/onnx.py                                   # every shipped family
    python benchmarks/onnx.py --models synthfaces-64 --batches 1 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_time, machine_info, write_results

# This file is named onnx.py (the name) and Python puts its folder first on sys.path: drop the folder
# again, or `import onnx` would import this script instead of the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.modules.pop("onnx", None)

import stylebridge  # noqa: E402
from stylebridge.formats.onnx import check_onnx, export_onnx, onnx_plan  # noqa: E402

MODELS = ("synthfaces-64", "synthfaces-64-psp-inversion", "synthfaces-64-e4e-inversion",
          "synthfaces-64-restyle-e4e-inversion", "synthfaces-64-actmap", "synthfaces-64-stylemapgan",
          "synthfaces-64-distill-smile")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for both (0: torch's default)")
    args = p.parse_args()
    import onnxruntime as ort

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    rows = []
    print(f"{'model':36s} {'batch':>5s} {'torch ms/img':>13s} {'onnxruntime ms/img':>19s} {'ratio':>6s} "
          f"{'max diff':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = stylebridge.load(name).float().eval()
            path = export_onnx(model, Path(tmp) / f"{name}.onnx")
            diff = max(check_onnx(model, path, batches=(1, 4)).values())
            if diff >= 1e-4:
                raise SystemExit(f"{name}: onnxruntime differs from torch by {diff:.1e}")
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            plan = onnx_plan(model)
            for b in args.batches:
                inputs = plan.draw(b, torch.Generator().manual_seed(0))
                feed = {k: x.numpy() for (k, _), x in zip(plan.inputs, inputs)}

                def run_torch(inputs=inputs, ref=plan.reference):
                    with torch.no_grad():
                        ref(*inputs)

                t_torch = best_time(run_torch, args.repeats) * 1000 / b
                t_ort = best_time(lambda feed=feed, s=sess: s.run(None, feed), args.repeats) * 1000 / b
                rows.append({"model": name, "batch": b, "torch_ms_per_image": t_torch, "ort_ms_per_image": t_ort,
                             "max_abs_diff": diff})
                print(f"{name:36s} {b:5d} {t_torch:13.2f} {t_ort:19.2f} {t_torch / t_ort:6.2f} {diff:9.1e}")
    path = write_results("onnx", {"machine": machine_info(), "threads": threads, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
