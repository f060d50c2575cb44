#!/usr/bin/env bash
# Every REST call with curl: classify, features, Grad-CAM++ and SmoothGrad with their overlays
# decoded to PNG files, and the feature index (add, search, stats, delete).
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

echo "wrote $OUT/cam.heatmap.png $OUT/cam.overlay.png $OUT/smoothgrad.overlay.png"
