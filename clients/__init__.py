"""Flower ClientApps: one simulated node per study participant."""
