"""Evaluation on synthfaces' exact ground truth: the `stylebridge evaluate` table and the model-card figures."""
