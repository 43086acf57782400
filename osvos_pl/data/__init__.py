"""DAVIS reading, the generated default dataset, augmentation and the DataModule."""
