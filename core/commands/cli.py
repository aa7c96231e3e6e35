"""The `uad` command line: `uad train|test|predict|preprocess|benchmark|cv|convert|describe|report`.

`python core/Main.py --config_path ...` (iml-dl's command) keeps working; `train`, `test`
and `benchmark` run the same `core.run.experiment.run_experiment`. Every verb has `--help`.
Errors on bad input are one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.commands import arg_types
from core.commands.exit_codes import run_and_report
from core.commands.flags import add_external_modules_flag
from core.evaluation.reconstruction import Precision
from core.evaluation.thresholds import VAL_DICE_KEY, fixed_key, fpr_key
from dl_utils.errors import UserInputError

BENCHMARK_CONFIG = "projects/benchmark/configs/benchmark.yaml"


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override any config key (value typed by YAML rules); repeatable")
    parser.add_argument("--output_root", "--output-root", help="folder for run folders (overrides output_root)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    add_external_modules_flag(parser)


def _pipeline_options(args: argparse.Namespace):
    from data.raw_preprocessing.pipeline import PipelineOptions

    return PipelineOptions(spacing=args.spacing, skull_strip=args.skull_strip, template=args.template,
                           template_mask=args.template_mask, register=not args.no_registration,
                           n4=not args.no_n4, use_gpu=args.gpu, qc=not getattr(args, "no_qc", False))


def _add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("preprocessing of raw scans")
    group.add_argument("--template", default="mni152", help="registration template: mni152 (nilearn's, installed) or a brain NIfTI path")
    group.add_argument("--template-mask", help="brain mask of a --template path (default: its voxels > 0)")
    group.add_argument("--skull-strip", default="deepbet", choices=("deepbet", "none"),
                       help="deepbet (weights in its wheel, offline) or none (scans already stripped)")
    group.add_argument("--spacing", type=arg_types.spacing_mm, default=1.0,
                       help=f"isotropic voxel size in mm, {arg_types.MIN_SPACING_MM:g} to {arg_types.MAX_SPACING_MM:g} (default 1)")
    group.add_argument("--no-registration", action="store_true", help="skip the affine registration to the template")
    group.add_argument("--no-n4", action="store_true", help="skip N4 bias correction")
    group.add_argument("--gpu", action="store_true", help="run deepbet on CUDA when available")


def build_parser() -> argparse.ArgumentParser:
    parser = arg_types.OneLineParser(prog="uad", description="Unsupervised anomaly detection in brain MRI.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train (and evaluate) a project config", description="Train and evaluate from a project YAML.")
    train.add_argument("--config_path", "--config-path", "--config", required=True, help="project YAML, e.g. projects/AE/configs/ae.yaml")
    train.add_argument("--resume", metavar="RUN_FOLDER", help="continue from RUN_FOLDER/checkpoints/latest_model.pt")
    _add_run_options(train)

    test = verbs.add_parser("test", help="evaluate weights (a config, or a self-describing checkpoint alone)",
                            description="Evaluate trained weights: --config_path with experiment.weights, or --model CHECKPOINT alone.")
    test.add_argument("--config_path", "--config-path", "--config", help="project YAML (task test)")
    test.add_argument("--model", help="self-describing checkpoint or run folder; evaluated as its run was")
    _add_run_options(test)

    predict = verbs.add_parser("predict", help="anomaly maps and masks for scans, in each scan's own space",
                               description="Score scans with a self-describing checkpoint; writes maps and masks in each scan's own space "
                               "(a 2D image's own pixels), PNGs, report.html and predictions.csv.")
    predict.add_argument("--model", required=True, help="checkpoint (.pt) or run folder")
    predict.add_argument("--input", required=True, help="a scan, a folder of scans, a `uad preprocess` output, or a CSV; for a checkpoint evaluated on 2D "
                         "image lists: a PNG, a folder of PNGs or an image-list CSV")
    predict.add_argument("--output", required=True, help="output folder")
    examples = ", ".join(k.replace("%", "%%") for k in (VAL_DICE_KEY, fpr_key(0.01), fpr_key(0.05), fixed_key(0.009)))
    predict.add_argument("--threshold", default=fpr_key(0.05), type=arg_types.threshold_choice,
                         help=f"a threshold rule the run fitted (e.g. {examples}) or a number (default %(default)s)")
    predict.add_argument("--test-set", help="test set whose fitted thresholds (and evaluation seeds) to use (default: the first fitted)")
    predict.add_argument("--task", help="downstream task of the config to score with (default: the first with thresholds)")
    predict.add_argument("--device", default="auto", help="auto | cpu | cuda")
    predict.add_argument("--precision", choices=[p.value for p in Precision],
                         help="model precision (default: the one the evaluation ran at, recorded in the checkpoint; auto = "
                              "bf16 autocast on CUDA, and on CPU for diffusion models where the CPU has bf16 units, else fp32)")
    predict.add_argument("--data-root", help="folder the paths of a volume-layout or image-list --input CSV are relative to (default: its folder)")
    predict.add_argument("--preprocessed", action="store_true", help="scans are already preprocessed (skip preprocessing); needs --mask")
    predict.add_argument("--mask", help="brain mask of --preprocessed scans (of 2D images: a brain-mask image, or for several "
                         "the mask list their evaluation took: a CSV with a `filename` column, or a folder, in order)")
    predict.add_argument("--no-png", action="store_true", help="skip the three-plane pictures")
    predict.add_argument("--no-report", action="store_true",
                         help="skip report.html (and the input / reconstruction NIfTIs it shows)")
    add_external_modules_flag(predict)
    _add_pipeline_options(predict)

    pre = verbs.add_parser("preprocess", help="raw scans -> registered, stripped, N4-corrected volumes and split CSVs",
                           description="Reorient to RAS, resample, skull strip, register, crop to the brain, N4; writes the volume layout.")
    pre.add_argument("--input", required=True, help="folder of raw NIfTI T1 scans, or a CSV (subject, t1[, t2, seg, mask, age, label])")
    pre.add_argument("--output", required=True, help="output folder (data_root of the written split CSVs)")
    pre.add_argument("--workers", type=arg_types.process_workers, default=1,
                     help=f"subjects in parallel (processes; at most {arg_types.WORKERS_PER_CPU} per CPU: "
                          f"{arg_types.MAX_PROCESS_WORKERS} here, and never more than subjects)")
    pre.add_argument("--folds", type=arg_types.fold_count, default=5, help="k of the seeded healthy train/val folds")
    pre.add_argument("--seed", type=arg_types.seed, default=0, help="seed of the fold permutation (0 to 2**63 - 1)")
    pre.add_argument("--no-qc", action="store_true", help="skip the QC montage per subject")
    _add_pipeline_options(pre)

    bench = verbs.add_parser("benchmark", help="every method on the same data, one comparison table",
                             description="Run the benchmark config (all methods, one table).")
    bench.add_argument("--config_path", "--config-path", "--config", default=BENCHMARK_CONFIG, help=f"default {BENCHMARK_CONFIG}")
    _add_run_options(bench)

    cv = verbs.add_parser("cv", help="k-fold protocol: one run per fold, then mean +- std over folds",
                          description="Run a config once per fold (fold-numbered split CSVs, e.g. IXI_train_fold0.csv, "
                                      "get the fold substituted) and write the folds table (folds.md/.csv/.json).")
    cv.add_argument("--config_path", "--config-path", "--config", required=True, help="project YAML with fold-numbered split CSVs")
    cv.add_argument("--folds", type=arg_types.non_negative_int, nargs="+", required=True, help="fold numbers, e.g. 0 1 2 3 4")
    _add_run_options(cv)

    convert = verbs.add_parser("convert", help="an original authors' checkpoint -> a checkpoint of this framework",
                               description="Convert the authors' checkpoints (tensors only; their pickled code never runs): "
                                           "DDPM / cDDPM Lightning .ckpt files and RA's best_model.pt (iml-dl "
                                           "model_weights, or a bare state dict) into a checkpoint of the config's model, "
                                           "SparK pre-training into an encoder file for trainer.params.weights.init "
                                           "{encoder.backbone: FILE}.")
    convert.add_argument("--input", required=True, help="the original checkpoint (DDPM / cDDPM / SparK .ckpt, RA best_model.pt)")
    convert.add_argument("--output", required=True, help="the .pt file to write")
    convert.add_argument("--config_path", "--config-path", "--config",
                         help="our config whose model the weights fit (checked strictly, and stored in the checkpoint)")
    add_external_modules_flag(convert)

    describe = verbs.add_parser("describe", help="write an evaluated run's config and thresholds into a checkpoint",
                                description="Make a checkpoint self-describing from an evaluated run folder (config.yaml, results.json).")
    describe.add_argument("run_dir", help="evaluated run folder")
    describe.add_argument("--weights", help="checkpoint to describe (default RUN_DIR/checkpoints/best_model.pt)")
    describe.add_argument("--out", help="where to write (default: the --weights file, atomically)")
    add_external_modules_flag(describe)

    report = verbs.add_parser("report", help="(re)write report.html of a run, benchmark or predict folder",
                              description="One self-contained HTML page (no server, no network) from the files of a "
                                          "run folder, a benchmark folder or a `uad predict` output.")
    report.add_argument("folder", help="run folder, benchmark run folder or predict output folder")
    report.add_argument("--model", help="checkpoint of a predict output, to show what it was trained on "
                                        "(default: the one the folder's predict.json records)")
    report.add_argument("--max-mb", type=arg_types.non_negative_float, default=25.0, help="size budget of the drawn volumes in MB (default 25)")
    report.add_argument("--max-side", type=arg_types.positive_int, default=128,
                        help="draw every n-th voxel along each side longer than this, so none exceeds it (default 128)")
    return parser


def _run(args: argparse.Namespace) -> Path | None:
    from core.run.experiment import run_experiment

    return run_experiment(args.config_path, args.overrides, resume=getattr(args, "resume", None),
                          output_root=args.output_root, quiet=args.quiet, allow_external_modules=args.allow_external_modules)


def _test(args: argparse.Namespace) -> Path | None:
    if bool(args.config_path) == bool(args.model):
        raise UserInputError("uad test needs exactly one of --config_path CONFIG or --model CHECKPOINT")
    if args.config_path:
        return _run(args)
    import tempfile

    import yaml

    from core.commands.predictor import resolve_checkpoint
    from core.run import checkpoint_metadata
    from core.run.experiment import run_experiment
    from dl_utils.paths import check_component

    config = checkpoint_metadata.test_config(resolve_checkpoint(args.model))
    name = check_component(str(config.get("name", "model")), f"{args.model}: stored config: name")
    with tempfile.TemporaryDirectory() as tmp:  # the stored config, as a file under projects/<P>-like name
        path = Path(tmp) / "projects" / name / f"{Path(args.model).stem}.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        # the run folder goes where the person running the command says (default ./runs), never where the file says
        try:
            return run_experiment(path, args.overrides, output_root=args.output_root or "runs",
                                  quiet=args.quiet, allow_external_modules=args.allow_external_modules)
        except UserInputError as exc:  # name the checkpoint, not the temporary file that held its config
            raise UserInputError(str(exc).replace(str(path), f"{args.model} (stored config)")) from exc


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_and_report(lambda: _dispatch(args))


def _dispatch(args: argparse.Namespace) -> Path | int | None:
    """Run one verb: a run folder or written file to print, or an exit code."""
    if args.verb in ("train", "benchmark"):
        result = _run(args)
    elif args.verb == "test":
        result = _test(args)
    elif args.verb == "predict":
        from core.commands.predict import predict
        from core.commands.predictor import resolve_checkpoint
        from core.run.checkpoint_metadata import check_trained_on
        from core.run.report import trained_on

        path = resolve_checkpoint(args.model)
        plain = trained_on(path, warn=False)  # what its training run recorded (memory-mapped: weights not read)
        print(f"{args.model}: trained on " + (check_trained_on(plain, path).summary() if plain else
                                              "(not recorded in this checkpoint, so scans are not compared with its training "
                                              f"data; `python -m core.commands.training_record {path}` writes it from the "
                                              "stored config's training data)"))
        rows = predict(args.model, args.input, args.output, args.threshold, args.test_set, args.task, args.device,
                       args.preprocessed, args.mask, _pipeline_options(args), png=not args.no_png,
                       data_root=args.data_root, report=not args.no_report, precision=args.precision,
                       allow_external_modules=args.allow_external_modules)
        previous = None
        for row in rows:  # a scan with the warnings of the scan above says so instead of repeating them
            repeated = row["status"] == "done" and row["message"] and row["message"] == previous
            print(f"{row['scan']}: {row['status']} score={row['sample_score']} "
                  f"{'(warnings as above)' if repeated else row['message']}".rstrip())
            previous = row["message"] if row["status"] == "done" else None
        print(Path(args.output) / "predictions.csv")
        return 1 if any(r["status"] == "failed" for r in rows) else 0
    elif args.verb == "preprocess":
        from data.raw_preprocessing.inputs import read_subjects
        from data.raw_preprocessing.pipeline import run_all
        from data.raw_preprocessing.splits import write_splits

        subjects = read_subjects(args.input)
        rows = run_all(subjects, args.output, _pipeline_options(args), workers=args.workers)
        write_splits(subjects, args.output, folds=args.folds, seed=args.seed)
        for row in rows:
            print(f"{row['subject']}: {row['status']} ({row['seconds']} s) {row['message']}".rstrip())
        print(Path(args.output) / "summary.csv")
        return 1 if any(r["status"] == "failed" for r in rows) else 0
    elif args.verb == "cv":
        from core.commands.cross_validation import run_folds

        result = run_folds(args.config_path, args.folds, args.overrides, args.output_root, args.quiet, args.allow_external_modules)
    elif args.verb == "convert":
        from core.commands.convert import convert_checkpoint

        result = convert_checkpoint(args.input, args.output, args.config_path, args.allow_external_modules)
    elif args.verb == "describe":
        from core.run.checkpoint_metadata import rewrite_from_run

        result = rewrite_from_run(args.run_dir, args.weights, args.out, args.allow_external_modules)
    elif args.verb == "report":
        from core.run.report import write_report

        result = write_report(args.folder, args.model, args.max_mb, args.max_side)
    else:  # argparse refuses unknown verbs already
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
