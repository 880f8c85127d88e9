"""The configuration: one frozen dataclass tree, the only place where defaults live.

Defaults reproduce the paper (256x256 inputs, batch 1, learning rate 0.001, 200 steps x 30 epochs) and size the
parts the paper leaves open for 256-pixel MRI slices holding 1-4 tumours, starting from the Mask R-CNN /
Detectron defaults (which are for ~800-pixel COCO images):

* Anchors: one size per level P2-P6, ``(16, 32, 64, 128, 256)``, i.e. four times the level's stride (Detectron
  uses eight times, 32-512 px, for 800-px images). LGG tumours span roughly 8-120 px at 256 px, so the smallest
  anchor must be small enough that a tumour of ~10 px still reaches an IoU above the RPN's 0.3 with it, and the
  largest covers most of the slice. Three aspect ratios (0.5, 1, 2) as in the paper's reference model.
* FPN level assignment: the FPN paper's canonical size 224 is for 800-px images; scaled to 256 px it is ~72, so
  a RoI of 72 px pools from P4, 36 px from P3 and 18 px (or less) from P2.
* Sampling: 256 anchors per image for the RPN (as Detectron); 128 RoIs per image for the heads (Detectron: 512)
  because a 256-px slice yields few distinct proposals; proposal counts (pre-NMS per level / post-NMS) are a
  quarter of Detectron's 2000/1000 in training and 1000/1000 at inference, for the same reason.
* Mask head budget: its four 3x3 convs of 256 channels cost ~1 GFLOP per RoI forward, ~3 with gradients. It
  runs only on the RoIs that need it: in training on the sampled positives, at most ``mask_rois_per_image = 16``
  of them (a random subset: the sampler shuffles them), at inference on the valid ones of the
  ``max_detections = 20`` best detections; a slice holds at most 4 tumours in the LGG data. Benchmarks that
  compare with torchvision set its 512 RoIs and 100 detections explicitly.

Two more parts:

* ``runtime``: the speed policy (XLA and RoIAlign switches), apart from the model's definition and chosen per
  device (:data:`DEVICE_POLICIES`); no switch changes a result.
* Presets (:data:`PRESETS`): the named training recipes ``paper`` (the defaults, as Table 2 states them) and
  ``best`` (what trains fastest from scratch on a CPU budget), as ``mrcnn-train --preset`` takes them.
* ``data``: how a volume (NIfTI, DICOM) becomes the model's slices (modalities, label map, slice choice,
  intensity scaling), recorded in the run so that evaluation and prediction cut and scale volumes as training did;
  the 2-D formats ignore it (docs/volumes.md).

Everything is plain data and serialises to JSON (``Config.to_json`` / ``Config.from_json``), so a run folder
records exactly the configuration it trained with.
"""
import dataclasses
import json
import re

from mrcnn_tf.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """ResNet50 + FPN.

    ``weights``: ``"none"`` (random init), ``"imagenet"`` (Keras' ResNet50 ImageNet weights, needs internet) or
    a path to a local weights file of ``keras.applications.ResNet50(include_top=False)``.
    ``norm``: ``"frozen_bn"`` (BatchNorm in inference mode, for pre-trained weights) or ``"group_norm"`` (32
    groups, in backbone, FPN and heads: what training from scratch at batch 1 needs). ``None`` picks by weights.
    ``freeze_stages``: with pre-trained weights, the stem and the first ``freeze_stages - 1`` residual stages stay
    fixed (Detectron's ``FREEZE_AT = 2``).
    """

    weights: str = "none"
    norm: str | None = None
    freeze_stages: int = 2
    fpn_channels: int = 256
    group_norm_groups: int = 32

    @property
    def resolved_norm(self):
        if self.norm is not None:
            return self.norm
        return "group_norm" if self.weights == "none" else "frozen_bn"


@dataclasses.dataclass(frozen=True)
class AnchorConfig:
    """Anchors on P2-P6 (see the module docstring for the sizes)."""

    min_level: int = 2
    max_level: int = 6
    sizes: tuple = (16, 32, 64, 128, 256)
    aspect_ratios: tuple = (0.5, 1.0, 2.0)

    @property
    def strides(self):
        return tuple(2**level for level in range(self.min_level, self.max_level + 1))


@dataclasses.dataclass(frozen=True)
class RPNConfig:
    """Region proposal network: anchor matching, sampling and proposal selection."""

    positive_iou: float = 0.7
    negative_iou: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    nms_iou: float = 0.7
    train_pre_nms_topk: int = 500
    train_post_nms_topk: int = 250
    test_pre_nms_topk: int = 250
    test_post_nms_topk: int = 250
    min_box_size: float = 1.0
    box_loss: str = "smooth_l1"
    smooth_l1_beta: float = 1.0 / 9.0


@dataclasses.dataclass(frozen=True)
class RoIConfig:
    """Box and mask heads: RoI sampling, pooling sizes and head widths."""

    positive_iou: float = 0.5
    negative_iou: float = 0.5
    batch_size_per_image: int = 128
    positive_fraction: float = 0.25
    box_pool_size: int = 7
    mask_pool_size: int = 14
    mask_size: int = 28
    mask_rois_per_image: int = 16
    sampling_ratio: int = 2
    canonical_level: int = 4
    fc_dim: int = 1024
    mask_conv_dim: int = 256
    mask_num_convs: int = 4
    box_weights: tuple = (10.0, 10.0, 5.0, 5.0)
    smooth_l1_beta: float = 1.0 / 9.0


@dataclasses.dataclass(frozen=True)
class InferenceConfig:
    """Detection post-processing."""

    score_threshold: float = 0.05
    nms_iou: float = 0.5
    max_detections: int = 20
    mask_threshold: float = 0.5
    # detections whose box (clipped to the image) is thinner than this, in input pixels, are dropped before NMS:
    # a box regressed past the image edge can have zero area and an empty mask (torchvision drops boxes < 1e-2)
    min_box_size: float = 0.01
    # the pixels one call may hold (batch x height x width): a served call costs about 112 bytes a pixel, so this
    # bounds it near 470 MB (about twice that with flip_tta, which holds two feature pyramids); larger inputs are
    # refused with an error, not by running out of memory
    max_input_pixels: int = 2048 * 2048
    # test-time flip: each image and its left-right mirror through the heads, their class probabilities, box
    # regressions and mask probabilities averaged (the proposals are the image's own); twice the inference time
    flip_tta: bool = False


OPTIMIZERS = ("sgd", "adamw")  # train.optimizer's choices (training.make_optimizer)
LR_SCHEDULES = ("constant", "cosine")  # train.lr_schedule's choices (schedules.WarmupSchedule)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation (the paper's Table 2 where it says)."""

    learning_rate: float = 0.001
    # "sgd": SGD with momentum (the paper's); "adamw": Adam with decoupled weight decay (momentum unused)
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clipnorm: float = 10.0
    batch_size: int = 1
    steps_per_epoch: int = 200
    epochs: int = 30
    mixed_precision: bool = False
    seed: int = 0
    split_ratios: tuple = (0.7, 0.2, 0.1)
    split_seed: int = 0
    lr_schedule: str = "constant"  # LR_SCHEDULES: the paper's constant, or cosine (decays to 0 at the last step)
    warmup_steps: int = 100  # linear warm-up from 0: from-scratch training diverges without it
    checkpoint_every: int = 50  # steps between resumable checkpoints (and at every epoch end)
    keep_checkpoints: int = 1  # resumable checkpoints kept in RUN/state (each holds weights and optimizer state)
    val_every: int = 1  # epochs between validation AP figures (0 = never)
    val_max_images: int = 64  # validation slices scored for AP each time (spread over the split)
    augment: bool = True
    empty_slice_repeat: int = 1  # each pass over the training data shows a slice without tumour this many times
    # train on random crop_size x crop_size windows around each slice's content (0: whole slices); inference and
    # validation stay at image_size, at the same scale: the convolutions see the same pixels a step, fewer of them
    crop_size: int = 0
    strategy: str = "default"  # "default" (one device), "mirrored" (all local GPUs), "multiworker"


# The speed policy of each device: every switch computes the same losses, gradients and detections (the tests
# check), only faster or slower. Measured on a 2-core AVX2 CPU (docs/performance.md); not measured on a GPU,
# where only ``xla_conv`` is known not to apply (it replaces oneDNN's CPU kernels; cuDNN's stay).
DEVICE_POLICIES = {
    "cpu": {"jit_compile": False, "xla_roi_align": True, "crop_roi_align": True, "xla_group_norm": True,
            "xla_conv": True, "xla_features": True},
    "gpu": {"jit_compile": False, "xla_roi_align": True, "crop_roi_align": True, "xla_group_norm": True,
            "xla_conv": False, "xla_features": True},
}


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """How the model computes, never what: the speed switches, each ``None`` for the device policy's value
    (:data:`DEVICE_POLICIES`). ``device``: ``"auto"`` (the GPU policy where TensorFlow sees a GPU, else the CPU
    one), ``"cpu"`` or ``"gpu"``.

    * ``jit_compile``: the whole train step compiled by XLA (static shapes: the mask head runs on every RoI slot).
    * ``xla_roi_align``: the losses' box RoIAlign compiled by XLA alone (where ``crop_roi_align`` is off).
    * ``crop_roi_align``: RoIAlign by ``crop_and_resize`` (the same values): inference's two and the losses' box
      one, whose gradient is then the gather's compiled by XLA; off under ``jit_compile``, which cannot compile it.
    * ``xla_group_norm``: backbone and FPN GroupNorms' training calls compiled by XLA (the mask head's stay plain:
      its RoI count changes every step).
    * ``xla_conv``: backbone, FPN and RPN convolutions' training forwards by XLA, 3x3 filter gradients as
      patches @ dy by XLA (``ops.conv``).
    * ``xla_features``: in-process inference (detect, evaluate) runs backbone + FPN and the RPN head under XLA;
      exported SavedModels stay XLA-free.
    """

    device: str = "auto"
    jit_compile: bool | None = None
    xla_roi_align: bool | None = None
    crop_roi_align: bool | None = None
    xla_group_norm: bool | None = None
    xla_conv: bool | None = None
    xla_features: bool | None = None

    def resolved(self, gpu_visible):
        """A copy with ``device`` set to ``"cpu"`` or ``"gpu"`` and every switch a bool: the ones given, the
        device policy's for the rest. ``gpu_visible``: whether TensorFlow sees a GPU (for ``device="auto"``)."""
        if self.device not in ("auto", "cpu", "gpu"):
            raise ConfigError(f"runtime.device must be 'auto', 'cpu' or 'gpu', got {self.device!r}")
        device = ("gpu" if gpu_visible else "cpu") if self.device == "auto" else self.device
        policy = DEVICE_POLICIES[device]
        switches = {name: policy[name] if getattr(self, name) is None else bool(getattr(self, name))
                    for name in policy}
        return RuntimeConfig(device=device, **switches)


# "all", "tumour" or "every:K" (K >= 1): which axial slices of a volume become examples
SLICE_CHOICE = re.compile(r"^(all|tumour|every:[1-9][0-9]*)$")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How a volume (NIfTI case, DICOM series) becomes the model's slices; the 2-D formats ignore it. The same at
    training, evaluation and prediction: the run records it (docs/volumes.md has the details).

    * ``modalities``: up to three modalities, in the order they become the input's channels: names (BraTS file
      suffixes such as ``"flair"``, ``"t1ce"``; an nnU-Net ``dataset.json``'s channel names) or channel indices as
      strings (``"0"``: nnU-Net's ``CASE_0000`` files, or the last axis of a 4-D volume). One modality is repeated
      to three channels, two give ``(a, b, a)``. ``()``: every modality of a case that has at most three (numbered
      channels in their order, names alphabetically); ``mrcnn-train`` records the ones it resolved.
    * ``label_map``: ``((label value, class name), ...)``: the label values that are tumour classes, with their
      names; values sharing a name are one class; classes are numbered 1..K in order of first appearance; values not
      listed are background. ``()``: every label value above 0 is the one class ``"tumour"``.
    * ``slices``: ``"all"`` axial slices of a volume, those whose label holds ``"tumour"``, or ``"every:K"``
      (slices 0, K, 2K, ...).
    * ``intensity_percentiles``: a volume that is not uint8 is scaled to 0-255, each modality on its own, linearly
      from the low to the high percentile of its non-zero voxels (clipped beyond them); uint8 volumes are used as
      they are.
    """

    modalities: tuple = ()
    label_map: tuple = ()
    slices: str = "all"
    intensity_percentiles: tuple = (0.5, 99.5)

    def __post_init__(self):
        # Flags give strings, JSON gives lists: hold tuples of plain values, so that a JSON round trip is equal.
        try:
            modalities = tuple(str(name).strip() for name in self.modalities)
            label_map = tuple((int(value), str(name).strip()) for value, name in self.label_map)
            low, high = (float(p) for p in self.intensity_percentiles)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"data: expected modalities as names, label_map as (value, name) pairs and two "
                              f"intensity_percentiles ({error})") from error
        object.__setattr__(self, "modalities", modalities)
        object.__setattr__(self, "label_map", label_map)
        object.__setattr__(self, "intensity_percentiles", (low, high))
        if len(modalities) > 3 or not all(modalities):
            raise ConfigError(f"data.modalities: one to three non-empty names or indices (they become the three "
                              f"input channels), got {modalities}")
        values = [value for value, _ in label_map]
        if any(value < 1 for value in values) or len(set(values)) != len(values) or not all(n for _, n in label_map):
            raise ConfigError(f"data.label_map: distinct label values >= 1, each with a class name, got {label_map}")
        if not isinstance(self.slices, str) or not SLICE_CHOICE.match(self.slices):
            raise ConfigError(f"data.slices must be 'all', 'tumour' or 'every:K' (K >= 1), got {self.slices!r}")
        if not 0 <= low < high <= 100:
            raise ConfigError(f"data.intensity_percentiles: 0 <= low < high <= 100, got {(low, high)}")

    @property
    def class_names(self):
        """The foreground class names the label map gives (``("tumour",)`` without one)."""
        return tuple(dict.fromkeys(name for _, name in self.label_map)) or ("tumour",)


def parse_modalities(text):
    """``--modalities``: ``"flair,t1ce,t2"`` or ``"0,2,3"`` -> a tuple of names (ConfigError when empty)."""
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise ConfigError(f"modalities: expected names or indices separated by commas, got {text!r}")
    return names


def parse_label_map(text):
    """``--label-map``: ``"1=necrosis,2=oedema,4=enhancing"`` (or ``1:necrosis``) -> ``((1, "necrosis"), ...)``."""
    pairs = []
    for part in text.split(","):
        value, _, name = part.replace(":", "=").partition("=")
        if not value.strip().isdigit() or not name.strip():
            raise ConfigError(f"label map: expected VALUE=NAME pairs separated by commas (1=necrosis,2=oedema), "
                              f"got {text!r}")
        pairs.append((int(value), name.strip()))
    return tuple(pairs)


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration. ``num_classes`` counts the background (class 0)."""

    image_size: int = 256
    class_names: tuple = ("tumour",)
    max_instances: int = 8
    backbone: BackboneConfig = BackboneConfig()
    anchors: AnchorConfig = AnchorConfig()
    rpn: RPNConfig = RPNConfig()
    roi: RoIConfig = RoIConfig()
    inference: InferenceConfig = InferenceConfig()
    train: TrainConfig = TrainConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    data: DataConfig = DataConfig()

    def __post_init__(self):
        stride = self.anchors.strides[-1]
        if self.image_size <= 0 or self.image_size % stride:
            raise ConfigError(
                f"image_size must be a positive multiple of {stride} (the P6 stride), got {self.image_size}")
        if len(self.anchors.sizes) != len(self.anchors.strides):
            raise ConfigError(
                f"anchors.sizes needs one size per level {self.anchors.strides}, got {self.anchors.sizes}")
        candidates = self.rpn.train_post_nms_topk + self.max_instances
        if self.roi.batch_size_per_image > candidates:
            raise ConfigError(
                f"roi.batch_size_per_image ({self.roi.batch_size_per_image}) exceeds the RoI candidates "
                f"(rpn.train_post_nms_topk + max_instances = {candidates})"
            )
        if self.train.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.train.optimizer!r}")
        if self.train.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.train.lr_schedule!r}")
        if self.train.keep_checkpoints < 1:
            raise ConfigError(f"train.keep_checkpoints must be at least 1, got {self.train.keep_checkpoints}")
        crop = self.train.crop_size
        if crop and (crop < 0 or crop > self.image_size or crop % stride):
            raise ConfigError(f"train.crop_size must be 0 or a multiple of {stride} (the P6 stride) up to image_size "
                              f"({self.image_size}), got {crop}")
        if self.train.empty_slice_repeat < 1:
            raise ConfigError(f"train.empty_slice_repeat must be at least 1, got {self.train.empty_slice_repeat}")
        anchors = sum((self.image_size // s) ** 2 for s in self.anchors.strides) * len(self.anchors.aspect_ratios)
        if self.rpn.batch_size_per_image > anchors:
            raise ConfigError(
                f"rpn.batch_size_per_image ({self.rpn.batch_size_per_image}) exceeds the {anchors} anchors")

    @property
    def num_classes(self):
        return len(self.class_names) + 1

    @property
    def canonical_roi_size(self):
        """FPN's canonical RoI size 224 (for 800-pixel images) scaled to ``image_size``."""
        return 224.0 * self.image_size / 800.0

    def replace(self, **sections):
        """A copy with top-level fields replaced; nested sections given as dicts update only their keys."""
        updates = {}
        for name, value in sections.items():
            current = getattr(self, name)
            if dataclasses.is_dataclass(current) and isinstance(value, dict):
                value = dataclasses.replace(current, **value)
            updates[name] = value
        return dataclasses.replace(self, **updates)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self, path):
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def from_dict(cls, data):
        """The configuration of a ``to_dict`` dict; ConfigError for an unknown key."""
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object of configuration sections, got {type(data).__name__}")
        data = _without_moved_speed_switches(data)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(fields)
        if unknown:
            raise ConfigError(f"unknown config keys: {sorted(unknown)}")
        kwargs = {}
        for name, value in data.items():
            default = getattr(cls(), name)
            if dataclasses.is_dataclass(default):
                value = _section_from_dict(type(default), value)
            elif isinstance(default, tuple):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

    def with_settings(self, assignments):
        """A copy with ``assignments`` applied: strings ``"section.key=value"`` (``"train.learning_rate=0.02"``,
        ``"roi.mask_rois_per_image=8"``) or ``"key=value"`` for a top-level field (``"image_size=256"``). A value
        is read as JSON (numbers, ``true``, lists), else taken as a string. ConfigError names an assignment with
        an unknown section or key, or a value the section's checks refuse."""
        changes = {}
        for assignment in assignments:
            name, sep, text = assignment.partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"{assignment!r}: expected section.key=value")
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            path = setting_key(assignment).split(".")
            current = self
            for part in path:
                if not dataclasses.is_dataclass(current) or part not in {f.name for f in dataclasses.fields(current)}:
                    raise ConfigError(f"{assignment!r}: unknown configuration key {name.strip()!r}")
                current = getattr(current, part)
            if len(path) > 2 or (len(path) == 2) != dataclasses.is_dataclass(getattr(self, path[0])):
                raise ConfigError(f"{assignment!r}: expected section.key=value or a top-level key=value")
            value = _as_type_of(current, value, assignment)
            if len(path) == 2:
                changes.setdefault(path[0], {})[path[1]] = value
            else:
                changes[path[0]] = value
        try:
            return self.replace(**changes)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{list(assignments)}: {error}") from error

    @classmethod
    def from_preset(cls, name):
        """The package defaults with the preset ``name``'s changes (:data:`PRESETS`)."""
        return cls().replace(**preset(name).changes)

    @classmethod
    def from_json(cls, path):
        """The configuration a ``config.json`` holds; ConfigError naming ``path`` when it cannot be read."""
        try:
            with open(path) as f:
                return cls.from_dict(json.load(f))
        except (OSError, json.JSONDecodeError, ConfigError, TypeError) as error:
            raise ConfigError(f"{path}: not a readable configuration ({error})") from error


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named training recipe.

    ``changes``: the sections it sets (as :meth:`Config.replace` takes them) over the package defaults;
    ``fit_schedule``: a new run with a time budget (``--minutes``) sizes its decaying schedule to it
    (``mrcnn_tf.budget``); ``scoring``: how its test report picks the score threshold (the ``score_threshold`` and
    ``min_precision`` of ``evaluation.commands.evaluate_run``).
    """

    description: str
    changes: dict
    fit_schedule: bool = False
    scoring: dict = dataclasses.field(default_factory=lambda: {"score_threshold": 0.5})


PRESETS = {
    "paper": Preset(
        description="the paper's Table 2: lr 0.001 constant, batch 1, 200 steps x 30 epochs; scored at 0.5",
        changes={"train": {"learning_rate": 0.001, "lr_schedule": "constant", "batch_size": 1,
                           "steps_per_epoch": 200, "epochs": 30}},
    ),
    # What trained fastest from scratch on a CPU budget (benchmarks/RESULTS.md has the runs that chose it).
    "best": Preset(
        description="lr 0.01 with a cosine decay sized to --minutes, tumour-free slices twice a pass, trained on "
                    "192-pixel crops; scored at the validation F1-best threshold with validation precision >= 0.97",
        changes={"train": {"learning_rate": 0.01, "lr_schedule": "cosine", "warmup_steps": 200, "batch_size": 1,
                           "steps_per_epoch": 250, "epochs": 20, "empty_slice_repeat": 2, "crop_size": 192}},
        fit_schedule=True,
        scoring={"score_threshold": "val", "min_precision": 0.97},
    ),
}


def setting_key(assignment):
    """The ``section.key`` (or top-level ``key``) that an assignment ``"section.key=value"`` of
    :meth:`Config.with_settings` sets, unchecked."""
    return assignment.partition("=")[0].strip()


def preset(name):
    """The :class:`Preset` called ``name`` (one of :data:`PRESETS`); ConfigError for another name."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]


# Where the speed switches lived before the runtime section: runs written then still load, with the switches
# left to the device policy (none of them changes a result).
MOVED_SPEED_SWITCHES = {"train": ("jit_compile", "xla_roi_align", "crop_roi_align", "xla_group_norm", "xla_conv"),
                        "inference": ("xla_features",)}


def _as_type_of(current, value, assignment):
    """``value`` as a setting whose current value is ``current``: the same type (an int is a float's value too,
    a list a tuple's); ConfigError naming ``assignment`` otherwise. A setting that is None takes any value."""
    if current is None:
        return value
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(current, tuple):
        ok = isinstance(value, list)
        value = tuple(tuple(v) if isinstance(v, list) else v for v in value) if ok else value
    else:
        ok = isinstance(value, type(current))
    if not ok:
        raise ConfigError(f"{assignment!r}: expected a value like {json.dumps(current)}, got {json.dumps(value)}")
    return value


def _without_moved_speed_switches(data):
    """``data`` without the speed switches of a configuration written before ``runtime`` existed."""
    if "runtime" in data:
        return data
    data = dict(data)
    for section, names in MOVED_SPEED_SWITCHES.items():
        if isinstance(data.get(section), dict):
            data[section] = {k: v for k, v in data[section].items() if k not in names}
    return data


def _section_from_dict(section_type, data):
    names = {f.name for f in dataclasses.fields(section_type)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {section_type.__name__} keys: {sorted(unknown)}")
    return section_type(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
