"""Two gloo processes with half the batch each end with the same weights as one process."""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core.training.trainer import Trainer, TrainingContext
from dl_utils.distributed import DistributedContext
from model_zoo.autoencoder import ConvAutoencoder
from optim.losses.reconstruction import ReconstructionLoss
from tests.core.fakes import SyntheticDataModule


def _train(ctx: DistributedContext) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = ConvAutoencoder(image_size=16, channels=(8, 16), latent_dim=8, norm_groups=4)
    context = TrainingContext(model=model, data_module=SyntheticDataModule(batch_size=8), device=torch.device("cpu"), dist=ctx)
    trainer = Trainer(context=context, nr_epochs=2, optimizer_params={"lr": 1e-3},
                      loss=ReconstructionLoss("l2"), progress=False)
    trainer.train()
    return {k: v.clone() for k, v in model.state_dict().items()}


def _worker(rank: int, world: int, port: int, out_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        weights = _train(DistributedContext(rank=rank, world_size=world, local_rank=rank))
        if rank == 0:
            torch.save(weights, out_path)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process(tmp_path):
    single = _train(DistributedContext())
    out = tmp_path / "ddp.pt"
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True, start_method="spawn")
    ddp = torch.load(out, weights_only=True)
    assert single.keys() == ddp.keys()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=key)
    # and training actually moved the weights
    torch.manual_seed(0)
    init = ConvAutoencoder(image_size=16, channels=(8, 16), latent_dim=8, norm_groups=4).state_dict()
    assert any(not torch.allclose(init[k], single[k]) for k in single if init[k].is_floating_point())
