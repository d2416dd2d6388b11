# Durable writes for the appliance's shell scripts (sourced: ". /usr/lib/appliance/durable.sh").
#
# A file written and renamed without fsync can come back empty after a power
# cut: ext4 (data=ordered, delayed allocation) may commit the rename in its
# journal before the file's data has blocks on disk. Every piece of state on
# /data is therefore written the same way: into a temporary name in the same
# directory, fsync the file, rename it over the final name, fsync the
# directory (so that the rename itself is on disk). coreutils' `sync FILE...`
# opens each argument read-only and calls fsync(2) on it, directories
# included.
#
#   durable_dir DIR...            fsync directories
#   durable_commit TMP FINAL      fsync TMP, rename it to FINAL, fsync FINAL's directory
#   durable_write FINAL [MODE]    standard input into FINAL, durably (mode 0644 by default;
#                                 the temporary file is private until its mode is set)
#   durable_mkdir DIR...          mkdir -p, then fsync each directory and its parent
#
# durable_commit passes two named points (point.sh, for the power-cut tests):
# write:FINAL with TMP written but not yet fsynced, rename:FINAL with TMP
# renamed but the directory not yet fsynced.
. /usr/lib/appliance/point.sh

durable_dir() {
	sync -- "$@"
}

durable_commit() { # TMP FINAL
	appliance_point "write:$2"
	sync -- "$1" &&
		mv -f -- "$1" "$2" &&
		appliance_point "rename:$2" &&
		sync -- "$(dirname -- "$2")"
}

durable_write() { # FINAL [MODE] < content
	rm -f -- "$1.tmp" &&
		(umask 077 && cat >"$1.tmp") &&
		chmod "${2:-0644}" -- "$1.tmp" &&
		durable_commit "$1.tmp" "$1"
}

durable_mkdir() { # DIR...
	for _d in "$@"; do
		mkdir -p -- "$_d" && sync -- "$_d" "$(dirname -- "$_d")" || return 1
	done
}
