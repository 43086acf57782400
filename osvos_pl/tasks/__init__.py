"""LightningModules (parent/contour training, online fine-tuning) and their helpers."""
