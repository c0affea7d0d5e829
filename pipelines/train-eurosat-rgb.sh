#!/usr/bin/env bash
# Recipes for the B04/B03/B02 models trained on the EuroSAT RGB JPEGs. The 270 places of the
# EuroSAT MS set are left out (--exclude) so that the multispectral models can later be validated
# on places no model has seen. Reproducible: fixed seed (split, initialisation, augmentation);
# every run re-creates the same seed-0 validation split of 4,266 patches, never used in training.
#
# 1. The bundled `eurosat-rgb` (benchmark model): 200 epochs with the basic augmentation (flips,
#    rotations, shifts, gain), AdamW, one-cycle schedule, EMA of the weights; the last epoch is
#    shipped. Packed as float16 with a card that averages 4 rotations/flips of each patch
#    (`views`: 0.9822 one view, 0.9845 two, 0.9864 four, 0.9855 eight; docs/models.md). The
#    count was chosen by `geolulc evaluate --split val` of the packed model with each count in
#    its card; the card's metrics (val_accuracy, val_accuracy_by_views) were written from those.
# 2. The three-stage model bundled as `eurosat-rgb-scenes` (what `auto` maps RGB-only scenes with,
#    and what `eurosat-ms` starts from; `eurosat-rgb` up to git 573c836): stage 1 for 100
#    epochs; stage 2, 15 epochs of the `raw` augmentation (per-band
#    gain and offset, haze, sensor noise, blur/sharpening, JPEG re-compression, scene-edge cuts
#    filled as the map fills them) moves it to the raw L1C/L2A windows that `geolulc map` feeds
#    it; stage 3, 5 epochs that add the 2,671 fully clear 64×64 windows (stride 32) of the 20
#    OSCD scenes with Dynamic World's water share of each (pipelines/real-windows.py), a quarter
#    as many per step as patches, pulling River + SeaLake to that share.
# Usage:
#   pipelines/train-eurosat-rgb.sh [EUROSAT_DIR] [OUT_DIR] [extra geolulc train options]
set -euo pipefail
DATA=${1:-../shared/data/eurosat}
OUT=${2:-runs/eurosat-rgb}
shift $(( $# > 2 ? 2 : $# )) || true
stage1() {  # stage1 EPOCHS OUT_DIR [options]
  local epochs=$1 out=$2
  shift 2
  geolulc -v train --data "$DATA/rgb" --exclude "$DATA/ms" --out "$out" --name eurosat-rgb \
    --epochs "$epochs" --batch-size 128 --lr 3e-3 --weight-decay 0.05 --widths 32,64,128,256 \
    --blocks 2,2,2,2 --augment basic --shift 4 --ema 0.999 --seed 0 --resume "$@"
}
# 1. the bundled benchmark model
stage1 200 "$OUT/stage1-200" "$@"
cp "$OUT/stage1-200/eurosat-rgb.json" "$OUT/eurosat-rgb.json"
python pipelines/pack-model.py "$OUT/stage1-200/eurosat-rgb.safetensors" \
  "$OUT/eurosat-rgb.safetensors" --views 4
# 2. eurosat-rgb-scenes (rename the card's `name`; packed as float16 like the other)
MAP="$OUT/map-domain"
stage1 100 "$MAP/stage1" "$@"
geolulc -v train --data "$DATA/rgb" --exclude "$DATA/ms" --out "$MAP/stage2" --name eurosat-rgb \
  --init "$MAP/stage1/eurosat-rgb.json" --epochs 15 --batch-size 128 --lr 1e-3 \
  --augment raw --ema 0.999 --seed 0 --resume "$@"
OSCD=${OSCD:-$(dirname "$DATA")/oscd}
scenes() { for city in "$@"; do echo "$OSCD/$city/imgs_1" "$OSCD/$city/imgs_2"; done; }
# two city folds (docs/models.md's cross-validation trains on one and checks the other)
python pipelines/real-windows.py "$MAP/fold-a.npz" $(scenes hongkong norcia paris rennes bordeaux)
python pipelines/real-windows.py "$MAP/fold-b.npz" $(scenes rio aguasclaras bercy nantes montpellier)
geolulc -v train --data "$DATA/rgb" --exclude "$DATA/ms" --out "$MAP" --name eurosat-rgb \
  --init "$MAP/stage2/eurosat-rgb.json" --windows "$MAP/fold-a.npz" --windows "$MAP/fold-b.npz" \
  --epochs 5 --batch-size 128 --lr 5e-4 --augment raw --ema 0.999 --seed 0 --resume "$@"
