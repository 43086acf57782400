"""The method as objects, with no config in sight: the LightningModules (parent and contour
training), one-shot fine-tuning and the segmenter, contour sources, the first mask from a box,
and the Lightning callbacks, loggers and progress bars they use."""
