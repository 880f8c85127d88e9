"""Evaluation: the paper's image-level confusion matrix and equation-(3) AP, COCO AP, Dice, reports and plots.

Every function works on :class:`mrcnn_tf.evaluation.records.ImageRecord` lists (NumPy, at each image's original
size), so a model's predictions and a COCO results file are scored by the same code.
"""
