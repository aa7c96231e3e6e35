"""Leaf helpers shared by every layer: errors, device, seeding, checkpoints, distributed, logging."""
