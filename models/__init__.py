"""User code of the taxi model: features, preprocessing, model builders and the Trainer/Tuner entry points.

Components reference these functions by dotted path (``models.trainer.run_fn``), so this package must be
importable wherever a component runs: the local venv, or the pipeline container image.
"""
