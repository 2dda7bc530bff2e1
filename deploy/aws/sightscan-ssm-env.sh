#!/usr/bin/env bash
# Write the SightScan settings kept in SSM Parameter Store under a path (default /sightscan/)
# into an env file readable by root only: /sightscan/PGPASSWORD -> PGPASSWORD=...
# Usage (as root, e.g. ExecStartPre=+ of a unit): sightscan-ssm-env OUTFILE [PATH]
# Needs the AWS CLI v2 and an instance role allowed ssm:GetParametersByPath on the path
# (and kms:Decrypt for SecureString). Values never pass through a command line.
set -euo pipefail
out="${1:?usage: sightscan-ssm-env OUTFILE [PATH]}"
path="${2:-/sightscan/}"
token="$(curl -sf -X PUT http://169.254.169.254/latest/api/token \
  -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')"
region="$(curl -sf -H "X-aws-ec2-metadata-token: ${token}" \
  http://169.254.169.254/latest/meta-data/placement/region)"
tmp="$(mktemp "${out}.XXXXXX")"
trap 'rm -f "${tmp}"' EXIT
chmod 600 "${tmp}"
aws ssm get-parameters-by-path --region "${region}" --path "${path}" --recursive \
  --with-decryption --query 'Parameters[].[Name,Value]' --output text |
  while IFS=$'\t' read -r name value; do
    printf '%s=%s\n' "${name##*/}" "${value}"
  done >"${tmp}"
mv "${tmp}" "${out}"
trap - EXIT
