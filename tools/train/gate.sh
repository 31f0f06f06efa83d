#!/usr/bin/env bash
# Gates a candidate of the default model on this repository's own code before it ships (CPU engine):
# 20 questions about src/cache (7.2K tokens), 7 constant values and 13 definitions. A value is right
# when the answer is exactly it (quotes aside), a definition when the answer names its file. Prints one
# line per question, then the count.
#   bash tools/train/gate.sh MODEL_DIR        (from the repository root, after npm run build)
set -uo pipefail
model=${1:?usage: tools/train/gate.sh MODEL_DIR}
right=0 total=0
ask() {  # ask QUESTION EXPECTED exact|file
  local answer bare ok=0
  answer=$(timeout 300 node dist/cli.js ask --model "$model" --repo src/cache "$1" 2>/dev/null | tail -n 1)
  bare=$(echo "$answer" | sed -e "s/^ *//" -e "s/ *$//" -e "s/^['\"]//" -e "s/['\"]$//")
  if [ "$3" = exact ]; then [ "$bare" = "$2" ] && ok=1; else case "$answer" in *"$2"*) ok=1 ;; esac; fi
  total=$((total + 1))
  if [ $ok = 1 ]; then right=$((right + 1)); echo "right  $1 ->$answer"; else echo "WRONG  $1 ->$answer (want $2)"; fi
}
# The expected answers are read from the source, so the gate follows the code.
for name in HASH_BYTES MAX_META_BYTES FORMAT_VERSION CHUNK_BYTES ENTRY_SUFFIX TEMP_SUFFIX DEFAULT_MAX_BYTES; do
  value=$(sed -n -E "s/^(export )?const $name = (.*);$/\2/p" src/cache/*.ts | sed -e "s/^['\"]//" -e "s/['\"]$//")
  ask "What is the value of the constant $name?" "$value" exact
done
for name in chunkCount cacheFingerprint sizeAndTime floatsPerPosition writeEntry parseMeta digest commonPrefix PrefixDiskCache \
            sweepAbandoned evict clearCache entryFile; do
  file=$(grep -lE "^(export )?(async )?(function|class) $name\b" src/cache/*.ts)
  ask "Where is $name defined?" "$(basename "$file")" file
done
echo "gate: $right of $total right"
