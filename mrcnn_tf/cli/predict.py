"""Tumours in images or MRI volumes, from an export folder or a run folder.

    mrcnn-predict --model runs/lgg/export --images SLICES_OR_FILE --out predictions/ [--score-threshold 0.5]
    mrcnn-predict --model runs/brats --images CASE.nii.gz --out predictions/       # or a case folder, a DICOM series

Images give masks, overlays and COCO results (``mrcnn_tf.predict``); a NIfTI file, a case folder or a DICOM series
gives a label volume, an instance volume and a summary with each tumour's volume in mL per case, and a DICOM
Segmentation for a DICOM input (``mrcnn_tf.volume_predict``).
"""
import argparse
import sys

from mrcnn_tf.cli import logs
from mrcnn_tf.errors import run_command


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="export folder (mrcnn-export: the base folder or one version folder) or training run folder")
    p.add_argument("--images", required=True,
                   help="an image file or a folder of images; or a NIfTI file, a folder of NIfTI cases, or a DICOM "
                        "series folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--score-threshold", type=float, default=0.5,
                   help="write only detections scoring at least this (default 0.5)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip (and name) files that cannot be read instead of stopping at the first")
    p.add_argument("--tta", action="store_true",
                   help="with a run folder: average each image's detections with its mirror image's (twice the "
                        "time; an export has the flip as mrcnn-export --tta baked it)")
    logs.add_flags(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    level = logs.configure(args)

    def run():
        from mrcnn_tf import predict, volume_predict

        if volume_predict.is_volume_input(args.images):
            cases = volume_predict.predict_volumes(args.model, args.images, args.out, args.score_threshold,
                                                   verbose=level != logs.QUIET, flip_tta=args.tta)
            return f"{len(cases)} case(s) written to {args.out}"
        summary = predict.predict(args.model, args.images, args.out, args.score_threshold,
                                  progress=level != logs.QUIET, skip_bad=args.skip_bad, flip_tta=args.tta)
        return predict.summary_line(summary, args.out)

    return run_command(run, lambda line: line, quiet=level == logs.QUIET)


if __name__ == "__main__":
    sys.exit(main())
