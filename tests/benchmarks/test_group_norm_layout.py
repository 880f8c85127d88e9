"""benchmarks/group_norm_layout.py: it records every GroupNorm call of a train step, and its variants compute the
same gradients as Keras' layer."""
import numpy as np
from conftest import load_benchmark, tiny_config

from mrcnn_tf.layers.group_norm import GroupNormalization
from mrcnn_tf.training import compile_model


def test_group_norm_layout_records_every_call_and_times_the_same_gradients():
    layout = load_benchmark("group_norm_layout")
    config = tiny_config(backbone={"norm": "group_norm"})
    model = compile_model(config)
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, GroupNormalization)]
    seen = layout.group_norm_inputs(model, layout.speed.synthetic_batch(config, 1))
    assert len(seen) == len(norms) == 53 + 8 + 4  # ResNet50, FPN, mask head: each called once
    assert all(shape[-1] % groups == 0 and epsilon == 1e-5 for shape, _, groups, epsilon in seen)
    assert not any("call" in vars(layer) for layer in norms)  # the recording calls are gone
    calls = [((3, 6, 5, 16), 4, 1e-5), ((2, 4, 8), 2, 1e-3)]
    want = layout.forward_backward(layout.keras_layer, calls)()
    for make in (layout.by_function(layout.group_norm), layout.by_function(layout.ab.grouped_5d_group_norm)):
        for got_grads, want_grads in zip(layout.forward_backward(make, calls)(), want):
            for a, b in zip(got_grads, want_grads):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
