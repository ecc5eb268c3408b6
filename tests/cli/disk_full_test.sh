#!/usr/bin/env bash
# A full disk during a study: the smoke OLS study on a small tmpfs exits 1
# with one "disk full while writing FILE" line (no crash, no hang, nothing
# half-written), and after the file system grows the same command resumes
# and writes the same outputs as a run with room to spare. Needs to mount a
# tmpfs (root or CAP_SYS_ADMIN); exits 77 (skipped) where that is refused.
#
# Usage: disk_full_test.sh GRADMATCH SOURCE_DIR MPIEXEC_2
set -uo pipefail
gradmatch=$1 src=$2 mpiexec2=$3
config="$src/configs/smoke/ols_early_stopping.toml"
work=$(mktemp -d /tmp/gradmatch_disk_full.XXXXXX)
mnt="$work/small"
mkdir -p "$mnt"
cleanup() { umount "$mnt" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
if ! mount -t tmpfs -o size=120k tmpfs "$mnt" 2>/dev/null; then
  echo "cannot mount a tmpfs here: skipped"
  exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }
check_no_leftovers() {
  if find "$1" -name '*.tmp-*' -o -name '*.partial' | grep -q .; then fail "half-written files in $1: $(ls "$1")"; fi
}

# 1. The estimate refuses first (store + outputs exceed the 120 kB).
out=$("$gradmatch" run "$config" --out "$mnt/ols" 2>&1); rc=$?
[ $rc -eq 2 ] || fail "resource check: exit $rc: $out"
grep -q "of disk; .* free; .*--ignore-resource-check" <<<"$out" || fail "resource message: $out"

# 2. Forced past the check: the outputs hit ENOSPC.
out=$("$gradmatch" run "$config" --out "$mnt/ols" --ignore-resource-check 2>&1); rc=$?
[ $rc -eq 1 ] || fail "disk full: exit $rc (expected 1): $out"
[ "$(grep -c "^gradmatch run: error: disk full while writing $mnt/ols/.*; free space and re-run the same command to resume$" <<<"$out")" -eq 1 ] ||
  fail "not one disk-full message: $out"
grep -qi "segmentation\|signal" <<<"$out" && fail "crash: $out"
check_no_leftovers "$mnt/ols"

# 3. More room: the same command resumes (no task runs again) and finishes.
mount -o remount,size=4m "$mnt" || fail "remount"
out=$("$gradmatch" run "$config" --out "$mnt/ols" 2>&1); rc=$?
[ $rc -eq 0 ] || fail "resume: exit $rc: $out"
grep -q "resuming $mnt/ols: 232 of 232 tasks already done" <<<"$out" || fail "resume message: $out"
"$gradmatch" run "$config" --out "$work/reference" >/dev/null 2>&1 || fail "reference run"
for f in summary.json results.h5 equations_canonical.h5; do
  cmp -s "$mnt/ols/$f" "$work/reference/$f" || fail "$f differs from an uninterrupted run"
done

# 4. Two ranks and a disk too small for the run store: one message, no hang.
umount "$mnt" && mount -t tmpfs -o size=20k tmpfs "$mnt" || fail "remount 20k"
out=$(timeout 120 $mpiexec2 "$gradmatch" run "$config" --out "$mnt/ols2" --ignore-resource-check 2>&1); rc=$?
[ $rc -eq 1 ] || fail "store on a full disk under 2 ranks: exit $rc: $out"
[ "$(grep -c "disk full while writing $mnt/ols2/store.h5" <<<"$out")" -eq 1 ] || fail "not one store message: $out"
check_no_leftovers "$mnt/ols2"
echo "disk full: exit 1 with one message, resumed to identical outputs; 2 ranks: no hang"
