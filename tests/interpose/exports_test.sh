#!/usr/bin/env bash
# libfastnet.so exports exactly the names in interpose/calls.def, nothing else.
# Usage: exports_test.sh <libfastnet.so> <calls.def>
set -euo pipefail
want=$(sed -n 's/^FASTNET_CALL([^,]*, *\([A-Za-z0-9_]*\),.*/\1/p' "$2" | sort)
have=$(nm -D --defined-only "$1" | awk '{print $3}' | sed 's/@.*//' | sort)
if [[ "$want" != "$have" ]]; then
  echo "FAIL: exported symbols differ from calls.def:" >&2
  diff <(echo "$want") <(echo "$have") >&2 || true
  exit 1
fi
echo "ok: $(echo "$have" | wc -l) symbols, exactly calls.def"
