"""Promises about the evaluation code's shape: a small evaluator constructor, threshold rule
keys spelled in one module, and predict reading no task key by hand."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from core.commands import predict
from core.config.builder import constructor_keywords
from core.evaluation import evaluator
from core.evaluation.evaluator import AnomalyDetectionEvaluator

ROOT = Path(__file__).resolve().parents[3]
THRESHOLDS = ROOT / "core" / "evaluation" / "thresholds.py"
RULE_KEY = re.compile(r"""["'@](val_dice|oracle_dice|fpr_[0-9{]|fixed_[0-9{]|threshold@)""")


MAX_EVALUATOR_INPUTS = 8


def _inputs(cls: type) -> tuple[set[str], bool]:
    """(every keyword `cls(...)` takes, those forwarded to base classes through `**kwargs` included;
    whether its own `__init__` hides some behind `*args` / `**kwargs`)."""
    names, open_ended = constructor_keywords(cls)
    assert not open_ended, f"{cls.__name__} forwards **kwargs that no base class names"
    hidden = any(p.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
                 for p in inspect.signature(vars(cls)["__init__"]).parameters.values())
    return names, hidden


def test_the_evaluator_takes_a_handful_of_grouped_parameters():
    """Counted with what it forwards to DownstreamEvaluator, and stated in its own signature."""
    names, hidden = _inputs(AnomalyDetectionEvaluator)
    assert len(names) <= MAX_EVALUATOR_INPUTS, sorted(names)
    assert not hidden, "state the evaluator's inputs in its signature, not behind **kwargs"
    assert names == set(inspect.signature(AnomalyDetectionEvaluator).parameters)


class _Base:
    def __init__(self, *, model, device, datasets, seed=0):
        pass


class _Hiding(_Base):  # five of its own, four more passed on unseen
    def __init__(self, *, scoring, roles=None, thresholds=None, detection=None, outputs=None, **kwargs):
        super().__init__(**kwargs)


def test_the_count_sees_parameters_forwarded_to_a_base_class():
    names, hidden = _inputs(_Hiding)
    assert len(names) == 9 and {"model", "device", "datasets", "seed"} <= names and hidden
    names, hidden = _inputs(_Base)
    assert len(names) == 4 and not hidden


def test_the_key_pattern_sees_keys_after_a_quote_or_inside_a_metric_name():
    for spelled in ('"val_dice"', "'fpr_5%'", 'f"fixed_{v}"', '"threshold@fpr_1%"', '"Dice@val_dice"', 'f"Dice@fpr_{level}"'):
        assert RULE_KEY.search(spelled), spelled
    assert not RULE_KEY.search('metric_key("Dice", VAL_DICE_KEY)')


def test_threshold_rule_keys_are_spelled_in_one_module():
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        if path == THRESHOLDS or path.parts[len(ROOT.parts)] in ("tests", ".venv") or ".venv" in path.parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if RULE_KEY.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_predict_reads_no_task_key_by_hand():
    commands = ROOT / "core" / "commands"
    tree = ast.Module(body=[node for name in ("predict.py", "predictor.py", "predict_inputs.py")
                            for node in ast.parse((commands / name).read_text()).body], type_ignores=[])
    evaluator_keys = set(inspect.signature(AnomalyDetectionEvaluator.__init__).parameters) | {"params", "data_loader"}
    evaluator_keys |= {"scorer", "map_postprocessing", "binary_postprocessing", "sample_score", "slice_batch_size",
                       "preprocessing", "precision", "unet_batch_size", "channels_last"}
    evaluator_keys -= set(predict.PREDICTION_COLUMNS)  # its output columns (e.g. sample_score) are not task keys
    read = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in evaluator_keys]
    assert not read, f"predict spells task keys: {read}"
    assert evaluator.AnomalyDetectionEvaluator.SCORING_PARAM == "scoring"
