"""Multi-camera reference for accuracy: calibration, 2D landmarks in every view, sync, left/right
repair, triangulation, reference angles (see pipeline.py; CLI: python -m engines.reference)."""
