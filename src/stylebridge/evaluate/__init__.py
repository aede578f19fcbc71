"""Evaluation on synthfaces' exact ground truth: the `stylebridge evaluate` table and the model-card figures.

* `evaluate.inputs`: the input kinds (rendered face, blur, sketch, segmentation, superres ×4/×8, inpainting,
  frontalization, emoji) of held-out faces, each with its exact target;
* `evaluate.methods`: the method registry (`register_method`; psp, e4e, actmap, psp-sketch built in; any model with
  an image pipeline as ``LABEL=MODEL``);
* `evaluate.benchmark`: `run_evaluation`, every method × input kind × metric;
* `evaluate.report`: report.json / report.md / report.png / examples.png (`evaluate_to_folder`, `write_report`);
* `evaluate.encoder`, `evaluate.translation`: the per-model figures of the encoder and translator model cards.
"""
