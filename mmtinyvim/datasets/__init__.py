"""Datasets: demo-data generator and dataset classes with clear errors.

The dataset modules import their toolkit, so configs import the one they
need (``mmtinyvim.datasets.coco``, ``.ade``, ``.imagenet``).
:mod:`.size_limit` (the image-size bound of the test pipelines) imports none
and is registered by ``import mmtinyvim``.
"""
