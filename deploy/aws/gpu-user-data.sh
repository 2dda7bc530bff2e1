#!/usr/bin/env bash
# EC2 user data for the GPU training instance (first boot only; cloud-init runs it once).
# Base image: an AWS Deep Learning Base GPU AMI (Ubuntu; NVIDIA driver installed), an
# instance profile with deploy/aws/iam-training-instance.json, and shutdown behaviour "stop".
# Installs SightScan in /opt/sightscan and enables sightscan-training-gpu.service, which at
# every boot pulls the settings from SSM (`sightscan config ssm-env`), runs
# `sightscan worker --queue training --exit-when-idle 15` and powers the instance off when
# it exits.
set -euo pipefail
SIGHTSCAN_REPO=""        # EDIT: git URL of your SightScan repository (read access)
SIGHTSCAN_REF="main"     # EDIT: branch or tag to install
[ -n "${SIGHTSCAN_REPO}" ] || { echo "gpu-user-data: set SIGHTSCAN_REPO first" >&2; exit 1; }
TORCH_VERSION="2.13.0"
TORCH_CUDA="cu128"

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  git python3 python3-venv
id sightscan >/dev/null 2>&1 || useradd --system --home-dir /var/lib/sightscan \
  --shell /usr/sbin/nologin sightscan
git clone --depth 1 --branch "${SIGHTSCAN_REF}" "${SIGHTSCAN_REPO}" /opt/sightscan-src
python3 -m venv /opt/sightscan
/opt/sightscan/bin/pip install --no-cache-dir "torch==${TORCH_VERSION}" \
  --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}"
/opt/sightscan/bin/pip install --no-cache-dir "/opt/sightscan-src[postgres,redis,s3,train]"
install -d -m 0750 /etc/sightscan
install -m 0600 /dev/null /etc/sightscan/sightscan.env   # filled from SSM at every start
install -m 0644 /opt/sightscan-src/deploy/systemd/sightscan-training-gpu.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now sightscan-training-gpu.service
