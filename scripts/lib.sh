# shellcheck shell=bash
#
# scripts/lib.sh — helpers shared by the scripts in this directory.
# Source it; do not execute it.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Repository root: the parent of the directory holding this file.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The go command to use (overridable, e.g. GO=go1.26rc1).
GO=${GO:-go}

# Test and check every module as its users build it: without the repository's
# go.work, which would otherwise hide go.sum entries a module lacks.
export GOWORK=off

# ---------------------------------------------------------------------------
# Logging. Everything goes to stderr so that functions can print results on
# stdout.
# ---------------------------------------------------------------------------
log()  { printf '==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
err()  { printf 'ERROR: %s\n' "$*" >&2; }
die()  { err "$@"; exit 1; }

# is_ci: true when running on CI (CI=true, as set by GitHub Actions, GitLab,
# and most other CI systems; 1/yes are accepted too).
is_ci() {
	case "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')" in
	true | 1 | yes) return 0 ;;
	*) return 1 ;;
	esac
}

# list_modules: print the directory of every Go module in the repository
# (every directory holding a go.mod), one per line, root module first.
# Only go.mod files below a testdata directory (test fixtures) and inside
# .git are skipped.
list_modules() {
	(
		cd "$REPO_ROOT" || exit 1
		find . \( -name .git -o -name testdata \) -prune -o -type f -name go.mod -print |
			sed -e 's|/go.mod$||' -e 's|^\./||' -e 's|^\.$||' |
			LC_ALL=C sort |
			while IFS= read -r rel; do
				if [ -z "$rel" ]; then
					printf '%s\n' "$REPO_ROOT"
				else
					printf '%s\n' "$REPO_ROOT/$rel"
				fi
			done
	)
}

# module_path DIR: print the module path declared in DIR/go.mod.
module_path() {
	awk '$1 == "module" { gsub(/"/, "", $2); print $2; exit }' "$1/go.mod"
}

# rel_dir DIR: DIR relative to the repository root ("." for the root).
rel_dir() {
	if [ "$1" = "$REPO_ROOT" ]; then
		printf '.\n'
	else
		printf '%s\n' "${1#"$REPO_ROOT"/}"
	fi
}
