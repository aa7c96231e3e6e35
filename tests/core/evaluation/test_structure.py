"""Promises about the evaluation code's shape: a small evaluator constructor, threshold rule
keys spelled in one module, and predict reading no task key by hand."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from core.commands import predict
from core.evaluation import evaluator
from core.evaluation.evaluator import AnomalyDetectionEvaluator

ROOT = Path(__file__).resolve().parents[3]
THRESHOLDS = ROOT / "core" / "evaluation" / "thresholds.py"
RULE_KEY = re.compile(r"""["'@](val_dice|oracle_dice|fpr_[0-9{]|fixed_[0-9{]|threshold@)""")


def test_the_evaluator_takes_a_handful_of_grouped_parameters():
    params = [p for p in inspect.signature(AnomalyDetectionEvaluator.__init__).parameters if p != "self"]
    assert len(params) <= 8, params


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
    source = (ROOT / "core" / "commands" / "predict.py").read_text()
    tree = ast.parse(source)
    evaluator_keys = set(inspect.signature(AnomalyDetectionEvaluator.__init__).parameters) | {"params", "data_loader"}
    evaluator_keys |= {"scorer", "map_postprocessing", "binary_postprocessing", "sample_score", "slice_batch_size",
                       "preprocessing", "precision", "unet_batch_size", "channels_last"}
    evaluator_keys -= set(predict.PREDICTION_COLUMNS)  # its output columns (e.g. sample_score) are not task keys
    read = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in evaluator_keys]
    assert not read, f"predict spells task keys: {read}"
    assert evaluator.AnomalyDetectionEvaluator.SCORING_PARAM == "scoring"
