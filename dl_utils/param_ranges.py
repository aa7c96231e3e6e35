"""The named ranges of constructor parameters (`Annotated` hints built from the markers of
`dl_utils.param_types`) and the upper limits behind them: one place that states how large a
count or size may be before it is a typo, so every constructor says it the same way."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from dl_utils.param_types import Finite, Ge, Gt, Le, Lt, MinItems

# The ranges constructors use most; a specific bound is written out, e.g. Annotated[int, Ge(1), Le(100_000)].
PositiveInt = Annotated[int, Ge(1)]
NonNegativeInt = Annotated[int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0), Finite()]
NonNegativeFloat = Annotated[float, Ge(0), Finite()]
# Sizes far beyond any brain MRI or paper model (the largest: 192-voxel sides, 512 channels, a 5-voxel median):
# a larger value is a typo that would otherwise end in an out-of-memory error after minutes.
MAX_GRID_SIDE = 2048   # voxels along one side of a planned volume grid
MAX_WIDTH = 16384      # channels of one model level
MAX_KERNEL = 64        # voxels along one side of a filter window
GridSide = Annotated[int, Ge(1), Le(MAX_GRID_SIDE)]
Widths = Annotated[Sequence[Annotated[int, Ge(1), Le(MAX_WIDTH)]], MinItems(1)]  # channel widths per level: one at least
KernelSize = Annotated[int, Ge(1), Le(MAX_KERNEL)]
# Counts that set how long something runs or how much it holds, far beyond any paper's (a larger value is a
# typo that would hang, or fill memory after the run folder exists, instead of one line before it):
MAX_EPOCHS = 1_000_000            # epochs (the longest paper schedule is 1600), and patience / val_every
MAX_WORKERS = 256                 # data-loader worker processes: more than any node's cores
MAX_SAMPLES_PER_EPOCH = 10_000_000  # items of one epoch (the shuffled index alone is 80 MB)
MAX_BATCH = 65_536                # items of one batch (slices, network calls)
MAX_RECONSTRUCTIONS = 1000        # reconstructions of one volume a scorer averages (each a full pass)
MAX_RULES = 100                   # threshold rules of one kind (one fit and one metric row each)
MAX_DIFFUSION_STEPS = 100_000     # steps of a diffusion schedule (the papers: 1000)
Epochs = Annotated[int, Ge(1), Le(MAX_EPOCHS)]
Workers = Annotated[int, Ge(0), Le(MAX_WORKERS)]
SamplesPerEpoch = Annotated[int, Ge(1), Le(MAX_SAMPLES_PER_EPOCH)]
BatchSize = Annotated[int, Ge(1), Le(MAX_BATCH)]
Reconstructions = Annotated[int, Ge(1), Le(MAX_RECONSTRUCTIONS)]
DiffusionSteps = Annotated[int, Ge(1), Le(MAX_DIFFUSION_STEPS)]
LearningRate = Annotated[float, Ge(0), Le(10), Finite()]  # 0: frozen (torch allows it); above 10 every optimiser here diverges: a typo (1e308, .inf)
Probability = Annotated[float, Ge(0), Le(1)]      # a probability or a fraction, ends included
OpenFraction = Annotated[float, Gt(0), Lt(1)]     # strictly between 0 and 1 (a false-positive rate, a quantile)
# Seeds: a run's seed is an integer from 0 to 2**63 - 1 (the configurator and the result records check it so), what
# torch.manual_seed and numpy's generators take; a larger one is "Overflow when unpacking long long" after the run folder exists.
MAX_SEED = 2**63 - 1
Seed = Annotated[int, Ge(0), Le(MAX_SEED)]
# Scoring numerics, bounded so that a typo is one line before the run folder exists, not an overflow or NaN after training:
MAX_BINS = 65_536          # histogram bins: a 16-bit image's distinct values; more bins only split empty ones
MAX_SIGMA = float(MAX_GRID_SIDE)  # a Gaussian's sigma (voxels, pixels or bins): a wider one flattens any grid to its mean
MAX_TRUNCATE = 40.0        # a Gaussian kernel's radius in sigmas: exp(-t**2 / 2) is 0 in float64 beyond t = 38.6
MAX_INTENSITY = 1.0e6      # an intensity bound or range: intensities are in [0, 1] outside a model; beyond 1e6 is a typo,
                           # and SSIM's constants (k * range)**2 would overflow float32 in their products
MAX_SIGMAS = 64            # Gaussian windows of one SSIM ensemble (the paper: 8); each is a full map held at once
MAX_VOXELS = MAX_GRID_SIDE**3  # voxels of the largest grid: a component size beyond it removes everything
HistogramBins = Annotated[int, Ge(1), Le(MAX_BINS)]
Sigma = Annotated[float, Gt(0), Le(MAX_SIGMA), Finite()]
SmoothingSigma = Annotated[float, Ge(0), Le(MAX_SIGMA), Finite()]  # 0: no smoothing
Truncate = Annotated[float, Gt(0), Le(MAX_TRUNCATE), Finite()]
Intensity = Annotated[float, Ge(-MAX_INTENSITY), Le(MAX_INTENSITY), Finite()]
IntensityRange = Annotated[float, Gt(0), Le(MAX_INTENSITY), Finite()]  # a span of intensities (SSIM's data range)
