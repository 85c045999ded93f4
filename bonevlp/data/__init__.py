"""Datasets: the synthetic world, loaders of the official layouts, splits and image decoding."""
