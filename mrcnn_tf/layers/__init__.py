"""Thin Keras layers over ``mrcnn_tf.ops``: they hold weights or settings, the ops do the work."""
