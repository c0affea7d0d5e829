#!/usr/bin/env bash
# Recipe for the bundled `eurosat-rgb` model: B04/B03/B02, trained on the EuroSAT RGB JPEGs.
# The 270 places of the EuroSAT MS set are left out (--exclude) so that the multispectral model
# can later be validated on places neither model has seen.
# Reproducible: fixed seed (split, initialisation, augmentation). Usage:
#   pipelines/train-eurosat-rgb.sh [EUROSAT_DIR] [OUT_DIR] [extra geolulc train options]
set -euo pipefail
DATA=${1:-../shared/data/eurosat}
OUT=${2:-runs/eurosat-rgb}
shift $(( $# > 2 ? 2 : $# )) || true
geolulc -v train --data "$DATA/rgb" --exclude "$DATA/ms" --out "$OUT" --name eurosat-rgb \
  --epochs 100 --batch-size 128 --lr 3e-3 --weight-decay 0.05 --widths 32,64,128,256 \
  --blocks 2,2,2,2 --shift 4 --ema 0.999 --seed 0 --resume "$@"
