#!/usr/bin/env bash
# The prepared GPU check (see bench/gpu_check.py): bash bench/gpu_check.sh [--quick] [--out F]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec python bench/gpu_check.py "$@"
