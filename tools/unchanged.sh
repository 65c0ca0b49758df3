#!/usr/bin/env bash
# unchanged.sh DIR -- CMD...: run CMD and fail, naming the files, if it changed anything under DIR, or if DIR then
# differs from what git has staged/committed (unstaged edits or untracked files). Used by `make test` for
# "nbdev_export reproduces refilled/" and "nbdev_clean leaves nbs/ unchanged".
set -euo pipefail
dir=$1; shift; [ "$1" = "--" ] && shift
snap() { find "$dir" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 md5sum; }
before=$(snap)
"$@" >/dev/null
after=$(snap)
changed=$(diff <(echo "$before") <(echo "$after") | sed -n 's/^[<>] [0-9a-f]*  //p' | sort -u || true)
dirty=$( { git diff --name-only -- "$dir"; git ls-files --others --exclude-standard -- "$dir"; } | sort -u)
if [ -n "$changed$dirty" ]; then
  echo "ERROR: '$*' does not reproduce the committed $dir. Files:"
  printf '%s\n' $changed $dirty | sort -u | sed 's/^/  /'
  exit 1
fi
echo "ok: '$*' leaves $dir as committed"
