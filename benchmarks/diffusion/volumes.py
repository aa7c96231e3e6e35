"""What `--cpu-precision --weights CKPT` times: the checkpoint's own model and a volume it was evaluated on,
the first volume of the first labelled test set its config names, chosen by the evaluator's roles."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from benchmarks.diffusion.models import SIZE, load_weights, paper_models, sizes
from model_zoo.diffusion_models import DDPM, ConditionalDDPM

if TYPE_CHECKING:
    from core.config.builder import ComponentBuilder
    from core.evaluation.settings import DataRoles


def labelled_test_set(builder: ComponentBuilder, spec: Any, key: str) -> str | None:
    """The first test set of downstream task `spec` as its evaluator sees it: a data set that plays no
    role (not the healthy validation / test set, a labelled validation set or the fit set), read from the
    task's typed `roles` (`DataRoles.test_sets`; flat keys of earlier configs upgraded), whatever the data
    sets are called; None for a task that is not an anomaly-detection evaluation or has no test set."""
    from core.evaluation.evaluator import AnomalyDetectionEvaluator

    if not isinstance(spec, dict) or not isinstance(spec.get("data_loader"), dict):
        return None
    if not issubclass(builder.resolve_class(spec, key), AnomalyDetectionEvaluator):
        return None
    roles: DataRoles = builder.build_param(spec, key, "roles")
    test_sets = roles.test_sets(list(spec["data_loader"].get("datasets") or {}))
    return test_sets[0] if test_sets else None


def evaluated_volume(builder: ComponentBuilder, config: dict[str, Any], slices: int) -> tuple[Any, str]:
    """The central `slices` slices of the first volume of the first labelled test set (`labelled_test_set`)
    of the first task that has one, loaded as its evaluation loads it, and where it came from; (None, '')
    when no task names a test set."""
    from types import SimpleNamespace

    from core.config.configurator import shared_values
    from core.run.assembly import build_datasets

    for task, spec in (config.get("downstream_tasks") or {}).items():
        key = f"downstream_tasks.{task}"
        name = labelled_test_set(builder, spec, key)
        if name is None:
            continue
        loader = {**spec["data_loader"], "datasets": {name: spec["data_loader"]["datasets"][name]}}
        found = build_datasets(builder, loader, f"{key}.data_loader", shared_values(config))[name][0]
        depth = found.image.shape[-1]
        start = max(0, (depth - slices) // 2)
        keep = slice(start, start + slices)
        volume = SimpleNamespace(name=found.name, image=found.image[..., keep], mask=found.mask[..., keep])
        return volume, f"test volume {found.name} of {task} / {name}, slices {start}-{start + volume.image.shape[-1] - 1}"
    return None, ""


def checkpoint_case(args: argparse.Namespace) -> tuple[DDPM | None, ConditionalDDPM | None, Any, str, int]:
    """`--weights`: the checkpoint's own model (a self-describing checkpoint: built from its stored config; else
    loaded into the paper-size models), a volume it was evaluated on (`evaluated_volume`) and the slice size
    (for a synthetic volume where it names no test set)."""
    from core.config.builder import MODEL, ComponentBuilder
    from core.run import checkpoint_metadata
    from dl_utils.checkpoint import load_checkpoint
    from dl_utils.weights import load_model_weights

    state = load_checkpoint(args.weights)
    if not isinstance(state.get("config"), dict):  # a bare checkpoint: the paper sizes, on the synthetic volume
        ddpm, cddpm = paper_models(args)
        fitted = load_weights(args.weights, ddpm, cddpm)
        return (ddpm if ddpm in fitted else None), (cddpm if cddpm in fitted else None), None, "", sizes(args)["image_size"]
    builder = ComponentBuilder(f"{args.weights} (stored config)")
    config = builder.upgrade(checkpoint_metadata.read(state, args.weights))
    model = builder.build(config["model"], "model", expected=MODEL)
    load_model_weights(model, state, args.weights)
    model.eval()
    size = int((config["model"].get("params") or {}).get("image_size", SIZE))
    volume, where = evaluated_volume(builder, config, args.slices)
    if isinstance(model, ConditionalDDPM):
        return None, model, volume, where, size
    if isinstance(model, DDPM):
        return model, None, volume, where, size
    raise SystemExit(f"{args.weights}: a {type(model).__name__}, not a DDPM or cDDPM")
