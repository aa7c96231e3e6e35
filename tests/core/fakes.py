"""Tiny in-memory data module and models for core tests."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset


class SyntheticSlices(Dataset):
    """Deterministic (1, H, W) images; item i is the same in every process."""

    def __init__(self, n: int, size: int = 16, offset: int = 0):
        g = torch.Generator().manual_seed(1234 + offset)
        self.images = torch.rand(n, 1, size, size, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.images[index]
        return {"image": image, "mask": torch.ones_like(image)}


class SyntheticDataModule:
    def __init__(self, n_train: int = 32, n_val: int = 8, size: int = 16, batch_size: int = 8):
        self.batch_size = batch_size
        self.num_workers = 0
        self.drop_last = False
        self._train = SyntheticSlices(n_train, size)
        self._val = SyntheticSlices(n_val, size, offset=1)

    def train_dataset(self) -> Dataset:
        return self._train

    def val_dataset(self) -> Dataset:
        return self._val
