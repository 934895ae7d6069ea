"""Model tooling: data, training, export, conversion from registry packages, reference checks and TensorRT builds. Serving never imports it."""
