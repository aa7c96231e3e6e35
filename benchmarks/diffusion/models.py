"""The models the diffusion benchmark times: the paper's sizes (or --tiny's), the paper configs' DDPM and
cDDPM, the methods as those configs evaluate them, and a bare checkpoint's weights loaded into them."""
from __future__ import annotations

import argparse
import copy

import torch

from model_zoo.diffusion_models import DDPM, ConditionalDDPM, EncoderSettings, NoiseSettings, ReconstructionSettings
from model_zoo.unet_adm import UNetArchitecture

VOLUME_SLICES = 50
SIZE = 96
TINY = dict(image_size=32, unet=UNetArchitecture(base_channels=32, num_res_blocks=1))  # --tiny: checks the script runs, not the paper's cost


def sizes(args: argparse.Namespace) -> dict:
    """Size arguments: the paper's (only image_size differs from the defaults) or --tiny's."""
    return dict(TINY) if args.tiny else dict(image_size=SIZE)


def cddpm_sizes(args: argparse.Namespace) -> dict:
    """`sizes` plus the cDDPM's encoder: the paper's ResNet-50 (512-d condition) or --tiny's ResNet-18."""
    encoder = EncoderSettings(arch="resnet18", cond_dim=64) if args.tiny else EncoderSettings(cond_dim=512)
    return {**sizes(args), "encoder": encoder}


def randomize_zero_layers(net: torch.nn.Module, seed: int = 0) -> None:
    """Give ADM's zero-initialised output layers small random weights: an untrained UNet's
    output is identically zero, which would make any output comparison vacuous."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def paper_models(args: argparse.Namespace) -> tuple[DDPM, ConditionalDDPM]:
    """The paper configs' DDPM and cDDPM (projects/*/configs/*_paper.yaml) with random weights, zero layers randomised."""
    torch.manual_seed(0)
    paper = dict(max_batch_size=args.max_batch, noise_source=NoiseSettings(kind="opensimplex"),
                 reconstruction=ReconstructionSettings(clamp=False))
    ddpm = DDPM(**sizes(args), **paper).eval()
    cddpm = ConditionalDDPM(**cddpm_sizes(args), **paper).eval()
    for model in (ddpm, cddpm):
        randomize_zero_layers(model.unet)
    return ddpm, cddpm


def method_cases(ddpm: DDPM | None, cddpm: ConditionalDDPM | None, slices: int
                 ) -> dict[str, tuple[torch.nn.Module, int, object]]:
    """{method: (model, reconstructions per slice, scorer)} as the paper configs evaluate them
    (projects/*/configs/*_paper.yaml): one UNet batch per call, capped by the model's max_batch_size.
    The DDPM's rows need a DDPM, the cDDPM's a cDDPM (a checkpoint holds one of them)."""
    from optim.scoring import L1Scorer, MahalanobisScorer, SSIMEnsembleScorer

    cases: dict[str, tuple[torch.nn.Module, int, object]] = {}
    if ddpm is not None:
        one = copy.deepcopy(ddpm)
        one.reconstruction_mode, one.t_test = "one_step", 500
        ssim_dims = 3 if slices >= 13 else 2  # the 3D SSIM window (13) needs 13 slices; fewer: per slice
        cases["DDPM one-step (L1)"] = (one, 1, L1Scorer())
        cases[f"DDPM + SSIM ensemble ({ssim_dims}D)"] = (one, 1, SSIMEnsembleScorer(spatial_dims=ssim_dims))
    if cddpm is not None:
        ens, one = copy.deepcopy(cddpm), copy.deepcopy(cddpm)
        ens.reconstruction_mode = "ensemble"
        one.reconstruction_mode, one.t_test = "one_step", 499
        cases["cDDPM ENS (3 levels, L1)"] = (ens, 1, L1Scorer())
        cases["cDDPM + MHD (10 one-step)"] = (one, 10, MahalanobisScorer(num_reconstructions=10))
    return cases


def load_weights(path: str, *models: torch.nn.Module) -> list[torch.nn.Module]:
    """A checkpoint's `model_weights` into each model it fits (a DDPM or cDDPM of the paper size without a
    stored config); the models it fitted. None fitting is an error, never a silent run on random weights."""
    state = torch.load(path, map_location="cpu", weights_only=True)["model_weights"]
    fitted = [m for m in models if set(state) == set(m.state_dict())]
    if not fitted:
        raise SystemExit(f"{path}: its weights fit neither the paper-size DDPM nor the cDDPM, and it stores no config "
                         "to build its own model from")
    for model in fitted:
        model.load_state_dict(state)
    return fitted
