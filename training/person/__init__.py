"""Person segmentation: MediaPipe's selfie segmentation converted from the mediapipe wheel's TFLite to ONNX (`convert.py`), checked against mediapipe itself (`reference.py`)."""
