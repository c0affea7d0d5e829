#!/usr/bin/env bash
# Recipe for the bundled `eurosat-rgb` model: B04/B03/B02, trained on the EuroSAT RGB JPEGs.
# The 270 places of the EuroSAT MS set are left out (--exclude) so that the multispectral model
# can later be validated on places neither model has seen.
# Stage 1 (100 epochs, basic augmentation: flips, shifts, gain) learns EuroSAT; stage 2
# (15 epochs from stage 1, the `raw` augmentation: per-band gain and offset, haze, sensor noise,
# blur/sharpening, JPEG re-compression, scene-edge cuts filled as the map fills them) moves it
# to the raw L1C/L2A windows that `geolulc map` feeds it. Stage 3 (5 epochs from stage 2, raw
# augmentation) adds the 2,671 fully clear 64×64 windows (stride 32) of the 20 OSCD scenes with Dynamic World's
# water share of each (pipelines/real-windows.py): each step adds a quarter as many of them as patches and pulls the
# River + SeaLake probability to that share. All stages keep the same seed-0 validation split
# (each run re-creates it from the same folder and seed). The city-fold runs that measure the
# real-scene figures on cities whose windows were not trained on are in the README.
# Reproducible: fixed seed (split, initialisation, augmentation). Usage:
#   pipelines/train-eurosat-rgb.sh [EUROSAT_DIR] [OUT_DIR] [extra geolulc train options]
set -euo pipefail
DATA=${1:-../shared/data/eurosat}
OUT=${2:-runs/eurosat-rgb}
shift $(( $# > 2 ? 2 : $# )) || true
geolulc -v train --data "$DATA/rgb" --exclude "$DATA/ms" --out "$OUT/stage1" --name eurosat-rgb \
  --epochs 100 --batch-size 128 --lr 3e-3 --weight-decay 0.05 --widths 32,64,128,256 \
  --blocks 2,2,2,2 --augment basic --shift 4 --ema 0.999 --seed 0 --resume "$@"
geolulc -v train --data "$DATA/rgb" --exclude "$DATA/ms" --out "$OUT/stage2" --name eurosat-rgb \
  --init "$OUT/stage1/eurosat-rgb.json" --epochs 15 --batch-size 128 --lr 1e-3 \
  --augment raw --ema 0.999 --seed 0 --resume "$@"
OSCD=${OSCD:-$(dirname "$DATA")/oscd}
scenes() { for city in "$@"; do echo "$OSCD/$city/imgs_1" "$OSCD/$city/imgs_2"; done; }
# two city folds (the README's cross-validation trains on one and checks the other)
python pipelines/real-windows.py "$OUT/fold-a.npz" $(scenes hongkong norcia paris rennes bordeaux)
python pipelines/real-windows.py "$OUT/fold-b.npz" $(scenes rio aguasclaras bercy nantes montpellier)
geolulc -v train --data "$DATA/rgb" --exclude "$DATA/ms" --out "$OUT" --name eurosat-rgb \
  --init "$OUT/stage2/eurosat-rgb.json" --windows "$OUT/fold-a.npz" --windows "$OUT/fold-b.npz" \
  --epochs 5 \
  --batch-size 128 --lr 5e-4 --augment raw --ema 0.999 --seed 0 --resume "$@"
