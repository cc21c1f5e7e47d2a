"""Backdoor triggers for HAR windows (training-time poisoning and test-time activation).

Subpackages: :mod:`attacks.backdoor.diffusion` (IMU-DM-CLIP-style generated triggers).
"""
