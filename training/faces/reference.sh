#!/usr/bin/env bash
# Redo the reference run: install face-api under build/npm (gitignored), decode the
# package's sample photos to PPM with Pillow, run face-api on them under node and
# write models/faces/reference.json, which compare.py checks the ONNX pipeline against.
#
# usage: training/faces/reference.sh [OUT_JSON]   (from the repository root)
set -euo pipefail

NPM_DIR=build/npm
FACE_API="$NPM_DIR/node_modules/@vladmandic/face-api"
OUT=${1:-models/faces/reference.json}
PY=${PY:-.venv/bin/python}

# Exact versions: the figures in models/faces/manifest.json were measured with these.
npm install --prefix "$NPM_DIR" --no-audit --no-fund \
  @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 >&2

PPM_DIR=$(mktemp -d)
trap 'rm -rf "$PPM_DIR"' EXIT
"$PY" - "$FACE_API/demo" "$PPM_DIR" <<'EOF'
import sys
from pathlib import Path
from PIL import Image

source, target = Path(sys.argv[1]), Path(sys.argv[2])
for photo in sorted(source.glob("sample*.jpg")):
    Image.open(photo).convert("RGB").save(target / f"{photo.stem}.ppm")
EOF

node training/faces/reference.mjs "$FACE_API" "$PPM_DIR"/*.ppm > "$OUT"
echo "wrote $OUT" >&2
