"""RA's perceptual anomaly map: CLAHE residual weighted by two smoothed LPIPS maps.

Bercea et al., MIDL 2023 (ci-ber/RA, its DownstreamEvaluator): with x and rec clamped to
[0, 1], ``map = |CLAHE(rec) - CLAHE(x)| * G(LPIPS(x, rec)) * G(LPIPS(CLAHE(x), CLAHE(rec)))``,
LPIPS = SqueezeNet LPIPS with spatial maps, G = Gaussian smoothing (sigma 2), CLAHE =
``skimage.exposure.equalize_adapthist`` per axial slice.

Backbone weights: the ``lpips`` package ships its linear layers; the ImageNet SqueezeNet
trunk is torchvision's ``squeezenet1_1-b8a52dc0.pth``, read from the torch hub checkpoint
directory (or ``backbone_weights``) and never downloaded here. The file's sha256 is checked
before it is loaded: any other SqueezeNet 1.1 state dict would load without complaint and give
maps that are not the paper's. ``backbone_sha256: null`` skips the check, and only together
with a ``backbone_weights`` path: someone's own trunk, named on purpose.
"""
from __future__ import annotations

import enum
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import lpips
import numpy as np
import torch
from skimage.exposure import equalize_adapthist
from torch import Tensor, nn

from dl_utils.checkpoint import file_sha256
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_ranges import BatchSize, GridSide, HistogramBins, Probability, Reconstructions, Seed, Sigma, Truncate
from dl_utils.param_types import check_fields
from optim.scoring._checks import check_inputs, check_num_reconstructions
from optim.scoring.gaussian import gaussian_filter_bank

BACKBONE_FILE = "squeezenet1_1-b8a52dc0.pth"
BACKBONE_URL = f"https://download.pytorch.org/models/{BACKBONE_FILE}"
BACKBONE_SHA256 = "b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b"
"""sha256 of torchvision's file (its name carries the first 8 hex digits, torch hub's own check)."""
MIN_SLICE_SIDE = 17
"""Smallest slice side SqueezeNet 1.1's strided conv and three ceil-mode pools accept."""


class Backbone(enum.StrEnum):
    """Weights of LPIPS's SqueezeNet trunk."""

    IMAGENET = "imagenet"
    RANDOM = "random"  # for tests only: maps are then not the paper's


def default_backbone_path() -> Path:
    """Where torchvision would cache the SqueezeNet 1.1 weights: ``<torch hub dir>/checkpoints/``."""
    return Path(os.path.join(torch.hub.get_dir(), "checkpoints", BACKBONE_FILE))


def packaged_linear_layers_path() -> Path:
    """The ``lpips`` package's own SqueezeNet linear-layer weights (shipped in its wheel)."""
    return Path(lpips.__file__).parent / "weights" / "v0.1" / "squeeze.pth"



def load_squeezenet_trunk(net: nn.Module, path: Path) -> None:
    """Load torchvision's SqueezeNet 1.1 state dict (``features.<i>.*``) into lpips's sliced trunk.

    lpips keeps ``features[i]`` as child ``str(i)`` of one of its ``slice<k>`` blocks.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    owner = {
        child: slice_name
        for slice_name, block in net.named_children()
        for child, _ in block.named_children()
    }
    mapped = {}
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        index, _, param = rest.partition(".")
        if prefix == "features" and index in owner:
            mapped[f"{owner[index]}.{index}.{param}"] = value
    try:
        net.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise UserInputError(
            f"{path}: not torchvision's SqueezeNet 1.1 weights ({BACKBONE_URL}): {str(err).splitlines()[0]}"
        ) from None


def clahe_slices(slices: np.ndarray, *, kernel_size: int | None, clip_limit: float, nbins: int) -> np.ndarray:
    """``equalize_adapthist`` applied to each slice of ``(D, H, W)`` in [0, 1] -> ``(D, H, W)``."""
    return np.stack(
        [
            equalize_adapthist(s, kernel_size=kernel_size, clip_limit=clip_limit, nbins=nbins)
            for s in slices
        ]
    ).astype(np.float32)


@dataclass(frozen=True)
class RAPerceptualScorer:
    """RA's anomaly map for a volume scored as its axial slices.

    Args:
        backbone: ``imagenet`` (the paper) or ``random`` (tests; recorded in ``uses_random_backbone``).
        backbone_weights: path of ``squeezenet1_1-b8a52dc0.pth``; default: the torch hub cache.
        backbone_sha256: the file's expected sha256 (torchvision's); ``None`` skips the check, allowed only
            with ``backbone_weights`` (your own trunk: the maps are then not the paper's).
        sigma: Gaussian smoothing of each LPIPS map (pixels).
        truncate: Gaussian kernel radius in sigmas (scipy's default).
        clahe_clip_limit, clahe_kernel_size, clahe_nbins: ``equalize_adapthist`` arguments
            (skimage defaults, as the original).
        batch_size: slices per LPIPS forward pass.
        random_backbone_seed: seed of the random trunk (the global RNG is left untouched).
        num_reconstructions: reconstructions to draw; their mean is scored.
    """

    backbone: Backbone = Backbone.IMAGENET
    backbone_weights: str | None = None
    backbone_sha256: str | None = BACKBONE_SHA256
    sigma: Sigma = 2.0
    truncate: Truncate = 4.0
    clahe_clip_limit: Probability = 0.01  # skimage's clip limit is normalised: 1 clips nothing
    clahe_kernel_size: GridSide | None = None
    clahe_nbins: HistogramBins = 256
    batch_size: BatchSize = 32
    random_backbone_seed: Seed = 0
    num_reconstructions: Reconstructions = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "backbone", parse_option(Backbone, self.backbone, "RAPerceptualScorer.backbone"))
        check_num_reconstructions(self.num_reconstructions, 1, type(self).__name__)
        if self.backbone_sha256 is None and not self.backbone_weights:
            raise UserInputError("RAPerceptualScorer.backbone_sha256: null skips the check of torchvision's SqueezeNet "
                                 "weights only for a file you name: set backbone_weights to its path, or drop "
                                 "backbone_sha256 to check the default file")
        check_fields(self)  # the signature's ranges, for a direct Python caller (the config check came first)

    @property
    def min_slice_side(self) -> int:
        """`NeedsMinimumSlice`: SqueezeNet's strided conv and pools need slices of MIN_SLICE_SIDE pixels."""
        return MIN_SLICE_SIDE

    @property
    def min_depth(self) -> int:
        """`NeedsMinimumSlice`: LPIPS scores each axial slice alone, so a volume of one slice will do."""
        return 1

    @property
    def uses_random_backbone(self) -> bool:
        """True when the LPIPS trunk is random, i.e. the maps are not the paper's."""
        return self.backbone is Backbone.RANDOM

    @property
    def uses_stand_in_weights(self) -> bool:
        """`NeedsExternalFiles`: the random backbone is the stand-in for the ImageNet weights."""
        return self.uses_random_backbone

    def check_available(self) -> None:
        """Raise UserInputError now (before any run output) if the backbone weights are missing."""
        if not self.uses_random_backbone:
            self.backbone_path()

    def backbone_path(self) -> Path:
        """The SqueezeNet weights file to load; raises UserInputError when it is missing or not the expected file."""
        path = Path(self.backbone_weights) if self.backbone_weights else default_backbone_path()
        if not path.is_file():
            raise UserInputError(
                f"LPIPS SqueezeNet weights not found: download {BACKBONE_URL} and put "
                f"{BACKBONE_FILE} (sha256 {self.backbone_sha256 or BACKBONE_SHA256}) at {path} "
                "(or set the scorer's backbone_weights)"
            )
        if self.backbone_sha256 is not None:
            found = file_sha256(path)
            if found != self.backbone_sha256:
                raise UserInputError(
                    f"{path}: sha256 {found}, expected {self.backbone_sha256} (torchvision's {BACKBONE_FILE}); "
                    f"download {BACKBONE_URL} again and put it there"
                    + (" (or set backbone_sha256 to your file's hash, or null)" if self.backbone_weights else "")
                )
        return path

    def _build(self) -> nn.Module:
        """LPIPS(squeeze, spatial) with the packaged linear layers and the chosen trunk (CPU)."""
        path = None if self.uses_random_backbone else self.backbone_path()
        linear = packaged_linear_layers_path()
        if not linear.is_file():
            raise UserInputError(f"{linear}: the lpips package's linear layers are missing; reinstall lpips==0.1.4")
        # Built with no weights at all (lpips would otherwise read files itself, and torchvision
        # could fetch the trunk); both weight files are then loaded here, from disk only.
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation
            torch.manual_seed(self.random_backbone_seed)
            net = lpips.LPIPS(net="squeeze", spatial=True, pretrained=False, pnet_rand=True, verbose=False)
        state = torch.load(linear, map_location="cpu", weights_only=True)
        needed = {k for k in net.state_dict() if k.startswith("lin") and not k.startswith("lins.")}  # lins: aliases
        if set(state) != needed:
            raise UserInputError(f"{linear}: not lpips 0.1.4's SqueezeNet linear layers; reinstall lpips==0.1.4")
        net.load_state_dict(state, strict=False)  # the trunk (net.*) follows; scaling_layer is a constant
        if path is not None:
            load_squeezenet_trunk(net.net, path)
        return net.eval().requires_grad_(False)

    def lpips_net(self, device: torch.device) -> nn.Module:
        """The cached LPIPS network on ``device`` (built on first use)."""
        cached = self.__dict__.get("_net")
        net = (cached if cached is not None else self._build()).to(device)
        object.__setattr__(self, "_net", net)  # a cache, not a parameter: frozen fields stay as built
        return net

    def lpips_map(self, a: Tensor, b: Tensor) -> Tensor:
        """Gaussian-smoothed spatial LPIPS between slices ``a, b (D, H, W)`` in [0, 1] -> ``(D, H, W)``."""
        if min(a.shape[-2:]) < MIN_SLICE_SIDE:
            raise ValueError(f"LPIPS needs slices of at least {MIN_SLICE_SIDE} px, got {tuple(a.shape[-2:])}")
        net = self.lpips_net(a.device)
        maps = []
        for start in range(0, a.shape[0], self.batch_size):
            a_b = a[start : start + self.batch_size, None].float().expand(-1, 3, -1, -1)
            b_b = b[start : start + self.batch_size, None].float().expand(-1, 3, -1, -1)
            maps.append(net(a_b, b_b, normalize=True))  # normalize: [0, 1] -> [-1, 1]
        dist = torch.cat(maps)  # (D, 1, H, W)
        return gaussian_filter_bank(dist, (self.sigma,), truncate=self.truncate)[:, 0]

    def _clahe(self, slices: Tensor) -> Tensor:
        out = clahe_slices(
            slices.detach().float().cpu().numpy(),
            kernel_size=self.clahe_kernel_size,
            clip_limit=self.clahe_clip_limit,
            nbins=self.clahe_nbins,
        )
        return torch.from_numpy(out).to(slices.device)

    @torch.no_grad()
    def __call__(self, x: Tensor, recs: Tensor, mask: Tensor) -> Tensor:
        """x (H, W, D), recs (N, H, W, D), mask (H, W, D) bool -> map (H, W, D), 0 outside mask.

        Computed in float32 (LPIPS) and returned in x's dtype and device; H, W >= MIN_SLICE_SIDE.
        """
        check_inputs(x, recs, mask)
        x_s = x.float().clamp(0, 1).permute(2, 0, 1)  # (D, H, W)
        rec_s = recs.float().mean(0).clamp(0, 1).permute(2, 0, 1)
        x_eq, rec_eq = self._clahe(x_s), self._clahe(rec_s)
        saliency = self.lpips_map(x_s, rec_s) * self.lpips_map(x_eq, rec_eq)
        amap = (rec_eq - x_eq).abs() * saliency
        return (amap.permute(1, 2, 0) * mask).to(x.dtype)
