#!/usr/bin/env bash
# Mutation score of the modules that decide what a person is told (docs/testing.md).
#
#   scripts/mutation.sh [module ...]     # modules: classify keys config check scheduler
#
# Each module's mutants run against that module's fast unit tests only (never the whole
# suite), in a scratch copy of the working tree, each module bounded by MUTATION_BUDGET seconds
# (default 900). Prints killed/total per module; the mutants themselves stay in the copy, whose
# path is printed, for `mutmut show NAME` there. Installs mutmut into .venv; not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
ensure_venv
.venv/bin/pip install --quiet 'mutmut==3.8.1'
repo=$PWD
budget=${MUTATION_BUDGET:-900}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mutation.XXXXXX")
echo "scratch copy: $scratch"

# module -> file, the functions whose mutants count (mutmut names: x_<function>), fast tests
declare -A FILES=(
  [classify]=exporter/classify.py
  [keys]=exporter/keys.py
  [config]=exporter/config.py
  [check]=exporter/check.py
  [scheduler]=exporter/scheduler.py
)
declare -A MUTANTS=(
  [classify]='exporter.classify.*'
  [keys]='exporter.keys.x_lint_key* exporter.keys.x__lint_any_text* exporter.keys.x_key_kind*'
  [config]='exporter.config.*'
  [check]='exporter.check.*'
  [scheduler]='exporter.scheduler.x_next_delay*'
)
declare -A TESTS=(
  [classify]='tests/classify_test.py'
  [keys]='tests/keys_test.py tests/key_lint_messages_test.py'
  [config]='tests/config_test.py tests/config_rules_test.py'
  [check]='tests/check_render_test.py'
  [scheduler]='tests/scheduler_test.py'
)
# Tests that start a process are left out: mutmut maps mutants to tests in-process only.
declare -A DESELECT=(
  [config]='not config_check_good and not config_check_bad and not config_check_never_prints'
)

modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(classify keys config check scheduler)
for module in "${modules[@]}"; do
  work="$scratch/$module"
  mkdir -p "$work"
  git -C "$repo" ls-files -z --cached --others --exclude-standard | (cd "$repo" && xargs -0 cp --parents -t "$work" 2>/dev/null || true)
  ln -s "$repo/.venv" "$work/.venv"
  {
    echo "[mutmut]"
    echo "source_paths=exporter"
    echo "only_mutate=${FILES[$module]}"
    echo "pytest_add_cli_args_test_selection="
    for test in ${TESTS[$module]}; do echo "    $test"; done
    if [ -n "${DESELECT[$module]:-}" ]; then echo "    -k"; echo "    ${DESELECT[$module]}"; fi
    echo "pytest_add_cli_args=-p no:cacheprovider -q -x"
    # Tests run inside mutants/: what they read, and this file for the subprocesses they start.
    echo "also_copy="
    for extra in setup.cfg README.md docs examples alerts deploy; do echo "    $extra"; done
  } > "$work/setup.cfg"
  # pyproject's [tool.mutmut], if any, would win over setup.cfg: this copy has none.
  (
    cd "$work"
    # shellcheck disable=SC2086
    timeout "$budget" .venv/bin/mutmut run ${MUTANTS[$module]} > mutmut-run.log 2>&1 || true
    .venv/bin/mutmut results --all true > mutmut-results.txt 2>/dev/null || true
    # shellcheck disable=SC2086
    .venv/bin/python - "$module" ${MUTANTS[$module]} <<'PY'
import fnmatch, sys
module, patterns = sys.argv[1], sys.argv[2:]
states = {}
for line in open("mutmut-results.txt"):
    name, _, state = line.strip().rpartition(": ")
    if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
        states[name] = state
killed = sum(state == "killed" for state in states.values())
survived = sorted(name for name, state in states.items() if state == "survived")
other = sorted(f"{name} ({state})" for name, state in states.items() if state not in {"killed", "survived"})
score = f"{100 * killed / len(states):.1f}%" if states else "n/a"
print(f"{module}: {killed} killed of {len(states)} ({score}); {len(survived)} survived, {len(other)} not run or timed out")
for name in survived:
    print(f"  survived: {name}")
for name in other[:20]:
    print(f"  {name}")
PY
  )
done
