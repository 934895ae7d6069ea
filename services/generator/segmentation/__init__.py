"""Person segmentation: which pixels of a photo belong to a person (hair and clothes included).

The network is MediaPipe's selfie segmentation model (Apache-2.0), taken from
the mediapipe wheel and converted to ONNX by `convert.py`; `reference.py`
checks the file against mediapipe itself; `person.PersonSegmenter` runs it.
"""
