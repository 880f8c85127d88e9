"""Datasets: readers that turn files into examples, and the tf.data pipeline that feeds the model."""
