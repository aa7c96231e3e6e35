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
