#!/usr/bin/env bash
# Recipe for the bundled `eurosat-ms` model: all 13 bands of Sentinel-2 L1C.
# EuroSAT MS here has 270 + 77 labelled 13-band patches, too few to train a CNN from scratch.
# The network therefore starts as an RGB model (--init, trained on 21,331 RGB
# patches of other places): B04/B03/B02 filters are copied, the filters of the ten other bands
# start at zero. It is then trained on the 216 training patches of ms/ plus all 77 of ms-extra/
# (--extra-train: training only, their places are in rgb/), with the raw-scene augmentation,
# the loss and the RGB model's soft targets (--teacher) that cross-validation inside those
# patches chose (python pipelines/select-eurosat-ms.py; the 54 validation patches of ms/,
# stratified, seed 0, which neither model saw, are never used to choose). Like the RGB model it
# learns the Dynamic World water share of the 2,671 OSCD windows (weight 3, chosen by the
# two-fold city cross-validation in docs/models.md; pipelines/train-eurosat-rgb.sh makes the files).
# The bundled model started from the three-stage RGB model (step 2 of pipelines/train-eurosat-rgb.sh,
# bundled as eurosat-rgb-scenes), not from the benchmark eurosat-rgb. Usage:
#   pipelines/train-eurosat-ms.sh [EUROSAT_DIR] [OUT_DIR] [INIT_MODEL] [extra geolulc train options]
#   e.g. ... ../shared/data/eurosat runs/eurosat-ms runs/eurosat-rgb/map-domain/eurosat-rgb.json \
#        --windows runs/eurosat-rgb/map-domain/fold-a.npz --windows runs/eurosat-rgb/map-domain/fold-b.npz
set -euo pipefail
DATA=${1:-../shared/data/eurosat}
OUT=${2:-runs/eurosat-ms}
INIT=${3:-eurosat-rgb-scenes}
shift $(( $# > 3 ? 3 : $# )) || true
geolulc -v train --data "$DATA/ms" --extra-train "$DATA/ms-extra" --init "$INIT" \
  --teacher "$INIT" --out "$OUT" --name eurosat-ms --epochs 20 --batch-size 32 --lr 3e-4 \
  --loss label-smoothing --augment raw --seed 0 --window-weight 3 "$@"
