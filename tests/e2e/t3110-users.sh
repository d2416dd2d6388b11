#!/bin/bash
# users: accounts added at build time. check refuses bad names, keys and
# sudo values at FILE:LINE:COL; build writes /etc/passwd, group, shadow,
# gshadow, the SSH keys, sudoers.d and tmpfiles.d into root.ext4 (read back
# with debugfs), and refuses what the base cannot give with one line.
. "$SRCDIR/tests/e2e/lib.sh"

require_tool debugfs e2fsprogs || exit 1
require_tool e2fsck e2fsprogs || exit 1
export IMGFORGE_CACHE=$TEST_DIR/cache
KEY="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDIAxkdGy6U/+KCESQCPVzHQtOf4vbt3FLnGKR/qwNUJ op@laptop"

# A tiny Debian-like base: merged /usr, account files, bash, sshd, sudo.
base() { # DIR [passwd-line...]
	local top=$1 d=$1/root; shift
	mkdir -p "$d/usr/bin" "$d/usr/sbin" "$d/etc/ssh/sshd_config.d" "$d/etc/sudoers.d" &&
	ln -s usr/bin "$d/bin" &&
	printf '\177ELF' >"$d/usr/bin/bash" && printf '\177ELF' >"$d/usr/bin/sudo" &&
	printf '\177ELF' >"$d/usr/sbin/sshd" &&
	{ printf 'root:x:0:0:root:/root:/bin/bash\n_apt:x:100:65534::/nonexistent:/usr/sbin/nologin\n'
	  for l in "$@"; do printf '%s\n' "$l"; done; } >"$d/etc/passwd" &&
	printf 'root:x:0:\nadm:x:4:\nsudo:x:27:\nshadow:x:42:\n' >"$d/etc/group" &&
	printf 'root:*:19000:0:99999:7:::\n' >"$d/etc/shadow" && chmod 640 "$d/etc/shadow" &&
	printf 'root:*::\nadm:*::\nsudo:*::\nshadow:*::\n' >"$d/etc/gshadow" &&
	chmod 640 "$d/etc/gshadow" &&
	tar --owner=0 --group=0 --numeric-owner -C "$d" -czf "$top/rootfs.tar.gz" . &&
	sha=$(sha256sum "$top/rootfs.tar.gz" | cut -d" " -f1)
}
image() { # DIR USERS-YAML...
	local dir=$1; shift
	{ printf 'image: u\nversion: 1\nbase: {tarball: rootfs.tar.gz, sha256: %s}\n' "$sha"
	  printf '%s\n' "$@"; } >"$dir/image.yaml"
}
dbg() { debugfs -R "$1" "$2" 2>/dev/null; }

test_expect_success 'check and plan take users:' '
	base a && image a "users:" \
		"  - {name: op, groups: [adm, sudo], sudo: nopasswd, ssh-authorized-keys: [\"$KEY\"]}" \
		"  - {name: svc, system: true}" \
		"  - {name: eve, uid: 2000, shell: /bin/bash, home: /srv/eve}" \
		"files:" "  - {path: /etc/svc.conf, owner: \"svc:svc\", mode: \"0640\", content: x}" &&
	imgforge check a/image.yaml &&
	imgforge plan a/image.yaml >plan &&
	grep -q "^  users:" plan && grep -q "name: svc" plan
'

test_expect_success 'the rootfs key changes with users: and only then' '
	base k && image k "files: [{path: /etc/x, content: x}]" &&
	imgforge plan --json k/image.yaml >p1 &&
	image k "files: [{path: /etc/x, content: x}]" "users: []" &&
	imgforge plan --json k/image.yaml >p2 &&
	image k "files: [{path: /etc/x, content: x}]" "users: [{name: op}]" &&
	imgforge plan --json k/image.yaml >p3 &&
	image k "files: [{path: /etc/x, content: x}]" "users: [{name: op, system: true}]" &&
	imgforge plan --json k/image.yaml >p4 &&
	key() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"stages\"][\"rootfs\"])" "$1"; } &&
	test "$(key p1)" = "$(key p2)" &&
	test "$(key p1)" != "$(key p3)" && test "$(key p3)" != "$(key p4)"
'

test_expect_success 'build writes the accounts into root.ext4' '
	imgforge build --cache cache -o out a/image.yaml 2>err &&
	e2fsck -fn out/root.ext4 &&
	dbg "cat /etc/passwd" out/root.ext4 >passwd &&
	grep -qx "op:x:1000:1000::/data/home/op:/bin/bash" passwd &&
	grep -qx "svc:x:101:101::/nonexistent:/usr/sbin/nologin" passwd &&
	grep -qx "eve:x:2000:2000::/srv/eve:/bin/bash" passwd &&
	dbg "cat /etc/group" out/root.ext4 >group &&
	grep -qx "adm:x:4:op" group && grep -qx "sudo:x:27:op" group &&
	grep -qx "op:x:1000:" group && grep -qx "svc:x:101:" group &&
	dbg "cat /etc/shadow" out/root.ext4 >shadow &&
	grep -qx "op:\*::0:99999:7:::" shadow &&
	dbg "cat /etc/gshadow" out/root.ext4 >gshadow &&
	grep -qx "sudo:\*::op" gshadow && grep -qx "op:!::" gshadow &&
	dbg "stat /etc/shadow" out/root.ext4 | grep -q "Mode:  0640" &&
	dbg "cat /etc/ssh/authorized_keys.d/op" out/root.ext4 >keys &&
	test "$(cat keys)" = "$KEY" &&
	dbg "stat /etc/ssh/authorized_keys.d/op" out/root.ext4 >st &&
	grep -q "User:     0   Group:     0" st && grep -q "Mode:  0644" st &&
	dbg "cat /etc/ssh/sshd_config.d/imgforge-users.conf" out/root.ext4 |
		grep -qx "AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u .ssh/authorized_keys" &&
	dbg "cat /etc/sudoers.d/op" out/root.ext4 | grep -qx "op ALL=(ALL:ALL) NOPASSWD: ALL" &&
	dbg "stat /etc/sudoers.d/op" out/root.ext4 | grep -q "Mode:  0440" &&
	test -z "$(dbg "stat /etc/sudoers.d/svc" out/root.ext4)" &&
	dbg "cat /usr/lib/imgforge/users-homes.conf" out/root.ext4 >tmpf &&
	test "$(cat tmpf)" = "d /data/home/op 0700 1000 1000 -" &&
	dbg "cat /usr/lib/systemd/system/imgforge-users-homes.service" out/root.ext4 |
		grep -qx "RequiresMountsFor=/data" &&
	dbg "stat /etc/systemd/system/multi-user.target.wants/imgforge-users-homes.service" \
		out/root.ext4 | grep -q "Type: symlink" &&
	dbg "stat /etc/svc.conf" out/root.ext4 | grep -q "User:   101   Group:   101" &&
	grep -q "rootfs: user svc (uid 101)" err
'

# check: one error at FILE:LINE:COL for each bad value.
check_err() { # LINE:COL MESSAGE-REGEX USERS-LINE...
	local at=$1 re=$2; shift 2
	image c "users:" "$@" &&
	test_must_fail imgforge check c/image.yaml 2>err &&
	grep -q "^c/image.yaml:$at: error: $re" err || { cat err; return 1; }
}

test_expect_success 'check refuses bad names, keys, sudo values and duplicates' '
	base c &&
	check_err 5:12 "invalid user name .Op.: a user or group name starts" "  - {name: Op}" &&
	check_err 5:12 "invalid user name .a\.b." "  - {name: a.b}" &&
	check_err 5:12 "invalid user name .\.\./x." "  - {name: ../x}" &&
	check_err 5:24 "invalid group name .Wheel." "  - {name: a, groups: [Wheel]}" &&
	check_err 5:37 "invalid SSH public key .ssh-rsa AAAA.*: the key data does not hold a key of the type" \
		"  - {name: a, ssh-authorized-keys: [\"ssh-rsa ${KEY#ssh-ed25519 }\"]}" &&
	check_err 5:37 "invalid SSH public key .ssh-ed25519 not-base64.: the key data is not valid base64" \
		"  - {name: a, ssh-authorized-keys: [\"ssh-ed25519 not-base64\"]}" &&
	check_err 5:37 "invalid SSH public key .AAAA.: expected .TYPE BASE64" \
		"  - {name: a, ssh-authorized-keys: [AAAA]}" &&
	check_err 5:21 "sudo: true would ask for a password.*write .sudo: nopasswd." \
		"  - {name: a, sudo: true}" &&
	check_err 5:21 "invalid sudo .always.: expected nopasswd or false" "  - {name: a, sudo: always}" &&
	check_err 5:20 "invalid uid .0.: expected a number from 1 to 59999" "  - {name: a, uid: 0}" &&
	check_err 6:12 "user .a. is defined twice (first at c/image.yaml:5)" \
		"  - {name: a}" "  - {name: a}" &&
	check_err 6:20 "uid 1500 is given to both .a. and .b." \
		"  - {name: a, uid: 1500}" "  - {name: b, uid: 1500}" &&
	check_err 5:5 "user entry needs .name:." "  - {uid: 1500}" &&
	check_err 5:21 ".home. cannot hold spaces, .:. or control characters" \
		"  - {name: a, home: \"/data/a:b\"}" &&
	check_err 5:15 "unknown key .group. in users (did you mean .groups.?)" \
		"  - {name: a, group: [adm]}"
'

# build: refusals that need the base, one line naming the recipe line.
build_err() { # DIR LINE:COL MESSAGE-REGEX
	test_must_fail imgforge build --cache cache -o "$1/out" "$1/image.yaml" 2>err &&
	grep -q "^error: $1/image.yaml:$2: user .*: $3" err &&
	test "$(grep -c "^error:" err)" -eq 1 &&
	test ! -e "$1/out/root.ext4" || { cat err; return 1; }
}

test_expect_success 'build refuses users the base cannot have' '
	base b "app:x:1000:1000::/home/app:/bin/sh" &&
	image b "users: [{name: root}]" && build_err b 4:16 "the image already has a user .root." &&
	image b "users: [{name: x, groups: [wheel]}]" && build_err b 4:16 "no group .wheel. in the image" &&
	image b "users: [{name: x, uid: 1000}]" && build_err b 4:16 "uid 1000 is already taken" &&
	image b "users: [{name: x, shell: /bin/zsh}]" && build_err b 4:16 "shell ./bin/zsh. is not in the image" &&
	image b "users: [{name: sudo}]" && build_err b 4:16 "the image already has a group .sudo."
'

test_expect_success 'sudo and SSH keys need their packages in the image' '
	base s && rm s/root/usr/bin/sudo s/root/usr/sbin/sshd &&
	tar --owner=0 --group=0 --numeric-owner -C s/root -czf s/rootfs.tar.gz . &&
	sha=$(sha256sum s/rootfs.tar.gz | cut -d" " -f1) &&
	image s "users: [{name: x, sudo: nopasswd}]" && build_err s 4:16 "add the package sudo" &&
	image s "users: [{name: x, ssh-authorized-keys: [\"$KEY\"]}]" &&
	build_err s 4:16 "add the package openssh-server"
'

test_expect_success 'a broken /etc/passwd in the base is one error line' '
	base h "broken line without fields" &&
	image h "users: [{name: x}]" &&
	build_err h 4:16 "./etc/passwd. in the image, line 3: expected 7 fields separated by .:., found 1 (.broken line without fields.)$"
'

test_done
