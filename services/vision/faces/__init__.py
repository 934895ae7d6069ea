"""Face analysis: detection, 68 landmarks, age/gender and an identity embedding.

The networks are face-api's (MIT), converted from the TFJS weights that the
npm package ships by `training/faces/convert.py`; `analyzer.FaceAnalyzer` runs them.
"""
