#!/bin/bash
# imgforge ls / show / diff / cache ls / cache gc against a registry and a
# cache seeded with the sqlite3 tool (until `imgforge build` writes them).
# As root the read-only cases below use bind mounts: run in a mount namespace
# of our own, so that a test killed half-way leaves no mount on the host.
if [ "$(id -u)" = 0 ] && [ -z "${T3000_IN_NS:-}" ] && unshare --mount --propagation private true 2>/dev/null; then
	T3000_IN_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
. "$SRCDIR/tests/e2e/lib.sh"

CACHE=$XDG_CACHE_HOME/imgforge

expect_code() { # status command...
	local want=$1 rc=0
	shift
	"$@" || rc=$?
	[ "$rc" -eq "$want" ] || { echo "'$*' exited $rc, expected $want" >&2; return 1; }
}
A=20231114-221320-0000aaaa
B=20231115-080000-0000bbbb
H1=1111111111111111111111111111111111111111111111111111111111111111
H2=2222222222222222222222222222222222222222222222222222222222222222

# A registry as schema version 1 wrote it (no file lists); imgforge migrates it.
seed_registry() {
	mkdir -p "$CACHE"
	sqlite3 "$CACHE/registry.db" <<-EOF
	CREATE TABLE builds (id TEXT PRIMARY KEY, image TEXT NOT NULL, version TEXT NOT NULL,
	  profile TEXT, created INTEGER NOT NULL, key_base TEXT, key_rootfs TEXT, key_disk TEXT,
	  inputs TEXT);
	CREATE TABLE outputs (build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
	  name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
	  PRIMARY KEY (build_id, name)) WITHOUT ROWID;
	CREATE TABLE packages (build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
	  name TEXT NOT NULL, version TEXT NOT NULL, arch TEXT NOT NULL,
	  PRIMARY KEY (build_id, name, arch)) WITHOUT ROWID;
	INSERT INTO builds VALUES ('$A', 'kiosk', '1.0', 'prod', 1700000000, '$H1', '$H2', NULL,
	  '{"suite":"stable"}');
	INSERT INTO builds VALUES ('$B', 'kiosk', '1.1', NULL, 1700035200, '$H1', NULL, NULL, NULL);
	INSERT INTO outputs VALUES ('$A', 'disk.img', '$H1', 1048576);
	INSERT INTO packages VALUES ('$A', 'bash', '5.2.15-2', 'amd64');
	INSERT INTO packages VALUES ('$A', 'vim-tiny', '2:9.0', 'amd64');
	INSERT INTO packages VALUES ('$A', 'pinned', '2.0', 'all');
	INSERT INTO packages VALUES ('$B', 'bash', '5.2.15-2+b2', 'amd64');
	INSERT INTO packages VALUES ('$B', 'curl', '7.88.1-10', 'amd64');
	INSERT INTO packages VALUES ('$B', 'pinned', '2.0~rc1', 'all');
	PRAGMA user_version = 1;
	EOF
}

test_expect_success 'ls with no registry yet lists nothing' '
	imgforge ls >out 2>err &&
	test ! -s out &&
	imgforge ls --json >out &&
	test "$(cat out)" = "[]" &&
	test ! -e "$CACHE/registry.db"
'

test_expect_success 'show and diff without a registry say where they looked' '
	test_must_fail imgforge show 2023 2>err &&
	grep_one "^error: show: no registry at .*registry.db" err
'

test_expect_success 'ls, show and diff read an older registry as it is, changing nothing' '
	require_tool sqlite3 sqlite3 &&
	seed_registry &&
	cp "$CACHE/registry.db" before.db &&
	imgforge ls >out &&
	grep -q "^$A  kiosk .*1.0 .*prod .*2023-11-14 22:13:20 UTC  3\$" out &&
	grep -q "^$B  kiosk .*1.1 .* - " out &&
	imgforge show $A >/dev/null && imgforge diff $A $B >/dev/null &&
	test "$(sqlite3 "$CACHE/registry.db" "PRAGMA user_version")" = 1 &&
	cmp before.db "$CACHE/registry.db" &&
	imgforge ls --json >out.json &&
	python3 -c "
import json, sys
l = json.load(open(\"out.json\"))
assert [b[\"build_id\"] for b in l] == [\"$A\", \"$B\"], l
assert l[0][\"package_count\"] == 3 and l[1][\"profile\"] is None, l
"
'

# Making a directory read-only: a read-only bind mount as root (which
# ignores permissions), else permissions.
if [ "$(id -u)" != 0 ]; then
	ro_on() { chmod -R a-w "$1"; }
	ro_off() { chmod -R u+w "$1"; }
elif mkdir probe && mount --bind -o ro probe probe 2>/dev/null && umount probe; then
	ro_on() { mount --bind -o ro "$1" "$1"; }
	ro_off() { umount "$1"; }
else
	ro_on() { echo "cannot make a directory read-only here" >&2; return 1; }
	ro_off() { :; }
fi
ro_setup() { mkdir -p ro && cp "$CACHE/registry.db" ro/ && ro_on ro; }
ro_teardown() { ro_off ro; }

test_expect_success 'ls and show work on a registry the user cannot write' '
	ro_setup &&
	imgforge ls --registry ro/registry.db >out 2>err; rc=$?; imgforge show --registry ro/registry.db $A >>out 2>>err || rc=1; ro_teardown &&
	cat err && test $rc = 0 &&
	grep -q "^$B  kiosk" out && grep -q "^build     $A" out
'

test_expect_success 'an empty or foreign registry file is an error naming it, not an empty history' '
	: >empty.db &&
	test_must_fail imgforge ls --registry empty.db 2>err &&
	grep_one "^error: ls: .empty.db. is an empty file, not an imgforge registry: delete it" err &&
	test_must_fail imgforge build --registry empty.db nothing.yaml 2>/dev/null; test ! -s empty.db &&
	echo "hello" >text.db &&
	test_must_fail imgforge show --registry text.db x 2>err &&
	grep_one "^error: show: .text.db. is not an SQLite database, so not an imgforge registry" err &&
	sqlite3 other.db "CREATE TABLE t (x)" &&
	test_must_fail imgforge ls --registry other.db 2>err &&
	grep_one "^error: ls: .other.db. is an SQLite database but not an imgforge registry \(it has no .builds. table\)" err &&
	sqlite3 app.db "PRAGMA application_id = 42; CREATE TABLE builds (x)" &&
	test_must_fail imgforge ls --registry app.db 2>err &&
	grep_one "another application \(application_id 0x0000002a\)" err
'

test_expect_success 'a build migrates the registry that ls only read' '
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" m.tar.gz &&
	printf "image: mig\nversion: 1\nbase: {tarball: m.tar.gz, sha256: %s}\n" \
		$(sha256sum m.tar.gz | cut -c1-64) >mig.yaml &&
	imgforge build --cache mcache --registry "$CACHE/registry.db" -o mout mig.yaml 2>/dev/null &&
	test "$(sqlite3 "$CACHE/registry.db" "PRAGMA user_version")" = 4 &&
	test "$(sqlite3 "$CACHE/registry.db" "PRAGMA application_id")" = 1768318834 &&
	imgforge ls >out && grep -q "^$A " out && grep -q " mig " out
'

test_expect_success 'show says where each output is, and when it is gone or replaced' '
	id=$(imgforge ls --json | sed -n "s/.*\"build_id\": \"\(2026[^\"]*\|20[3-9][^\"]*\)\".*/\1/p" | tail -1) &&
	test -n "$id" &&
	imgforge show $id >out && grep -q "^outputs   2 in $TEST_DIR/mout\$" out &&
	! grep -q "gone\|replaced" out &&
	imgforge show --json $id >out.json &&
	grep -q "\"path\": \"$TEST_DIR/mout/root.ext4\"" out.json &&
	grep -q "\"state\": \"present\"" out.json &&
	echo other >mout/manifest.json && rm mout/root.ext4 &&
	imgforge show $id >out &&
	grep -q "^  root.ext4 .*(gone: .$TEST_DIR/mout/root.ext4. no longer exists)\$" out &&
	grep -q "^  manifest.json .*(replaced: .$TEST_DIR/mout/manifest.json. is not this file any more)\$" out &&
	imgforge show --json $id | grep -q "\"state\": \"missing\""
'

test_expect_success 'add file lists to the migrated registry' '
	sqlite3 "$CACHE/registry.db" "
	INSERT INTO files VALUES (\"$A\", \"/etc/motd\", \"$H1\", 33188, 0, 0, 10);
	INSERT INTO files VALUES (\"$A\", \"/etc/old\", \"$H1\", 33188, 0, 0, 10);
	INSERT INTO files VALUES (\"$B\", \"/etc/motd\", \"$H2\", 33188, 0, 0, 12);
	INSERT INTO files VALUES (\"$B\", \"/etc/new\", \"$H2\", 33261, 0, 0, 1);"
'

test_expect_success 'show by unique prefix, text and JSON' '
	imgforge show 20231114 >out &&
	grep -q "^build     $A\$" out &&
	grep -q "^image     kiosk 1.0 (profile prod)\$" out &&
	grep -q "^  bash  *5.2.15-2  *amd64\$" out &&
	grep -q "^files     2 " out &&
	imgforge show --json 20231115-08 >out.json &&
	python3 -c "
import json
b = json.load(open(\"out.json\"))
assert b[\"build_id\"] == \"$B\" and b[\"profile\"] is None, b
assert [p[\"name\"] for p in b[\"packages\"]] == [\"bash\", \"curl\", \"pinned\"], b
assert b[\"files\"][0] == {\"path\": \"/etc/motd\", \"mode\": \"100644\", \"uid\": 0, \"gid\": 0,
                           \"size\": 12, \"sha256\": \"$H2\"}, b
"
'

test_expect_success 'show: unknown and ambiguous ids are one clear error each' '
	test_must_fail imgforge show 1999 2>err &&
	grep_one "^error: show: no build .1999. in the registry; run .imgforge ls. to list the builds\$" err &&
	test_must_fail imgforge show 2023 2>err &&
	grep_one "^error: show: build id .2023. is ambiguous" err &&
	expect_code 2 imgforge show 2>err &&
	grep_one "give a build id" err
'

test_expect_success 'diff: packages upgraded, downgraded, added, removed; files' '
	imgforge diff 20231114 20231115 >out &&
	cat >expect <<-EOF &&
	packages: 4 changed
	  upgraded    bash [amd64]  5.2.15-2 -> 5.2.15-2+b2
	  added       curl [amd64]  7.88.1-10
	  downgraded  pinned [all]  2.0 -> 2.0~rc1
	  removed     vim-tiny [amd64]  2:9.0
	files: 3 changed
	  changed     /etc/motd (content, size)
	  added       /etc/new
	  removed     /etc/old
	EOF
	diff -u expect out &&
	imgforge diff --json $A $B >out.json &&
	python3 -c "
import json
d = json.load(open(\"out.json\"))
assert d[\"from\"] == \"$A\" and d[\"to\"] == \"$B\"
assert [(p[\"name\"], p[\"change\"]) for p in d[\"packages\"]] == [(\"bash\", \"upgraded\"),
    (\"curl\", \"added\"), (\"pinned\", \"downgraded\"), (\"vim-tiny\", \"removed\")], d
assert d[\"files\"][0] == {\"path\": \"/etc/motd\", \"change\": \"changed\", \"what\": [\"content\", \"size\"]}, d
"
'

test_expect_success 'diff: a build against itself is empty; usage errors exit 2' '
	imgforge diff $A $A >out &&
	grep -q "^packages: 0 changed" out &&
	expect_code 2 imgforge diff $A 2>err &&
	expect_code 2 imgforge diff $A $B extra 2>err &&
	grep_one "unexpected argument .extra." err &&
	expect_code 2 imgforge ls --frobnicate 2>err &&
	grep_one "unknown option" err &&
	test_must_fail imgforge diff $A nope 2>err &&
	grep_one "no build .nope." err
'

test_expect_success 'a registry from a newer imgforge is refused' '
	sqlite3 newer.db "CREATE TABLE builds (id); PRAGMA user_version = 42" &&
	test_must_fail imgforge ls --registry newer.db 2>err &&
	grep_one "newer than this imgforge" err &&
	test_must_fail imgforge ls --registry missing.db 2>err &&
	grep_one "no registry at .missing.db." err
'

# A cache with three entries as cache_store() leaves them (and one orphan).
seed_cache() {
	imgforge cache gc 2>/dev/null &&
	for k in a b c; do
		key=$(printf "%064d" 0 | tr 0 $k)
		head -c $(( ${#k} * 1000 + $(printf "%d" "'$k") )) /dev/zero >"$CACHE/objects/$key"
	done
	sqlite3 "$CACHE/index.db" "
	INSERT INTO entries VALUES ('$(printf "%064d" 0 | tr 0 a)', 'base', 'objects/$(printf "%064d" 0 | tr 0 a)', '0', 1097, 1700000000, 1700000300, 3, 0, 0, 0);
	INSERT INTO entries VALUES ('$(printf "%064d" 0 | tr 0 b)', 'rootfs', 'objects/$(printf "%064d" 0 | tr 0 b)', '0', 1098, 1700000000, 1700000100, 1, 0, 0, 0);
	INSERT INTO entries VALUES ('$(printf "%064d" 0 | tr 0 c)', 'disk', 'objects/$(printf "%064d" 0 | tr 0 c)', '0', 1099, 1700000000, 1700000200, 2, 0, 0, 0);"
	echo orphan >"$CACHE/objects/$(printf "%064d" 0 | tr 0 d)"
}

test_expect_success 'cache ls lists entries least recently used first' '
	seed_cache &&
	imgforge cache ls >out &&
	sed -n 2,4p out | cut -c1-12,15-22 >got &&
	printf "%s\n" "bbbbbbbbbbbbrootfs  " "ccccccccccccdisk    " "aaaaaaaaaaaabase    " >expect &&
	diff -u expect got &&
	grep -q "^3 entries, 3.2 KiB in " out &&
	grep -q "^1 file (7 B) in .*objects. not in the index: never used; .imgforge cache gc. deletes them\$" out &&
	test -e "$CACHE/objects/$(printf "%064d" 0 | tr 0 d)" &&
	imgforge cache ls --json >out.json &&
	python3 -c "
import json
c = json.load(open(\"out.json\"))
assert [e[\"stage\"] for e in c[\"entries\"]] == [\"rootfs\", \"disk\", \"base\"], c
assert c[\"total_size\"] == 1097 + 1098 + 1099, c
"
'

test_expect_success 'cache ls on a cache that cannot be written; a build there says why' '
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" ro.tar.gz &&
	printf "image: ro\nversion: 1\nbase: {tarball: ro.tar.gz, sha256: %s}\n" \
		$(sha256sum ro.tar.gz | cut -c1-64) >ro.yaml &&
	ro_on "$CACHE" && rc=0 rc2=0 &&
	{ imgforge cache ls >out 2>err || rc=$?; } &&
	{ imgforge build -o roout ro.yaml 2>err2 || rc2=$?; } &&
	ro_off "$CACHE" &&
	cat err err2 && test $rc = 0 && grep -q "^3 entries" out && test $rc2 = 1 &&
	grep_one "^error: cache: the cache directory .$CACHE. is not writable \(.*\): pass --cache DIR or set XDG_CACHE_HOME" err2
'

test_expect_success 'cache gc --max-size removes the least recently used' '
	imgforge cache gc --max-size 2K 2>err &&
	grep -q "removed 2 entries" err &&
	grep -q "removed 1 file in .*objects. that the index does not list" err &&
	imgforge cache ls --json >out.json &&
	python3 -c "
import json
c = json.load(open(\"out.json\"))
assert [e[\"stage\"] for e in c[\"entries\"]] == [\"base\"], c
" &&
	test "$(ls "$CACHE/objects" | wc -l)" = 1 &&
	expect_code 2 imgforge cache gc --max-size lots 2>err &&
	grep_one "invalid --max-size .lots." err &&
	expect_code 2 imgforge cache frob 2>err &&
	grep_one "unknown subcommand .frob." err &&
	imgforge cache gc --max-size 0 --cache "$CACHE" 2>err &&
	test "$(ls "$CACHE/objects" | wc -l)" = 0
'

test_done
