"""Learning-rate schedules: a linear warm-up, then constant (the paper) or cosine decay.

The schedule is a function of the optimizer's step counter, which the run's checkpoint restores, so a resumed
run continues on the same curve.
"""
import math

import keras
import tensorflow as tf

from mrcnn_tf.config import LR_SCHEDULES


@keras.saving.register_keras_serializable(package="mrcnn_tf")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``base * step / warmup`` for the first ``warmup_steps``, then constant or cosine decay to 0 at
    ``total_steps``."""

    def __init__(self, base_rate, warmup_steps, total_steps, decay="constant"):
        if decay not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {decay!r}")
        self.base_rate = float(base_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.decay = decay

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.minimum((step + 1.0) / max(self.warmup_steps, 1), 1.0)
        if self.decay == "constant":
            return self.base_rate * warmup
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        return self.base_rate * warmup * 0.5 * (1.0 + tf.cos(math.pi * progress))

    def get_config(self):
        return {"base_rate": self.base_rate, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "decay": self.decay}
