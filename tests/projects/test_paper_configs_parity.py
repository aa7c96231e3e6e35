"""The paper configs state the originals' choices (recorded from their code, see
tests/fixtures/parity/SOURCES.md); our variants are one flag away."""

from pathlib import Path

import pytest
import torch

from core.config.configurator import load_config
from model_zoo.diffusion_models import DDPM, ConditionalDDPM

ROOT = Path(__file__).resolve().parents[2]
DDPM_PAPER = ROOT / "projects/DDPM/configs/ddpm_paper.yaml"
CDDPM_PAPER = ROOT / "projects/cDDPM/configs/cddpm_paper.yaml"
SPARK_PAPER = ROOT / "projects/cDDPM/configs/spark_pretrain_paper.yaml"
SSIM_PAPER = ROOT / "projects/SSIM/configs/ssim_ensemble_paper.yaml"
MHD_PAPER = ROOT / "projects/MHD/configs/mhd_paper.yaml"
VOLUME_PAPERS = [DDPM_PAPER, CDDPM_PAPER, SSIM_PAPER, MHD_PAPER]
PROTOCOL = ROOT / "projects/common/paper_evaluation.yaml"
# M src/models/DDPM_2D.test_step: t = test_timesteps - 1 = 499, diffusion(t=t-1): index 498.
ORIGINAL_MHD_T_INDEX = 498
# C src/models/DDPM_2D.test_step: ENS levels t in (250, 500, 750) run at t - 1.
ORIGINAL_ENS_T_INDICES = (249, 499, 749)


def _model_params(path: Path) -> dict:
    return load_config(path)["model"]["params"]


@pytest.mark.parametrize("path", VOLUME_PAPERS, ids=lambda p: p.stem)
def test_volume_paper_configs_share_one_protocol_and_data_place(path):
    sources: list[Path] = []
    config = load_config(path, sources)
    assert PROTOCOL.resolve() in [s.resolve() for s in sources]
    protocol = load_config(PROTOCOL)
    assert config["trainer"]["data_loader"]["params"]["data_root"] == protocol["trainer"]["data_loader"]["params"]["data_root"]
    evaluation = config["downstream_tasks"]["anomaly_detection"]
    assert evaluation["data_loader"]["datasets"] == protocol["downstream_tasks"]["anomaly_detection"]["data_loader"]["datasets"]
    assert evaluation["params"]["slice_batch_size"] >= 50  # a whole volume per reconstruct call
    for own in (path, *[s for s in sources if s.resolve() != PROTOCOL.resolve()]):  # paths only in the protocol
        text = own.read_text()
        assert "train_csv:" not in text and "datasets:" not in text, own


@pytest.mark.parametrize("path", VOLUME_PAPERS, ids=lambda p: p.stem)
def test_originals_noise_and_unclamped_output(path):
    params = _model_params(path)
    assert params["noise"] == "opensimplex" and params["simplex_fp16"] is True
    assert (params["simplex_octaves"], params["simplex_persistence"], params["simplex_frequency"]) == (6, 0.8, 64)
    assert params["clamp_reconstruction"] is False


def test_precision_ddpm_fp32_cddpm_and_spark_amp():
    assert load_config(DDPM_PAPER)["trainer"]["params"]["amp"] is False
    assert load_config(CDDPM_PAPER)["trainer"]["params"]["amp"] is True
    assert load_config(SPARK_PAPER)["trainer"]["params"]["amp"] is True


def test_cddpm_paper_encoder_and_condition_size():
    config = load_config(CDDPM_PAPER)
    params = config["model"]["params"]
    assert (params["cond_dim"], params["encoder_drop_path_rate"], params["encoder_zero_init_last"]) == (512, 0.05, True)
    # "+ SSL" by default: the encoder exported by the newest spark_pretrain_paper.yaml run
    spark_export = load_config(SPARK_PAPER)["trainer"]["params"]["export_weights"]["backbone"]
    assert config["trainer"]["params"]["init_weights"] == {"encoder.backbone": f"runs/cDDPM/spark_pretrain_paper/*/{spark_export}"}
    with torch.device("meta"):
        model = ConditionalDDPM(**params)
    assert sum(p.numel() for p in model.unet.parameters()) == 44_068_481
    assert sum(p.numel() for p in model.encoder.parameters()) == 24_550_848


def test_spark_paper_raw_pixels_without_augmentation():
    config = load_config(SPARK_PAPER)
    params = config["model"]["params"]
    assert params["normalize_target_patches"] is False
    assert (params["drop_path_rate"], params["zero_init_last"]) == (0.05, True)
    augmentation = config["trainer"]["data_loader"]["params"]["augmentation"]
    assert all(p == 0.0 for p in augmentation.values())


def test_ssim_and_mhd_paper_scorers_pad_as_the_originals():
    ssim = load_config(SSIM_PAPER)["downstream_tasks"]["anomaly_detection"]["params"]["scorer"]
    assert ssim["class_name"] == "SSIMEnsembleScorer" and ssim["params"]["padding"] == "reflect"
    mhd = load_config(MHD_PAPER)["downstream_tasks"]["anomaly_detection"]["params"]
    assert mhd["scorer"]["params"]["ssim_padding"] == "reflect" and mhd["scorer"]["params"]["num_reconstructions"] == 10
    assert mhd["map_postprocessing"] == [] and mhd["binary_postprocessing"] == []


def test_mhd_and_ens_noise_level_indices_match_the_originals():
    tiny = {"base_channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1, "image_size": 16, "num_head_channels": 8, "num_groups": 4}
    mhd = _model_params(MHD_PAPER)
    assert mhd["reconstruction_mode"] == "one_step"
    model = DDPM(**tiny, t_test=mhd["t_test"])
    assert model.diffusion._index(model.t_test) == ORIGINAL_MHD_T_INDEX
    cddpm = _model_params(CDDPM_PAPER)
    assert tuple(model.diffusion._index(t) for t in cddpm["ensemble_timesteps"]) == ORIGINAL_ENS_T_INDICES


@pytest.mark.parametrize("path", VOLUME_PAPERS, ids=lambda p: p.stem)
def test_paper_threshold_search_runs_on_raw_maps_and_test_sets_load_lazily(path):
    """The originals' bisection thresholds the raw maps (components removed only for the final
    Dice: tests/optim/metrics/test_metrics_parity.py pins that search); paper-scale test sets
    are read when scored, not kept in memory."""
    task = load_config(path)["downstream_tasks"]["anomaly_detection"]
    assert task["params"]["search_with_binary_postprocessing"] is False
    assert task["data_loader"]["params"]["cache"] is False
