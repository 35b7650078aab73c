"""Small helpers of keras_cvlec: compute cost, argument checks."""

from keras_cvlec.utils.flops import count_flops
