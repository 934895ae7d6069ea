"""Building TensorRT engines ahead of time for the GPU image (`make engines`)."""
