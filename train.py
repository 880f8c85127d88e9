"""Train Mask R-CNN on MRI slices with tumour masks (LGG/Kaggle folders, a COCO file, or images/ + masks/).

    python train.py --data ../shared/data/lgg --out runs/lgg            # the paper's defaults
    python train.py --data datasets/sample --out runs/demo --epochs 2 --steps-per-epoch 25
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mrcnn_tf.config import Config  # noqa: E402
from mrcnn_tf.errors import MrcnnError  # noqa: E402


def parse_args(argv):
    defaults = Config()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True,
                   help="LGG layout (patient folders of X.tif + X_mask.tif), a COCO json (or a folder holding one "
                        "with its images), or a folder with images/ + masks/")
    p.add_argument("--format", default="auto", choices=("auto", "lgg", "coco", "folder"),
                   help="force a reader instead of guessing from what --data holds")
    p.add_argument("--skip-bad", action="store_true", help="log and skip unreadable or inconsistent files")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--epochs", type=int, default=defaults.train.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=defaults.train.steps_per_epoch)
    p.add_argument("--batch-size", type=int, default=defaults.train.batch_size)
    p.add_argument("--lr", type=float, default=defaults.train.learning_rate)
    p.add_argument("--image-size", type=int, default=defaults.image_size)
    p.add_argument("--weights", default=defaults.backbone.weights,
                   help="backbone weights: none, imagenet, or a .weights.h5/.h5 file of Keras' ResNet50")
    p.add_argument("--norm", choices=("frozen_bn", "group_norm"), default=None,
                   help="default: group_norm without pre-trained weights, frozen_bn with them")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (for GPUs; slower on CPU)")
    p.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    p.add_argument("--max-slices", type=int, default=None, help="use only the first N slices")
    p.add_argument("--predictions", type=int, default=8, help="slices to draw predictions for at the end")
    p.add_argument("--seed", type=int, default=defaults.train.seed)
    p.add_argument("--no-val-report", action="store_true", help="skip the validation report at the end")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=defaults.train.lr_schedule)
    p.add_argument("--warmup-steps", type=int, default=defaults.train.warmup_steps)
    p.add_argument("--checkpoint-every", type=int, default=defaults.train.checkpoint_every,
                   help="steps between resumable checkpoints (also at every epoch end)")
    p.add_argument("--val-every", type=int, default=defaults.train.val_every,
                   help="epochs between validation AP figures (0: never)")
    p.add_argument("--val-max-images", type=int, default=defaults.train.val_max_images)
    p.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default=defaults.train.strategy,
                   help="tf.distribute: mirrored = all local GPUs; multiworker = several machines (TF_CONFIG)")
    p.add_argument("--split-ratios", type=float, nargs=3, default=defaults.train.split_ratios,
                   metavar=("TRAIN", "VAL", "TEST"), help="patient-level split (default 0.7 0.2 0.1)")
    p.add_argument("--split-seed", type=int, default=defaults.train.split_seed)
    return p.parse_args(argv)


def config_from_args(args):
    return Config(image_size=args.image_size).replace(
        backbone={"weights": args.weights, "norm": args.norm},
        train={
            "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size,
            "learning_rate": args.lr, "mixed_precision": args.mixed_precision, "jit_compile": args.jit_compile,
            "seed": args.seed, "split_ratios": tuple(args.split_ratios), "split_seed": args.split_seed,
            "augment": not args.no_augment, "lr_schedule": args.lr_schedule, "warmup_steps": args.warmup_steps,
            "checkpoint_every": args.checkpoint_every, "val_every": args.val_every,
            "val_max_images": args.val_max_images, "strategy": args.strategy,
        },
    )


def main(argv=None):
    args = parse_args(argv)
    from mrcnn_tf import training

    try:
        training.train(config_from_args(args), args.data, args.out, args.max_slices, args.predictions,
                       validation_report=not args.no_val_report, data_format=args.format, skip_bad=args.skip_bad)
    except MrcnnError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"run written to {args.out} (run the same command again to resume it if it is stopped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
