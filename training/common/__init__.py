"""What every model's tooling shares: photo sources, the resumable training loop, checked ONNX export, TFJS weights."""
