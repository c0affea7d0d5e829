#!/usr/bin/env bash
# Recipe for the bundled `eurosat-ms` model: all 13 bands of Sentinel-2 L1C.
# EuroSAT MS here has only 270 labelled patches, too few to train a CNN from scratch. The network
# therefore starts as the RGB model (--init eurosat-rgb, trained on 21,331 RGB patches of other
# places): B04/B03/B02 filters are copied, the filters of the ten other bands start at zero, so it
# is exactly the RGB model on 13-band input. The RGB JPEGs are the L1C bands scaled linearly
# (JPEG ≈ DN × 0.0917 + 1.7), which is the input scaling of both models. 20 % of the 270 patches
# (54, stratified, seed 0) are held out for validation. Whether to fine-tune is chosen by
# cross-validation inside the 216 training patches only (python pipelines/select-eurosat-ms.py):
# on 5 repeated inner splits the untrained transfer scored 0.991, fine-tuning for 5-20 epochs at
# 1e-4..3e-4 (frozen batch-norm) 0.959-0.973, so the recipe writes the transferred network
# untrained (--epochs 0), validated on the 54. Usage:
#   pipelines/train-eurosat-ms.sh [EUROSAT_DIR] [OUT_DIR] [INIT_MODEL] [extra geolulc train options]
set -euo pipefail
DATA=${1:-../shared/data/eurosat}
OUT=${2:-runs/eurosat-ms}
INIT=${3:-eurosat-rgb}
shift $(( $# > 3 ? 3 : $# )) || true
geolulc -v train --data "$DATA/ms" --init "$INIT" --out "$OUT" --name eurosat-ms --epochs 0 \
  --seed 0 "$@"
