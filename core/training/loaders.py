"""The trainer's DataLoaders from a training data module: the per-process batch, the check that a
split gives at least one batch, and the distributed sampler (used for one process too, so the
sample order is the same for any number of ranks)."""
from __future__ import annotations

from torch.utils.data import DataLoader, DistributedSampler

from core.training.contracts import TrainingDataModule
from dl_utils.distributed import DistributedContext
from dl_utils.errors import UserInputError
from dl_utils.termination import worker_ignores_sigterm


def per_rank_batch_size(data_module: TrainingDataModule, world_size: int) -> int:
    """The data module's global batch split over `world_size` processes (refused if it does not divide)."""
    global_batch = int(data_module.batch_size)
    if global_batch % world_size:
        raise UserInputError(f"batch_size {global_batch} is not divisible by the {world_size} processes; "
                             "set the data loader's batch_size to a multiple of --nproc_per_node")
    return global_batch // world_size


def check_training_batches(data_module: TrainingDataModule, world_size: int) -> None:
    """Refuse a training split that gives no batch: empty, or (`drop_last`) smaller than one
    process's batch, which would end every epoch without a step and still write a "best" model."""
    samples = len(data_module.train_dataset())
    if samples == 0:
        raise UserInputError("the training split is empty; check trainer.data_loader's train CSV")
    per_rank, batch = -(-samples // world_size), per_rank_batch_size(data_module, world_size)  # the sampler pads
    if data_module.drop_last and per_rank < batch:
        raise UserInputError(f"{samples} training samples give {per_rank} per process, fewer than its batch of {batch}, "
                             "and drop_last: true drops that incomplete batch, so no step would run; lower batch_size "
                             "or set drop_last: false")


def train_loader(data_module: TrainingDataModule, dist: DistributedContext, seed: int
                 ) -> tuple[DataLoader, DistributedSampler]:
    """This process's shuffled training loader (workers ignore SIGTERM: the main process stops them)."""
    check_training_batches(data_module, dist.world_size)
    dataset = data_module.train_dataset()
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed)
    loader = DataLoader(dataset, batch_size=per_rank_batch_size(data_module, dist.world_size), sampler=sampler,
                        num_workers=data_module.num_workers, drop_last=data_module.drop_last,
                        worker_init_fn=worker_ignores_sigterm)
    return loader, sampler


def val_loader(data_module: TrainingDataModule) -> DataLoader | None:
    """The validation loader in order, in the main process; None without a validation split."""
    dataset = data_module.val_dataset()
    if dataset is None or len(dataset) == 0:
        return None
    return DataLoader(dataset, batch_size=int(data_module.batch_size), shuffle=False, num_workers=0)
