"""Datasets: demo-data generator and dataset classes with clear errors.

The dataset modules import their toolkit, so configs import the one they
need (``mmtinyvim.datasets.coco``, ``.ade``, ``.imagenet``).
"""
