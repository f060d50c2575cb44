#!/usr/bin/env bash
# Every REST call with curl: classify, features, Grad-CAM++ and SmoothGrad with their overlays
# decoded to PNG files, the feature index (add, search, stats, delete), and inspect (layers with
# their receptive fields, feature maps, filters, the top examples of a channel with their patches).
#
#   clients/examples/curl.sh IMAGE [MODEL]      (MODEL: efficientnet_lite0 by default)
#
# The key comes from var/key_file.json (or $CONVSCOPE_KEY_FILE); the server from
# $CONVSCOPE_URL (default http://127.0.0.1:8080). Files go to $OUT (default: a temporary folder).
set -euo pipefail

IMAGE=${1:?usage: $0 IMAGE [MODEL]}
MODEL=${2:-efficientnet_lite0}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
KEY_FILE=${CONVSCOPE_KEY_FILE:-$REPO/var/key_file.json}
URL=${CONVSCOPE_URL:-http://127.0.0.1:8080}
OUT=${OUT:-$(mktemp -d)}
KEY=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['inference']['key'])" "$KEY_FILE")
ID="examples/$(basename "$IMAGE")"

post() {  # post ENDPOINT CURL-ARGS...: fail on an HTTP error, printing the error document
  local endpoint=$1; shift
  curl -sS --fail-with-body -H "Authorization: Bearer $KEY" "$@" "$URL/predictions/$endpoint"
}

echo "== classify"
post "$MODEL" -F "data=@$IMAGE" -F top_k=3 | jq -c '.predictions[]'

echo "== features"
post "$MODEL-features" -F "data=@$IMAGE" | jq -c '{layer, dim, first: .vector[:4]}'

echo "== Grad-CAM++ (heatmap and overlay)"
post "$MODEL-cam" -F "data=@$IMAGE" -F method=gradcam_pp -F output=heatmap,overlay > "$OUT/cam.json"
jq -r .heatmap "$OUT/cam.json" | base64 -d > "$OUT/cam.heatmap.png"
jq -r .overlay "$OUT/cam.json" | base64 -d > "$OUT/cam.overlay.png"
jq -c '{method, target, "label": .label, score, width, height}' "$OUT/cam.json"

echo "== SmoothGrad (overlay)"
post "$MODEL-saliency" -F "data=@$IMAGE" -F method=smoothgrad -F samples=8 -F seed=0 -F output=overlay \
  | jq -r .overlay | base64 -d > "$OUT/smoothgrad.overlay.png"

echo "== the feature index: add, search, stats, delete"
post "$MODEL-neighbours" -F "data=@$IMAGE" -F op=add -F "id=$ID" -F label=example \
  -F 'metadata={"from": "curl.sh"}' | jq -c .
post "$MODEL-neighbours" -F "data=@$IMAGE" -F k=3 | jq -c '.neighbours[] | {id, distance, "label": .label}'
post "$MODEL-neighbours" -H "Content-Type: application/json" -d '{"op": "stats"}' | jq -c '{count, dim, metric, backend}'
post "$MODEL-neighbours" -H "Content-Type: application/json" -d "{\"op\": \"delete\", \"id\": \"$ID\"}" | jq -c .

echo "== inspect: the last layers, their shapes and receptive fields (input pixels)"
post "$MODEL-inspect" -H "Content-Type: application/json" -d '{"op": "layers"}' \
  | jq -c '.layers[-3:][] | {name, shape, stored, size: .receptive_field.size, jump: .receptive_field.jump}'

echo "== inspect: the 8 channels of the CAM layer with the largest mean (a grid PNG and the raw maps)"
post "$MODEL-inspect" -F "data=@$IMAGE" -F op=feature_maps -F top=8 -F output=grid,raw > "$OUT/maps.json"
jq -r .grid "$OUT/maps.json" | base64 -d > "$OUT/maps.grid.png"
jq -c '{layer, shape, raw: .raw.shape, first: .channels[:3]}' "$OUT/maps.json"

echo "== inspect: the filters of the first convolution"
post "$MODEL-inspect" -H "Content-Type: application/json" -d '{"op": "filters"}' > "$OUT/filters.json"
jq -r .grid "$OUT/filters.json" | base64 -d > "$OUT/filters.grid.png"
jq -c '{layer, shape, mode, shown}' "$OUT/filters.json"

echo "== inspect: the 4 gallery images that most excite channel 5 of the first stored layer"
post "$MODEL-inspect" -H "Content-Type: application/json" \
  -d '{"op": "top_examples", "channel": 5, "k": 4, "patches": true}' > "$OUT/top.json"
jq -c '{layer, channel, count}, (.examples[] | {id, "label": .label, activation, box})' "$OUT/top.json"
jq -r '.examples | to_entries[] | "\(.key + 1) \(.value.patch)"' "$OUT/top.json" | while read -r rank png; do
  base64 -d <<< "$png" > "$OUT/top.patch-$rank.png"
done

echo "wrote $OUT/cam.heatmap.png $OUT/cam.overlay.png $OUT/smoothgrad.overlay.png $OUT/maps.grid.png" \
  "$OUT/filters.grid.png" "$OUT"/top.patch-*.png
