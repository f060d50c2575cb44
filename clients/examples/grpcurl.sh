#!/usr/bin/env bash
# The typed convscope.v1 API with grpcurl, through server reflection (no proto file needed):
# list and describe, health, classify, Grad-CAM++ with its overlay decoded to a PNG, the feature
# index (add, search, stats, delete), and inspect (the layers in ModelMetadata and InspectLayers,
# FeatureMaps, Filters, TopExamples with patches). grpcurl is not a Debian package: install it
# from its releases where you run this.
#
#   clients/examples/grpcurl.sh IMAGE [MODEL]   (MODEL: efficientnet_lite0 by default)
#
# The key comes from var/key_file.json (or $CONVSCOPE_KEY_FILE); the gateway from
# $CONVSCOPE_TARGET (default 127.0.0.1:50051). Files go to $OUT (default: a temporary folder).
set -euo pipefail

IMAGE=${1:?usage: $0 IMAGE [MODEL]}
MODEL=${2:-efficientnet_lite0}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
KEY_FILE=${CONVSCOPE_KEY_FILE:-$REPO/var/key_file.json}
TARGET=${CONVSCOPE_TARGET:-127.0.0.1:50051}
OUT=${OUT:-$(mktemp -d)}
KEY=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['inference']['key'])" "$KEY_FILE")
ID="examples/$(basename "$IMAGE")"
command -v grpcurl >/dev/null || { echo "grpcurl is not installed" >&2; exit 1; }

call() {  # call METHOD: one RPC of convscope.v1.ConvScope, its request JSON read from stdin (-d @)
  grpcurl -plaintext -max-msg-sz 33554432 -H "authorization: Bearer $KEY" -d @ "$TARGET" "convscope.v1.ConvScope/$1"
}
request() {  # request JQ-PROGRAM: build a request JSON; $model, $id and $b64 (the image) are defined.
  # The image goes through a file, not the command line: a photo's base64 passes one argument's 128 KiB.
  jq -n --arg model "$MODEL" --arg id "$ID" --rawfile b64 <(base64 -w0 "$IMAGE") "$1"
}

echo "== services, RPCs, health"
grpcurl -plaintext "$TARGET" list
grpcurl -plaintext "$TARGET" describe convscope.v1.ConvScope
grpcurl -plaintext -d "{\"service\": \"$MODEL\"}" "$TARGET" grpc.health.v1.Health/Check
grpcurl -plaintext "$TARGET" convscope.v1.ConvScope/ListModels | jq -c '.models[] | {model, numClasses, featureDim}'

echo "== classify"
request '{model: $model, image: {data: $b64}, top_k: 3}' | call Classify | jq -c '.predictions[]'

echo "== Grad-CAM++ (overlay)"
request '{model: $model, image: {data: $b64}, method: "CAM_METHOD_GRADCAM_PP",
         rendering: {outputs: ["OUTPUT_OVERLAY"]}}' | call Cam > "$OUT/cam.json"
jq -r .explanation.map.overlayPng "$OUT/cam.json" | base64 -d > "$OUT/cam.overlay.png"
jq -c '.explanation | {method, target, "label": .label, score}' "$OUT/cam.json"

echo "== the feature index: add, search, stats, delete"
request '{model: $model, probe: {image: {data: $b64}}, id: $id, label: "example",
         metadata_json: ({from: "grpcurl.sh"} | tojson)}' | call IndexAdd | jq -c .
request '{model: $model, probe: {image: {data: $b64}}, k: 3}' | call Neighbours | jq -c '.neighbours[] | {id, distance, "label": .label}'
request '{model: $model}' | call IndexStats | jq -c .
request '{model: $model, id: $id}' | call IndexDelete | jq -c .

echo "== inspect: the card's layers (no token), then the last ones with their receptive fields"
grpcurl -plaintext -d "{\"model\": \"$MODEL\"}" "$TARGET" convscope.v1.ConvScope/ModelMetadata \
  | jq -c '.info | {camLayer, firstConv, storedLayers, layers: (.layers | length)}'
request '{model: $model}' | call InspectLayers | jq -c '.layers[-3:][] | {name, shape, stored, receptiveField}'

echo "== inspect: the 8 channels of the CAM layer with the largest mean (grid PNG, raw maps)"
request '{model: $model, image: {data: $b64}, top: 8, outputs: ["INSPECT_OUTPUT_GRID", "INSPECT_OUTPUT_RAW"]}' \
  | call FeatureMaps > "$OUT/maps.json"
jq -r .gridPng "$OUT/maps.json" | base64 -d > "$OUT/maps.grid.png"
jq -c '{layer, shape, raw: .raw.shape, first: .channels[:3]}' "$OUT/maps.json"

echo "== inspect: the filters of the first convolution"
request '{model: $model}' | call Filters > "$OUT/filters.json"
jq -r .gridPng "$OUT/filters.json" | base64 -d > "$OUT/filters.grid.png"
jq -c '{layer, shape, mode, shown}' "$OUT/filters.json"

echo "== inspect: the 4 gallery images that most excite channel 5 of the first stored layer"
request '{model: $model, channel: 5, k: 4, patches: true}' | call TopExamples > "$OUT/top.json"
jq -c '{layer, channel, count}, (.examples[] | {id, "label": .label, activation})' "$OUT/top.json"
jq -r '.examples | to_entries[] | "\(.key + 1) \(.value.patchPng)"' "$OUT/top.json" | while read -r rank png; do
  base64 -d <<< "$png" > "$OUT/top.patch-$rank.png"
done

echo "wrote $OUT/cam.overlay.png $OUT/maps.grid.png $OUT/filters.grid.png" "$OUT"/top.patch-*.png
