#!/usr/bin/env bash
# Recipe for the bundled `eurosat-rgb` model: B04/B03/B02, trained on the EuroSAT RGB JPEGs.
# The 270 places of the EuroSAT MS set are left out (--exclude) so that the multispectral model
# can later be validated on places neither model has seen.
# Stage 1 (100 epochs, basic augmentation: flips, shifts, gain) learns EuroSAT; stage 2
# (15 epochs from stage 1, the `raw` augmentation: per-band gain and offset, haze, sensor noise,
# blur/sharpening, JPEG re-compression, scene-edge cuts filled as the map fills them) moves it
# to the raw L1C/L2A windows that `geolulc map` feeds it. Both stages keep the same seed-0
# validation split (the stage-2 run re-creates it from the same folder and seed).
# Reproducible: fixed seed (split, initialisation, augmentation). Usage:
#   pipelines/train-eurosat-rgb.sh [EUROSAT_DIR] [OUT_DIR] [extra geolulc train options]
set -euo pipefail
DATA=${1:-../shared/data/eurosat}
OUT=${2:-runs/eurosat-rgb}
shift $(( $# > 2 ? 2 : $# )) || true
geolulc -v train --data "$DATA/rgb" --exclude "$DATA/ms" --out "$OUT/stage1" --name eurosat-rgb \
  --epochs 100 --batch-size 128 --lr 3e-3 --weight-decay 0.05 --widths 32,64,128,256 \
  --blocks 2,2,2,2 --augment basic --shift 4 --ema 0.999 --seed 0 --resume "$@"
geolulc -v train --data "$DATA/rgb" --exclude "$DATA/ms" --out "$OUT" --name eurosat-rgb \
  --init "$OUT/stage1/eurosat-rgb.json" --epochs 15 --batch-size 128 --lr 1e-3 \
  --augment raw --ema 0.999 --seed 0 --resume "$@"
