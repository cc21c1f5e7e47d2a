"""Flower ServerApp, the curious wrapper, aggregators and detectors (see README: layout)."""
