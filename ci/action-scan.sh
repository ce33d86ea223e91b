#!/usr/bin/env bash
# Entry of the GitHub action (action.yml): builds the `mtls-audit scan` command line from
# MTLS_AUDIT_* variables, runs it, records its exit code as a step output, and exits with it so
# the job fails when the gate fails. The report is written even when the gate fails, so a later
# `upload-sarif` step (with `if: always()`) still has it.
set -uo pipefail
args=(scan)
read -r -a paths <<< "$(echo "${MTLS_AUDIT_PATHS:-}" | tr '\n' ' ')"
args+=("${paths[@]}")
read -r -a targets <<< "$(echo "${MTLS_AUDIT_TARGETS:-}" | tr '\n' ' ')"
for t in "${targets[@]}"; do args+=(--target "$t"); done
args+=(--fail-on "${MTLS_AUDIT_FAIL_ON:-high}" --format "${MTLS_AUDIT_FORMAT:-sarif}")
args+=(--output "${MTLS_AUDIT_OUTPUT:-mtls-audit.sarif}")
read -r -a extra <<< "${MTLS_AUDIT_ARGS:-}"
args+=("${extra[@]}")
echo "mtls-audit ${args[*]}"
mtls-audit "${args[@]}"
code=$?
if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "exit-code=$code" >> "$GITHUB_OUTPUT"; fi
exit "$code"
