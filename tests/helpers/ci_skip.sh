# Sourced by tools/test.sh and the tests whose skip is a failure in CI.
#
# Under CI=true a test that cannot run its real thing (a one-node Slurm
# cluster, report.html in headless Chromium, the real llama-server) fails
# instead of skipping: .ci/run (Debian 12, as root) must run them all.
# BENCHRUN_ALLOW_SKIP names the groups whose skip is still a skip there,
# space- or comma-separated, for CI hosts that cannot run them:
#   slurm       tests/e2e/slurm_cluster.sh (needs root and Debian's slurm-wlm; Linux only)
#   chromium    tests/e2e/report_html.sh (needs a Chromium or Chrome that is not a snap)
#   realserver  tests/realserver/* (needs ../shared/realservers, outside the clone)
# .github/workflows/ci.yml sets it for GitHub's runners (README, "Tests and CI").

# ci_must_run GROUP: true when a skip of GROUP must fail (CI=true and GROUP
# not in BENCHRUN_ALLOW_SKIP)
ci_must_run() {
  [ "${CI:-}" = true ] || return 1
  local allowed=" ${BENCHRUN_ALLOW_SKIP:-} "
  case "${allowed//,/ }" in *" $1 "*) return 1 ;; esac
  return 0
}

# ci_skip GROUP REASON: exit 77 (ctest: skipped) with the reason, or, where
# the group must run in CI, exit 1 saying so
ci_skip() {
  if ci_must_run "$1"; then
    echo "FAIL (CI=true; BENCHRUN_ALLOW_SKIP does not name $1): $2"
    exit 1
  fi
  if [ "${CI:-}" = true ]; then echo "SKIP (BENCHRUN_ALLOW_SKIP names $1): $2"; else echo "SKIP: $2"; fi
  exit 77
}
