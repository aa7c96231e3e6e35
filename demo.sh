#!/usr/bin/env bash
# The main job: set up, prepare the demo data if missing, run the threshold baseline and the AE demo.
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh
.venv/bin/python -m data.demo.prepare
.venv/bin/python core/Main.py --config_path projects/Threshold/configs/threshold.yaml --quiet
.venv/bin/python core/Main.py --config_path projects/AE/configs/ae.yaml --quiet
