"""Evaluate a trained model, a COCO results file, or a confusion matrix.

    mrcnn-evaluate --model runs/lgg --data DATA/lgg --split test --out reports/lgg_test
    mrcnn-evaluate --model runs/brats --data DATA/brats --split test --out reports/brats --slices all
    mrcnn-evaluate --ground-truth GT.json --detections RESULTS.json --out reports/theirs
    mrcnn-evaluate --from-counts 15 1 2 7
    mrcnn-evaluate --compare reports/a reports/b --out reports/b_against_a
"""
import argparse
import sys


from mrcnn_tf.cli import logs  # noqa: E402
from mrcnn_tf.cli.train import FORMATS, add_volume_flags, volume_flag_values  # noqa: E402
from mrcnn_tf.cli.arguments import fraction  # noqa: E402
from mrcnn_tf.errors import run_command  # noqa: E402


def score_threshold(text):
    """``--score-threshold``: a number in [0, 1], or ``val``."""
    if text == "val":
        return text
    try:
        return fraction(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or 'val', got {text!r}") from None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--model", help="run folder written by mrcnn-train, or an export folder (mrcnn-export: the "
                                      "base folder or one version folder), scored as it is served")
    mode.add_argument("--ground-truth", help="COCO ground-truth json (with --detections)")
    mode.add_argument("--from-counts", type=int, nargs=4, metavar=("TP", "FP", "FN", "TN"))
    mode.add_argument("--compare", nargs=2, metavar=("REPORT_A", "REPORT_B"),
                      help="two report folders of the same images: each figure of A and B and B - A with a paired "
                           "bootstrap interval over patients (compare.json, compare.md in --out; --data gives "
                           "patient ids that older reports lack)")
    p.add_argument("--data", help="dataset (any format train.py reads), with --model; on NIfTI volumes the report "
                                  "adds the volume figures (volume_report.json, volume_report.md)")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                   help="a split of the run's splits.json (an export inside a run folder uses the run's), or all")
    p.add_argument("--splits", help="with --model: the splits.json to take --split from (default: the run's)")
    p.add_argument("--detections", help="COCO results json, with --ground-truth")
    p.add_argument("--out", help="report folder")
    p.add_argument("--score-threshold", type=score_threshold, default=0.5,
                   help="an image is positive at this score; with --model, 'val' chooses the score that gives "
                        "the best image-level F1 on the run's validation split")
    p.add_argument("--min-precision", type=fraction, default=None,
                   help="with --score-threshold val: choose among the scores whose validation precision is at "
                        "least this (the F1-best of them; the most precise when none reaches it)")
    p.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--weights", default="final", choices=("final", "best"),
                   help="with --model: the run's final weights or its best by validation mask AP50")
    p.add_argument("--tta", action="store_true",
                   help="with a run folder: average each slice's detections with its mirror image's (twice the "
                        "time)")
    add_volume_flags(p)  # default: what the model's run recorded
    logs.add_flags(p)
    args = p.parse_args(argv)
    if args.model and not (args.data and args.out):
        p.error("--model needs --data and --out")
    if args.ground_truth and not (args.detections and args.out):
        p.error("--ground-truth needs --detections and --out")
    if args.compare and not args.out:
        p.error("--compare needs --out")
    scoring = {"--split": args.split != "test", "--splits": args.splits,
               "--score-threshold": args.score_threshold != 0.5, "--min-precision": args.min_precision is not None,
               "--max-images": args.max_images is not None, "--weights": args.weights != "final", "--tta": args.tta,
               "--detections": args.detections}
    if args.compare and any(scoring.values()):  # each report was scored already, with its own settings
        p.error(f"--compare reads two reports as they were scored: {', '.join(f for f, on in scoring.items() if on)} "
                "does not apply (only --out, --data, --format and the volume flags do)")
    if args.score_threshold == "val" and not args.model:
        p.error("--score-threshold val needs --model (a run with a validation split)")
    if args.tta and not args.model:
        p.error("--tta needs --model (a run folder)")
    if args.min_precision is not None and args.score_threshold != "val":
        p.error("--min-precision needs --score-threshold val")
    return args


def main(argv=None):
    args = parse_args(argv)
    level = logs.configure(args)
    from mrcnn_tf.evaluation import commands

    if args.from_counts:
        print("\n".join(commands.counts_summary(*args.from_counts)))
        return 0
    if args.model:
        def run():
            return commands.evaluate_run(args.model, args.data, args.split, args.out,
                                         score_threshold=args.score_threshold, max_images=args.max_images,
                                         data_format=args.format, weights=args.weights,
                                         min_precision=args.min_precision or 0.0, splits_file=args.splits,
                                         data_settings=volume_flag_values(args), flip_tta=args.tta)
    elif args.compare:
        def run():
            return commands.compare_report_folders(*args.compare, args.out, args.data, args.format,
                                                   volume_flag_values(args))

        return run_command(run, lambda _: f"comparison written to {args.out}", quiet=level == logs.QUIET)
    else:
        def run():
            return commands.evaluate_coco_files(args.ground_truth, args.detections, args.out, args.score_threshold)
    return run_command(run, lambda _: f"report written to {args.out}", quiet=level == logs.QUIET)


if __name__ == "__main__":
    sys.exit(main())
