#!/usr/bin/env bash
#
# scripts/check.sh — static checks for every Go module in the repository.
#
# Usage:
#   scripts/check.sh fmt    # gofmt -l; fails if any file needs formatting
#   scripts/check.sh vet    # go vet ./... in every module
#   scripts/check.sh        # both (fmt first)
#
# Used by `make fmt`, `make vet` and (via scripts/test.sh) `make test`.

set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# check_fmt: list every .go file that gofmt would change; fail if there is
# any. Files under testdata (fixtures, possibly deliberately malformed) and
# .git are skipped.
check_fmt() {
	log "gofmt -l"
	local gofmt unformatted
	# gofmt ships next to the go command; fall back to $GOROOT/bin.
	gofmt=$(command -v gofmt || true)
	[ -n "$gofmt" ] || gofmt="$("$GO" env GOROOT)/bin/gofmt"
	unformatted=$(
		cd "$REPO_ROOT"
		find . \( -name .git -o -name testdata \) -prune -o -type f -name '*.go' -print0 |
			xargs -0 -r "$gofmt" -l | sed "s|^\./||"
	)
	if [ -n "$unformatted" ]; then
		err "these files are not gofmt-formatted (run: gofmt -w <file>):"
		printf '%s\n' "$unformatted" | sed 's/^/    /' >&2
		return 1
	fi
	info "ok"
}

# check_vet: go vet ./... in every module; reports every failing module and
# fails if any did.
check_vet() {
	local dir failed=""
	while IFS= read -r dir; do
		log "go vet ./...  [module $(module_path "$dir") in $(rel_dir "$dir")]"
		if ! (cd "$dir" && "$GO" vet ./...); then
			failed="$failed $(rel_dir "$dir")"
		fi
	done < <(list_modules)
	if [ -n "$failed" ]; then
		err "go vet failed in:$failed"
		return 1
	fi
	info "ok"
}

main() {
	case "${1:-all}" in
	fmt) check_fmt ;;
	vet) check_vet ;;
	all) check_fmt && check_vet ;;
	*) die "usage: $0 [fmt|vet|all]" ;;
	esac
}

main "$@"
