"""Train Mask R-CNN on MRI slices with tumour masks (LGG/Kaggle folders, a COCO file, images/ + masks/, or NIfTI
volumes: BraTS case folders or an nnU-Net imagesTr/ + labelsTr/ folder).

    mrcnn-train --data DATA/lgg --out runs/lgg                                  # the paper's recipe
    mrcnn-train --preset best --data DATA/lgg --out runs/best --minutes 75      # the fastest from scratch on a CPU
    mrcnn-train --data datasets/sample --out runs/demo --epochs 2 --steps-per-epoch 25
    mrcnn-train --data DATA/brats --out runs/brats --modalities flair,t1ce,t2 --slices tumour

Run the same command again to resume a stopped run from its last checkpoint. Options not given keep the
value of --config (a config.json, e.g. from another run), of --preset, or the package defaults
(mrcnn_tf/config.py, which are the paper's).
"""
import argparse
import sys


from mrcnn_tf import config as config_lib  # noqa: E402
from mrcnn_tf.config import LR_SCHEDULES, OPTIMIZERS, Config  # noqa: E402
from mrcnn_tf.cli import logs  # noqa: E402
from mrcnn_tf.errors import ConfigError, run_command  # noqa: E402

FORMATS = ("auto", "lgg", "coco", "folder", "nifti")

# flag -> (config section or None for the top level, field name)
CONFIG_FLAGS = {
    "image_size": (None, "image_size"), "weights": ("backbone", "weights"), "norm": ("backbone", "norm"),
    "epochs": ("train", "epochs"), "steps_per_epoch": ("train", "steps_per_epoch"),
    "batch_size": ("train", "batch_size"), "lr": ("train", "learning_rate"), "optimizer": ("train", "optimizer"),
    "lr_schedule": ("train", "lr_schedule"), "warmup_steps": ("train", "warmup_steps"),
    "mixed_precision": ("train", "mixed_precision"), "jit_compile": ("runtime", "jit_compile"),
    "seed": ("train", "seed"), "split_ratios": ("train", "split_ratios"), "split_seed": ("train", "split_seed"),
    "augment": ("train", "augment"), "checkpoint_every": ("train", "checkpoint_every"),
    "keep_checkpoints": ("train", "keep_checkpoints"),
    "val_every": ("train", "val_every"), "val_max_images": ("train", "val_max_images"),
    "strategy": ("train", "strategy"), "empty_slice_repeat": ("train", "empty_slice_repeat"),
    "crop_size": ("train", "crop_size"),
    "modalities": ("data", "modalities"), "label_map": ("data", "label_map"), "slices": ("data", "slices"),
}
VOLUME_FLAGS = ("modalities", "label_map", "slices")


def _flag_type(parse):
    """An argparse type from a parser that raises ConfigError (argparse prints its message as a usage error)."""
    def convert(text):
        try:
            return parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = parse.__name__
    return convert


def slice_choice(text):
    """``--slices``: ``all``, ``tumour`` or ``every:K``."""
    if not config_lib.SLICE_CHOICE.match(text):
        raise ConfigError(f"expected all, tumour or every:K (K >= 1), got {text!r}")
    return text


def add_volume_flags(parser):
    """The flags of the configuration's ``data`` section (volume data; the 2-D formats ignore them)."""
    g = parser.add_argument_group("volumes (NIfTI; recorded in the run, used again by evaluation and prediction)")
    g.add_argument("--modalities", type=_flag_type(config_lib.parse_modalities), metavar="A,B,C",
                   help="up to three modalities as the input's channels: names (flair,t1ce,t2) or channel indices "
                        "(0,2,3: nnU-Net's _0000 files or a 4-D volume's last axis); one is repeated. Default: all "
                        "of a case's when it has at most three")
    g.add_argument("--label-map", type=_flag_type(config_lib.parse_label_map), metavar="V=NAME,...",
                   help="classes by label value, e.g. 1=necrosis,2=oedema,4=enhancing (other values: background); "
                        "default: every label above 0 is the class tumour")
    g.add_argument("--slices", type=_flag_type(slice_choice),
                   help="the axial slices of a volume to use: all (default), tumour (those with tumour) or every:K")


def volume_flag_values(args):
    """The ``data`` section fields given as flags (a dict; empty when none was)."""
    return {flag: getattr(args, flag) for flag in VOLUME_FLAGS if getattr(args, flag) is not None}


def parse_args(argv):
    d = Config()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True,
                   help="LGG layout (patient folders of X.tif + X_mask.tif), a COCO json (or a folder holding one "
                        "with its images), a folder with images/ + masks/, or NIfTI cases (BraTS case folders, or "
                        "an nnU-Net folder with imagesTr/ + labelsTr/)")
    p.add_argument("--out", required=True, help="run folder to write (or to resume)")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="force a reader instead of guessing from what --data holds")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--preset", choices=sorted(config_lib.PRESETS),
                       help="a named recipe to start from: " + "; ".join(
                           f"{name}: {preset.description}" for name, preset in config_lib.PRESETS.items()))
    start.add_argument("--config", help="a config.json to start from (e.g. another run's)")
    p.add_argument("--skip-bad", action="store_true", help="log and skip unreadable or inconsistent files")
    p.add_argument("--max-slices", type=int, default=None, help="use only the first N slices")
    p.add_argument("--predictions", type=int, default=8, help="slices to draw predictions for at the end")
    p.add_argument("--no-val-report", action="store_true", help="skip the validation report at the end")
    p.add_argument("--no-export", action="store_true", help="skip the SavedModel export at the end")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop training after this many minutes of train steps, over all sittings of the run")
    p.add_argument("--fit-schedule", action="store_true",
                   help="with --minutes and a cosine schedule: time 20 train steps first, then size the schedule "
                        "to end with the budget (a new run; RUN/schedule.json records the plan); --preset best "
                        "does it whenever --minutes is given")
    g = p.add_argument_group("configuration (default: --config or --preset, else mrcnn_tf/config.py)")
    g.add_argument("--image-size", type=int, help=f"input side (default {d.image_size})")
    g.add_argument("--weights", help="backbone: none (default), imagenet, or a weights file of Keras' ResNet50")
    g.add_argument("--norm", choices=("frozen_bn", "group_norm"),
                   help="default: group_norm without pre-trained weights, frozen_bn with them")
    g.add_argument("--epochs", type=int, help=f"default {d.train.epochs}")
    g.add_argument("--steps-per-epoch", type=int, help=f"default {d.train.steps_per_epoch}")
    g.add_argument("--batch-size", type=int, help=f"global batch (default {d.train.batch_size})")
    g.add_argument("--lr", type=float, help=f"learning rate (default {d.train.learning_rate})")
    g.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="sgd: SGD with momentum (the default, the paper's); adamw: Adam with decoupled weight decay")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="after the warm-up (default constant)")
    g.add_argument("--warmup-steps", type=int, help=f"default {d.train.warmup_steps}")
    g.add_argument("--mixed-precision", action="store_const", const=True, help="mixed_float16 (GPUs; slow on CPU)")
    g.add_argument("--jit-compile", action="store_const", const=True, help="compile the train step with XLA")
    g.add_argument("--seed", type=int)
    g.add_argument("--split-ratios", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                   help="patient-level split (default 0.7 0.2 0.1)")
    g.add_argument("--split-seed", type=int)
    g.add_argument("--no-augment", dest="augment", action="store_const", const=False)
    g.add_argument("--checkpoint-every", type=int, help=f"steps (default {d.train.checkpoint_every})")
    g.add_argument("--keep-checkpoints", type=int, metavar="N",
                   help=f"resumable checkpoints kept in RUN/state (default {d.train.keep_checkpoints})")
    g.add_argument("--val-every", type=int, help="epochs between validation AP figures (0: never; default 1)")
    g.add_argument("--val-max-images", type=int, help=f"default {d.train.val_max_images}")
    g.add_argument("--empty-slice-repeat", type=int, metavar="K",
                   help="show each slice without tumour K times a pass over the training data (default 1)")
    g.add_argument("--crop-size", type=int, metavar="N",
                   help="train on random N x N windows around each slice's content, a multiple of 64 (0: whole "
                        "slices, the default); validation and inference stay at --image-size")
    g.add_argument("--strategy", choices=("default", "mirrored", "multiworker"),
                   help="tf.distribute: mirrored = all local GPUs; multiworker = several machines (TF_CONFIG)")
    add_volume_flags(p)
    logs.add_flags(p)
    args = p.parse_args(argv)
    if args.minutes is not None and args.minutes <= 0:
        p.error(f"--minutes must be positive, got {args.minutes}")
    if args.fit_schedule and args.minutes is None:
        p.error("--fit-schedule sizes the schedule to --minutes: give --minutes too")
    return args


def config_from_args(args):
    """The base config (``--config``, ``--preset`` or the defaults) with the flags that were given applied."""
    if args.config:
        config = Config.from_json(args.config)
    else:
        config = Config.from_preset(args.preset) if args.preset else Config()
    top, sections = {}, {}
    for section, field, value in given_flags(args).values():
        if section is None:
            top[field] = value
        else:
            sections.setdefault(section, {})[field] = value
    return config.replace(**top, **sections)


def given_flags(args):
    """The configuration flags given on the command line: ``{"--flag": (section or None, field, value)}``. A
    resumed run checks them against its own settings (``training.resumed_config``); --preset and --config only
    start runs."""
    given = {}
    for flag, (section, field) in CONFIG_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            given["--" + flag.replace("_", "-")] = (section, field, tuple(value) if isinstance(value, list) else value)
    return given


def fits_schedule(args, config):
    """Whether to size the schedule to ``--minutes``: when ``--fit-schedule`` asks (ConfigError where it cannot),
    or when the preset's recipe does and it can (a decaying schedule, timed on one device)."""
    can = config.train.lr_schedule != "constant" and config.train.strategy == "default"
    if args.fit_schedule:
        if config.train.lr_schedule == "constant":
            raise ConfigError("--fit-schedule sizes a decaying schedule: add --lr-schedule cosine")
        if config.train.strategy != "default":
            raise ConfigError("--fit-schedule times train steps on one device: it cannot plan for "
                              f"--strategy {config.train.strategy} (size --epochs and --steps-per-epoch instead)")
        return True
    preset_fits = args.preset is not None and config_lib.preset(args.preset).fit_schedule
    return preset_fits and args.minutes is not None and can


def with_resolved_modalities(config, args):
    """For volume data, ``config`` with the modalities the reader will use written out (the first case's when none
    were asked for), so that the run records them for evaluation and prediction; a run being resumed keeps the data
    section it recorded. Other data: ``config`` as it is."""
    from mrcnn_tf import runs
    from mrcnn_tf.data import readers

    recorded, resuming = runs.resumable_config(args.out, config)
    if resuming:
        return config.replace(data=recorded.data)
    modalities = readers.resolve_modalities(args.data, args.format, config.data)
    return config if modalities is None else config.replace(data={"modalities": modalities})


def main(argv=None):
    args = parse_args(argv)
    level = logs.configure(args)

    def run():
        from mrcnn_tf import budget, training

        config = with_resolved_modalities(config_from_args(args), args)
        if fits_schedule(args, config):
            config = budget.plan_schedule(config, args.data, args.out, args.minutes, args.format, args.skip_bad)
        return training.train(config, args.data, args.out, args.max_slices, args.predictions,
                              verbose=int(level != logs.QUIET),
                              validation_report=not args.no_val_report, data_format=args.format,
                              skip_bad=args.skip_bad, export=not args.no_export, minutes=args.minutes,
                              given=given_flags(args))

    done = f"run written to {args.out} (run the same command again to resume it if it is stopped)"
    return run_command(run, lambda _: done, quiet=level == logs.QUIET)


if __name__ == "__main__":
    sys.exit(main())
