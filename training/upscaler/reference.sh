#!/usr/bin/env bash
# Redo the converter check: install the UpscalerJS ESRGAN tiers and pure-JS TFJS
# under build/npm/esrgan (gitignored; the packages pin tfjs ~4.11, apart from
# other tools' build/npm tree), convert every tier, run TFJS under node on crops
# of the held-out photos, and compare the ONNX files with it.
#
# usage: training/upscaler/reference.sh [MANIFEST_TO_RECORD_IN]   (from the repository root)
# The thick tier takes ~70 s per crop in pure JS, so it is checked on one crop.
set -euo pipefail

NPM_DIR=build/npm/esrgan
MODULES="$NPM_DIR/node_modules"
TIERS_DIR=build/tiers/upscaler
WORK=build/upscaler-reference
PY=${PY:-.venv/bin/python}
export PYTHONPATH=".:build/gen${PYTHONPATH:+:$PYTHONPATH}"

npm install --prefix "$NPM_DIR" --no-audit --no-fund \
  @upscalerjs/esrgan-slim@1.0.0 @upscalerjs/esrgan-medium@1.0.0 @upscalerjs/esrgan-thick@1.0.0 \
  @tensorflow/tfjs@4.11.0 >&2

for tier in slim medium thick; do
  "$PY" -m training.upscaler.convert --npm-dir "$MODULES" --tier "$tier" --out "$TIERS_DIR" >&2
done

rm -rf "$WORK"
"$PY" -m training.upscaler.compare prepare "$WORK"
for tier in slim medium thick; do
  for scale in 2 4; do
    photos=("$WORK"/*.ppm)
    [ "$tier" = thick ] && photos=("${photos[0]}")
    out="$WORK/esrgan_${tier}_x${scale}"
    node training/upscaler/reference.mjs "$MODULES" "$tier" "$scale" "$out" "${photos[@]}" \
      > "$WORK/versions.tmp" 2> >(grep -v -e '^=*$' -e 'tfjs-node' -e 'Hi, looks like' >&2)
    mv "$WORK/versions.tmp" "$out/versions.json"
  done
done

"$PY" -m training.upscaler.compare check "$WORK" --models "$TIERS_DIR" ${1:+--record "$1"}
