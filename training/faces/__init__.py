"""Face analysis networks: face-api's TFJS weights rebuilt in PyTorch, converted to ONNX, checked against face-api itself."""
