"""Data layer: NIfTI I/O, CSV splits, preprocessing, augmentation, synthetic anomalies, datasets."""
