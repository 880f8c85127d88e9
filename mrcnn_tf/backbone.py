"""ResNet50 (C2-C5) with a choice of normalisation, and loading of its pre-trained weights.

Layer names follow ``keras.applications.ResNet50`` (``conv1_conv``, ``conv2_block1_1_conv``, ...) so that its
ImageNet weights, or any weights file of that model, load by name. BatchNorm layers are replaced by GroupNorm
layers named ``*_gn`` when ``norm="group_norm"``; those start fresh while the convolutions still load.

Shape letters: ``B`` batch, ``S`` input side.
"""
import os

import keras

from mrcnn_tf.errors import ConfigError
from mrcnn_tf.layers.factory import LayerFactory

STAGES = (("conv2", 64, 3, 1), ("conv3", 128, 4, 2), ("conv4", 256, 6, 2), ("conv5", 512, 3, 2))
# Caffe-style ImageNet statistics, RGB order, as keras.applications.resnet.preprocess_input expects.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)


def _bottleneck(x, filters, stride, shortcut_conv, name, layers):
    if shortcut_conv:
        shortcut = layers.conv(4 * filters, 1, strides=stride, name=name + "_0_conv")(x)
        shortcut = layers.norm_layer(name + "_0")(shortcut)
    else:
        shortcut = x
    x = layers.conv(filters, 1, strides=stride, name=name + "_1_conv")(x)
    x = layers.norm_layer(name + "_1")(x)
    x = keras.layers.Activation("relu", name=name + "_1_relu")(x)
    x = layers.conv(filters, 3, padding="same", name=name + "_2_conv")(x)
    x = layers.norm_layer(name + "_2")(x)
    x = keras.layers.Activation("relu", name=name + "_2_relu")(x)
    x = layers.conv(4 * filters, 1, name=name + "_3_conv")(x)
    x = layers.norm_layer(name + "_3")(x)
    x = keras.layers.Add(name=name + "_add")([shortcut, x])
    return keras.layers.Activation("relu", name=name + "_out")(x)


def build_resnet50(image_size, layers=None):
    """A functional ResNet50 returning ``[C2, C3, C4, C5]`` (strides 4, 8, 16, 32), its convolutions and norms
    made by ``layers`` (a :class:`~mrcnn_tf.layers.factory.LayerFactory`; default frozen BatchNorm, no XLA).

    Input: ``[B, S, S, 3]`` float, already normalised (see :func:`preprocess`); ``image_size`` ``S``, or None for
    inputs of any size (a model that trains on crops).
    """
    layers = layers or LayerFactory()
    inputs = keras.Input((image_size, image_size, 3), name="normalized_image")
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = layers.conv(64, 7, strides=2, name="conv1_conv")(x)
    x = layers.norm_layer("conv1")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    outputs = []
    for stage, filters, blocks, stride in STAGES:
        for block in range(1, blocks + 1):
            first = block == 1
            x = _bottleneck(x, filters, stride if first else 1, first, f"{stage}_block{block}", layers)
        outputs.append(x)
    return keras.Model(inputs, outputs, name="resnet50")


def preprocess(images):
    """uint8/float RGB ``[B, S, S, 3]`` in 0-255 -> the caffe-style input ImageNet ResNet50 weights expect."""
    images = keras.ops.cast(images, "float32")
    bgr = images[..., ::-1] - keras.ops.convert_to_tensor(IMAGENET_MEAN_RGB[::-1], "float32")
    return bgr


def load_pretrained(backbone, weights, image_size):
    """Copy pre-trained ResNet50 weights into ``backbone`` by layer name; returns the names copied.

    ``weights`` is ``"imagenet"`` (downloaded by Keras) or the path of a weights file of
    ``keras.applications.ResNet50(include_top=False)`` (``.h5`` or ``.weights.h5``).
    """
    if weights != "imagenet" and not os.path.isfile(weights):
        raise ConfigError(f"backbone weights file not found: {weights}")
    try:
        reference = keras.applications.ResNet50(
            include_top=False, weights=weights, input_shape=(image_size, image_size, 3)
        )
    except Exception as error:  # Keras raises a bare Exception when the download fails
        hint = (
            "'imagenet' needs internet access; offline, download resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
            " elsewhere and pass its path"
            if weights == "imagenet"
            else "expected a weights file saved from keras.applications.ResNet50(include_top=False)"
        )
        raise ConfigError(f"cannot load ResNet50 weights from {weights!r}: {error} ({hint})") from error
    copied = []
    for layer in backbone.layers:
        if not layer.weights:
            continue
        try:
            source = reference.get_layer(layer.name)
        except ValueError:
            continue  # GroupNorm layers have no pre-trained twin
        layer.set_weights(source.get_weights())
        copied.append(layer.name)
    return copied


def freeze_stages(backbone, num_stages):
    """Freeze the stem (``conv1``) and residual stages ``conv2 .. conv{num_stages}`` (none when 0)."""
    prefixes = tuple(f"conv{i}_" for i in range(1, num_stages + 1))
    for layer in backbone.layers:
        if num_stages > 0 and layer.name.startswith(prefixes):
            layer.trainable = False
