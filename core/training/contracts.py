"""What the trainer asks of a model and of its data (`typing.Protocol`s): the contracts a new
method or data module fills to be trained by `core.training.trainer.Trainer`."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor
from torch.utils.data import Dataset


@runtime_checkable
class ModelWithOwnLoss(Protocol):
    """A model that computes its own training loss (the diffusion models, Spark): used when the
    trainer has no `loss` configured."""

    def training_loss(self, x: Tensor) -> dict[str, Tensor] | Tensor: ...


@runtime_checkable
class EpochSeeded(Protocol):
    """A training data set whose items are drawn from the epoch's randomness (data/)."""

    def set_epoch(self, epoch: int) -> None: ...


@runtime_checkable
class TrainingDataModule(Protocol):
    """A training data module (config `trainer.data_loader`, data/): its two splits and how the
    trainer batches them; the trainer builds the DataLoaders (samplers, DDP).

    batch_size: the global batch (split over the processes); num_workers: loader processes of the
    training split; drop_last: drop the last incomplete training batch (the originals' loaders).
    `core.run.assembly` checks a built data module against this before a run folder exists;
    `tests/data/test_data_module_contract.py` checks every data module of data/ (discovered)."""

    batch_size: int
    num_workers: int
    drop_last: bool

    def train_dataset(self) -> Dataset: ...

    def val_dataset(self) -> Dataset | None: ...


def data_module_problem(data_module: Any) -> str | None:
    """Why a built data module does not fill `TrainingDataModule`, in words (None: it does): a
    member missing, or a setting of the wrong type or range (a one-line config error before any output)."""
    if not isinstance(data_module, TrainingDataModule):
        members = ("batch_size", "num_workers", "drop_last", "train_dataset", "val_dataset")
        return f"has no {', '.join(m for m in members if m not in dir(data_module))}; it is not a training data module"
    settings = {"batch_size": (data_module.batch_size, 1), "num_workers": (data_module.num_workers, 0)}
    for name, (value, minimum) in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            return f"{name} is {value!r}; a training data module's {name} is an integer >= {minimum}"
    if not isinstance(data_module.drop_last, bool):
        return f"drop_last is {data_module.drop_last!r}; a training data module's drop_last is true or false"
    return None
