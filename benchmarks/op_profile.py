"""Where a train step's or an inference's time goes, op by op: TensorFlow's profiler, summed by op type and by op.

    python benchmarks/op_profile.py --what train|inference [--steps 3] [--top 25]

Torchvision's settings and ``speed.py``'s synthetic ellipse, GroupNorm, the model run as ``speed.py`` times it
(inference as ``inference.detect`` runs it). Three warm-up calls, then ``--steps`` profiled ones; prints, per call,
the milliseconds of each op type and of the ``--top`` slowest ops (the runs of XLA programs count as one type;
times under the profiler run somewhat above plain ones, and ops that run concurrently on
TF's two inter-op threads both count).
"""
import argparse
import collections
import glob
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import mrcnn_tf  # noqa: E402,F401  (first: it sets TensorFlow's CPU environment before TF loads)

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

import speed  # noqa: E402
from mrcnn_tf.training import compile_model  # noqa: E402


XLA_RUN = "CpuExecutable::ExecuteAsyncOnStream"  # one run of an XLA-compiled program


def op_times(space, calls):
    """``(by type, by op)``: Counters of ms per call, from the TF op events of the host's executor threads."""
    by_type, by_op = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # TF's executor threads (not Eigen's workers inside ops)
                continue
            for event in line.events:
                name = names[event.metadata_id].name  # "scope/op:Type", or the runtime's own "Class::method"
                if name == XLA_RUN:
                    kind = name = "XLA programs"
                elif "::" in name or ":" not in name:  # the executor's bookkeeping, which encloses the ops
                    continue
                else:
                    kind = name.rsplit(":", 1)[-1]
                ms = event.duration_ps / 1e9 / calls
                by_type[kind] += ms
                by_op[name] += ms
    return by_type, by_op


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--what", choices=("train", "inference"), required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    config = speed.benchmark_config("torchvision", 256, 1, "group_norm")
    model = compile_model(config)
    batch = speed.synthetic_batch(config, 1)
    if args.what == "train":
        def run():
            model.train_on_batch(batch)
    else:
        infer = speed.in_process_inference(model)
        images = tf.constant(batch["images"])

        def run():
            infer(images)["masks"].numpy()
    for _ in range(3):
        run()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.steps):
            run()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    by_type, by_op = op_times(space, args.steps)
    print(f"{args.what}: ms per call by op type")
    for name, ms in by_type.most_common(args.top):
        print(f"{ms:9.1f}  {name}")
    print(f"{args.what}: the {args.top} slowest ops, ms per call")
    for name, ms in by_op.most_common(args.top):
        print(f"{ms:9.1f}  {name}")


if __name__ == "__main__":
    main()
