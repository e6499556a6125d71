#!/usr/bin/env bash
# Generates API clients from authgate's OpenAPI document: TypeScript types with
# openapi-typescript and a Python client with openapi-python-client, at the versions
# pinned in tests/frontend/package.json and scripts/requirements-clients.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRONTEND="$ROOT/tests/frontend"
PY_REQUIREMENTS="$ROOT/scripts/requirements-clients.txt"

usage() {
  cat <<USAGE
Usage: scripts/generate-clients.sh [options] [DOCUMENT]

Generates clients from an OpenAPI document:
  OUT/typescript/authgate.d.ts   openapi-typescript (types for openapi-fetch)
  OUT/python/                    openapi-python-client (package authgate_client)
  OUT/*-warnings.txt             what each generator reported, one line per problem line

DOCUMENT  a file, or an http(s) URL such as http://127.0.0.1:8080/openapi.json
          (downloaded once to OUT/openapi.json); default: openapi/openapi.json
          of this repository

Options:
  --out DIR     output directory (default: target/clients of this repository)
  --strict      exit 1 if a generator reports any warning (each still runs)
  --only LANG   generate only "typescript" or only "python"
  -h, --help    show this help

Tools:
  openapi-typescript     from tests/frontend/node_modules when installed there
                         (cd tests/frontend && npm ci), else npx --yes at the pinned version
  openapi-python-client  on PATH or importable by python3:
                         python3 -m pip install -r scripts/requirements-clients.txt

Exit status: 0 done; 1 a generator failed, or warned under --strict; 2 bad usage;
3 a tool is missing.
USAGE
}

die_usage() {
  echo "generate-clients: $*" >&2
  echo "Try: scripts/generate-clients.sh --help" >&2
  exit 2
}

DOC=""
OUT="$ROOT/target/clients"
STRICT=0
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --strict) STRICT=1; shift ;;
    --out) [ $# -ge 2 ] || die_usage "--out needs a directory"; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#--out=}"; shift ;;
    --only) [ $# -ge 2 ] || die_usage "--only needs typescript or python"; ONLY="$2"; shift 2 ;;
    --only=*) ONLY="${1#--only=}"; shift ;;
    --) shift; [ $# -le 1 ] || die_usage "one document at most"; DOC="${1:-}"; shift $# ;;
    -*) die_usage "unknown option $1" ;;
    *) [ -z "$DOC" ] || die_usage "one document at most (got $DOC and $1)"; DOC="$1"; shift ;;
  esac
done
case "$ONLY" in
  ""|typescript|python) ;;
  *) die_usage "--only takes typescript or python, not $ONLY" ;;
esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/authgate-clients.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- the document -------------------------------------------------------------
DOC="${DOC:-$ROOT/openapi/openapi.json}"
case "$DOC" in
  http://*|https://*)
    echo "==> downloading $DOC"
    if command -v curl >/dev/null 2>&1; then
      curl --fail --silent --show-error --location --max-time 30 --output "$OUT/openapi.json" "$DOC"
    else
      python3 - "$DOC" "$OUT/openapi.json" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as r, open(sys.argv[2], "wb") as f:
    f.write(r.read())
PY
    fi
    DOC="$OUT/openapi.json"
    ;;
  *)
    [ -f "$DOC" ] || die_usage "no such document: $DOC"
    DOC="$(cd "$(dirname "$DOC")" && pwd)/$(basename "$DOC")"
    ;;
esac
echo "==> document: $DOC"

# Lines of a generator's output that report a problem. ANSI colours are stripped
# first; npm's own notices (npx installing a package) are not the generator's.
problems() {
  sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1" \
    | grep -v -E '^npm (warn exec|notice)' \
    | grep -i -E "$2" || true
}

STATUS=0
SUMMARY=()

# --- TypeScript: openapi-typescript ---------------------------------------------
if want typescript; then
  TS_PIN="$(sed -n -E 's/^[[:space:]]*"openapi-typescript":[[:space:]]*"([^"]+)".*/\1/p' "$FRONTEND/package.json" | head -n 1)"
  [ -n "$TS_PIN" ] || { echo "generate-clients: no openapi-typescript pin in $FRONTEND/package.json" >&2; exit 3; }
  command -v npx >/dev/null 2>&1 || { echo "generate-clients: npx (Node.js 20 or later, with npm) is needed for openapi-typescript" >&2; exit 3; }
  # openapi-typescript lints with a Redocly config: redocly.yaml of its working
  # directory if there is one (tests/frontend has the full `recommended` one, which
  # is `redocly lint`'s business), so give it the generator's own default explicitly.
  printf 'extends:\n  - minimal\n' > "$WORK/redocly-minimal.yaml"
  mkdir -p "$OUT/typescript"
  TS_OUT="$OUT/typescript/authgate.d.ts"
  TS_ARGS=("$DOC" --output "$TS_OUT" --redocly "$WORK/redocly-minimal.yaml")
  LOCAL_TS="$FRONTEND/node_modules/openapi-typescript/package.json"
  echo "==> openapi-typescript $TS_PIN -> $TS_OUT"
  if [ -f "$LOCAL_TS" ]; then
    have="$(sed -n -E 's/^[[:space:]]*"version":[[:space:]]*"([^"]+)".*/\1/p' "$LOCAL_TS" | head -n 1)"
    if [ "$have" != "$TS_PIN" ]; then
      echo "note: tests/frontend has openapi-typescript $have installed, $TS_PIN pinned (run npm ci there)"
    fi
    TS_DIR="$FRONTEND"
    TS_CMD=(npx --no-install openapi-typescript)
  else
    TS_DIR="$WORK"
    TS_CMD=(npx --yes "openapi-typescript@$TS_PIN")
  fi
  set +e
  (cd "$TS_DIR" && NO_COLOR=1 FORCE_COLOR=0 NODE_NO_WARNINGS=1 "${TS_CMD[@]}" "${TS_ARGS[@]}") 2>&1 | tee "$WORK/ts.log"
  rc=${PIPESTATUS[0]}
  set -e
  found="$(problems "$WORK/ts.log" '⚠|✘|\bwarn(ing)?s?\b|\berrors?\b|deprecat|not up-to-date')"
  if [ "$rc" -ne 0 ]; then
    STATUS=1
    SUMMARY+=("openapi-typescript: FAILED (exit $rc)")
  elif [ -n "$found" ]; then
    SUMMARY+=("openapi-typescript: $(printf '%s\n' "$found" | wc -l) warning line(s)")
    [ "$STRICT" -eq 0 ] || STATUS=1
  else
    SUMMARY+=("openapi-typescript: clean")
  fi
  printf '%s\n' "$found" | sed '/^$/d' > "$OUT/typescript-warnings.txt"
fi

# --- Python: openapi-python-client ----------------------------------------------
if want python; then
  PY_PIN="$(sed -n -E 's/^openapi-python-client==([^[:space:]#]+).*/\1/p' "$PY_REQUIREMENTS" | head -n 1)"
  if command -v openapi-python-client >/dev/null 2>&1; then
    OPC=(openapi-python-client)
  elif command -v python3 >/dev/null 2>&1 && python3 -c 'import openapi_python_client' >/dev/null 2>&1; then
    OPC=(python3 -m openapi_python_client)
  else
    cat >&2 <<MISSING
generate-clients: openapi-python-client is not installed. Install the pinned version with
  python3 -m pip install openapi-python-client==$PY_PIN
(or: python3 -m pip install -r scripts/requirements-clients.txt), or pass --only typescript.
MISSING
    exit 3
  fi
  have="$("${OPC[@]}" --version 2>/dev/null | sed -n -E 's/.*version:?[[:space:]]*([0-9][^[:space:]]*).*/\1/p' | head -n 1)"
  cat > "$WORK/openapi-python-client.yaml" <<'YAML'
project_name_override: authgate-client
package_name_override: authgate_client
YAML
  PY_OUT="$OUT/python"
  echo "==> openapi-python-client ${have:-?} (pinned $PY_PIN) -> $PY_OUT"
  if [ "$have" != "$PY_PIN" ]; then
    echo "note: openapi-python-client ${have:-of unknown version} is installed, $PY_PIN pinned"
  fi
  PY_ARGS=(generate --path "$DOC" --output-path "$PY_OUT" --overwrite --config "$WORK/openapi-python-client.yaml")
  [ "$STRICT" -eq 0 ] || PY_ARGS+=(--fail-on-warning)
  set +e
  NO_COLOR=1 TERM=dumb "${OPC[@]}" "${PY_ARGS[@]}" 2>&1 | tee "$WORK/py.log"
  rc=${PIPESTATUS[0]}
  set -e
  # "Warning(s) encountered while generating" / "Error(s) encountered while generating"
  # head the report; each problem follows as a block ("WARNING parsing ...", "Unable to
  # process schema ...", "Skipping Integration", "<hook> failed", ...).
  found="$(problems "$WORK/py.log" 'encountered while generating|^WARNING|^ERROR|unable to process|will not be generated|will be omitted|removal of|skipping integration| failed$')"
  headed=0
  grep -q -E '(Warning|Error)\(s\) encountered while generating' "$WORK/py.log" && headed=1
  if grep -q -E 'Error\(s\) encountered while generating' "$WORK/py.log" || { [ "$rc" -ne 0 ] && [ "$headed" -eq 0 ]; }; then
    STATUS=1
    SUMMARY+=("openapi-python-client: FAILED (exit $rc)")
  elif [ -n "$found" ]; then
    n_endpoint="$(grep -c -E '^WARNING parsing' "$WORK/py.log" || true)"
    n_schema="$(grep -c -E '^Unable to process schema' "$WORK/py.log" || true)"
    SUMMARY+=("openapi-python-client: warnings ($n_endpoint about operations, $n_schema about schemas)")
    [ "$STRICT" -eq 0 ] || STATUS=1
  else
    SUMMARY+=("openapi-python-client: clean")
  fi
  printf '%s\n' "$found" | sed '/^$/d' > "$OUT/python-warnings.txt"
fi

echo
echo "==> summary (document $DOC, output $OUT)"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
if [ "$STATUS" -ne 0 ] && [ "$STRICT" -eq 1 ]; then
  echo "generate-clients: --strict: a generator failed or warned (see above)" >&2
fi
exit "$STATUS"
