"""Pure TensorFlow functions: no Keras, no config objects, only tensors and plain arguments."""
