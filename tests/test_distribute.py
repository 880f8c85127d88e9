"""tf.distribute: one step under MirroredStrategy on 2 logical CPUs equals one single-device step on the same
global batch of 2 (loss and updated weights), with the gradient clipped, in a subprocess that can split the CPU
before TF starts (the installed package, and the test helpers through ``PYTHONPATH``)."""
import json
import os
import subprocess
import sys

import numpy as np

TESTS = os.path.dirname(os.path.abspath(__file__))
CLIP_NORM = 0.01  # far below the gradient's norm (asserted), so the step is clipped

SCRIPT = r"""
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from conftest import ellipse_image, tiny_config
from mrcnn_tf.data.instances import make_example
from mrcnn_tf.training import compile_model

# Sample every candidate (fraction 1, counts = all anchors / all RoI candidates) so no random subset decides
# the loss: the two runs can then be compared exactly. The clip norm is far below the gradient's norm, so the
# step is clipped: the replicas must agree on one scale, that of the summed gradient.
config = tiny_config().replace(
    rpn={"batch_size_per_image": 1023, "positive_fraction": 1.0},
    roi={"batch_size_per_image": 104, "positive_fraction": 1.0, "mask_rois_per_image": 104},
    train={"warmup_steps": 1, "learning_rate": 1.0, "clipnorm": CLIP_NORM},
)
examples = []
for seed, ellipses in enumerate(([(20, 22, 10, 12)], [(40, 40, 8, 9), (15, 45, 6, 6)])):
    image, masks = ellipse_image(64, ellipses, seed=seed)
    examples.append(make_example(image, masks, np.ones(len(masks), np.int32), 64, config.max_instances, "s"))
batch = {"images": np.stack([e["image"] for e in examples])}
for key in ("gt_boxes", "gt_classes", "gt_masks"):
    batch[key] = np.stack([e[key] for e in examples])

single = compile_model(config)
initial = single.get_weights()
with tf.GradientTape() as tape:
    loss = single.compute_losses({k: tf.constant(v) for k, v in batch.items()}, training=True)["loss"]
gradient_norm = float(tf.linalg.global_norm(tape.gradient(loss, single.trainable_variables)))
single_loss = float(single.train_on_batch(batch, return_dict=True)["loss"])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mirrored = compile_model(config, strategy)
mirrored.set_weights(initial)
dataset = tf.data.Dataset.from_tensors(batch)
history = mirrored.fit(strategy.experimental_distribute_dataset(dataset), epochs=1, verbose=0)
mirrored_loss = float(history.history["loss"][0])
difference = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), mirrored.get_weights()))
change = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), initial))
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "single": single_loss, "mirrored": mirrored_loss,
                  "weight_difference": difference, "weight_change": change,
                  "gradient_norm": gradient_norm}))
"""


def test_mirrored_step_matches_single_device_step(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=TESTS)  # conftest's helpers; mrcnn_tf is installed
    script = SCRIPT.replace("CLIP_NORM", repr(CLIP_NORM))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["replicas"] == 2
    assert figures["gradient_norm"] > 10 * CLIP_NORM  # the step was clipped
    np.testing.assert_allclose(figures["mirrored"], figures["single"], rtol=1e-4)
    assert figures["weight_change"] > 1e-6  # the step really trained something...
    assert figures["weight_difference"] < 1e-3 * figures["weight_change"] + 1e-7  # ...and the same way on both
