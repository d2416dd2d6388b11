# imgforge — hand-written Makefile.
#
#   make                 build ./imgforge
#   make DEV=1           ... with -Werror
#   make SANITIZE=address,undefined
#                        ... with sanitizers (objects kept apart in build/san-*)
#   make check           unit tests (plain and ASan+UBSan builds) + end-to-end tests
#   make check-fast      unit tests + the quick end-to-end tests, plain build only
#   make fuzz FUZZ_SECONDS=N  build the libFuzzer targets and run each N seconds
#   make check-concurrent  concurrent builds with a real mmdebstrap base (minutes)
#   make check-fresh     make deps, unit tests, a booting disk and the frontend in
#                        a chroot of a fresh Debian 12 minbase root (root, minutes)
#   make check-users-boot  users: accounts over SSH and sudo on a booted image (minutes)
#   make check-update    signed A/B updates in QEMU alone (t5100, about 15 minutes)
#   make check-powercut  power cuts at 59 points of A/B updates in QEMU (t5110, hours)
#   make check-powercut-firstboot  power cuts at 30 points of the appliance's first boot (t6120, 2 h)
#   make check-recovery  restore at first boot, staging replica, SQLite import in VMs (t6130, ~20 min)
#   make deps            install every Debian package needed to build, test and demo
#   make demo            build and boot the sample appliance (see README.md)
#   make install         PREFIX=/usr/local DESTDIR= (the binary, recipes/ and overlays/,
#                        the update agent in $(PREFIX)/lib/imgforge)

VERSION    := 0.1.0
comma      := ,

# make V=1 shows the full commands.
ifeq ($(V),1)
Q :=
QUIET_CC =
QUIET_LINK =
else
Q := @
QUIET_CC = @echo '   CC $@';
QUIET_LINK = @echo ' LINK $@';
endif
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
# recipes/ and overlays/ are installed here; includes not found next to
# the including file are looked for in $(DATADIR)/recipes (docs/recipes.md).
DATADIR    ?= $(PREFIX)/share/imgforge
# imgforge-update, the agent images carry (docs/update.md), is installed here;
# recipes take it from next to the imgforge binary, else from here.
AGENTDIR   ?= $(PREFIX)/lib/imgforge
DESTDIR    ?=
CC         ?= cc
PKG_CONFIG ?= pkg-config

PKGS := yaml-0.1 libarchive ext2fs com_err sqlite3 libpq libcurl libcrypto zlib libzstd libxml-2.0

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	-Wvla -Wwrite-strings -fno-common
CFLAGS ?= -O2 -g

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
# The agent runs on the device: libcurl, libcrypto and libzstd only.
AGENT_PKGS := libcurl libcrypto libzstd
AGENT_LIBS := $(shell $(PKG_CONFIG) --libs $(AGENT_PKGS) 2>/dev/null)

ALL_CFLAGS  = -std=gnu11 $(WARN) $(CFLAGS) -Isrc -D_FILE_OFFSET_BITS=64 \
	-DIMGFORGE_VERSION='"$(VERSION)"' -DIMGFORGE_DATADIR='"$(DATADIR)"' \
	-DIMGFORGE_AGENTDIR='"$(AGENTDIR)"' $(PKG_CFLAGS)
ALL_LDFLAGS = $(LDFLAGS)

ifeq ($(DEV),1)
ALL_CFLAGS += -Werror
endif

ifneq ($(SANITIZE),)
ALL_CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
O ?= build/san-$(subst $(comma),-,$(SANITIZE))
else
O ?= build/default
endif
SRCS       := $(sort $(wildcard src/*/*.c))
OBJS       := $(patsubst src/%.c,$(O)/src/%.o,$(SRCS))
UNIT_SRCS  := $(sort $(wildcard tests/unit/test-*.c))
UNIT_BINS  := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRCS))
# imgforge-update: its commands, and the layers below update/ it uses.
AGENT_SRCS := $(sort $(wildcard src/update/agent/*.c)) \
	$(sort $(wildcard src/core/*.c src/update/*.c)) src/net/fetch.c src/net/fetch-stream.c \
	src/net/fetch-range.c
AGENT_OBJS := $(patsubst src/%.c,$(O)/src/%.o,$(AGENT_SRCS))
FUZZ_SRCS  := $(sort $(wildcard tests/fuzz/fuzz-*.c))
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,$(O)/tests/%,$(FUZZ_SRCS))

# The sanitizer flavour make check runs the unit tests under.
CHECK_SANITIZE := address,undefined

.PHONY: all agent deps check check-fast check-unit check-e2e check-san check-appliance-bios \
	check-appliance-lynis check-update check-powercut check-powercut-firstboot \
	check-powercut-firstboot-short check-recovery \
	check-users-boot check-concurrent check-fresh demo install \
	format clean unit-bins fuzz FORCE

all: imgforge agent

agent: imgforge-update

# ./imgforge is a copy of the flavour last built, so that `make` and
# `make SANITIZE=...` each leave the binary they were asked for.
imgforge: $(O)/imgforge FORCE
	@cmp -s $(O)/imgforge $@ || { cp $(O)/imgforge $@.tmp && mv -f $@.tmp $@; }

$(O)/imgforge: $(O)/build.o $(O)/libimgforge.a
	$(QUIET_LINK)$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm

# ./imgforge-update beside ./imgforge, as $(O)/imgforge-update beside
# $(O)/imgforge: recipes find the agent next to the running imgforge.
imgforge-update: $(O)/imgforge-update FORCE
	@cmp -s $(O)/imgforge-update $@ || { cp $(O)/imgforge-update $@.tmp && mv -f $@.tmp $@; }

$(O)/imgforge-update: $(AGENT_OBJS)
	$(QUIET_LINK)$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(AGENT_LIBS)

$(O)/libimgforge.a: $(OBJS)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(O)/build.o: build.c $(O)/.flags
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(O)/src/%.o: src/%.c $(O)/.flags
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(O)/tests/%.o: tests/unit/%.c $(O)/.flags
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -Itests/unit -MMD -MP -c -o $@ $<

$(O)/tests/test-%: $(O)/tests/test-%.o $(O)/libimgforge.a
	$(QUIET_LINK)$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm

$(O)/tests/fuzz-%.o: tests/fuzz/fuzz-%.c $(O)/.flags
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -Itests/fuzz -MMD -MP -c -o $@ $<

# Fuzz targets are built as plain programs that replay their corpus
# (tests/fuzz/replay.c); `make fuzz` in tests/fuzz/README.md builds them for libFuzzer.
$(O)/tests/fuzz-%: $(O)/tests/fuzz-%.o $(O)/tests/replay.o $(O)/libimgforge.a
	$(QUIET_LINK)$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm

$(O)/tests/replay.o: tests/fuzz/replay.c $(O)/.flags
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# Rebuild everything in a flavour when its flags change.
$(O)/.flags: FORCE
	@mkdir -p $(O)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@

unit-bins: $(UNIT_BINS) $(FUZZ_BINS) $(O)/imgforge $(O)/imgforge-update

-include $(wildcard $(O)/*.d $(O)/src/*/*.d $(O)/src/*/*/*.d $(O)/tests/*.d)

# --- dependencies ----------------------------------------------------------

# Every Debian package needed to build, test and run the demo, but Node.js
# (NODE_PACKAGES below).
DEB_PACKAGES := gcc make pkg-config libc6-dev \
	libyaml-dev libxml2-dev libarchive-dev libext2fs-dev comerr-dev libsqlite3-dev libpq-dev \
	libcurl4-openssl-dev libssl-dev zlib1g-dev libzstd-dev \
	e2fsprogs libarchive-tools xz-utils zstd bzip2 lz4 gzip coreutils attr python3 sqlite3 \
	mmdebstrap debian-archive-keyring ca-certificates time bc \
	qemu-system-x86 qemu-utils ovmf seabios grub-efi-amd64-bin grub-pc-bin \
	fdisk gdisk dosfstools mtools \
	postgresql curl python3-flask python3-psycopg2 gunicorn openssh-client lynis strace casync \
	keystone glance-api python3-openstackclient uwsgi-plugin-python3

# botocore recomputes the AWS signatures in the publish tests' fake EC2 and EBS
# (tests/helpers/fake-aws.py) and reads their S3 peer.
DEB_PACKAGES += python3-botocore
# The AWS CLI reads back what imgforge publish uploaded to S3: a second,
# independent S3 client (tests/e2e/t7000-publish-s3.sh).
DEB_PACKAGES += awscli
# The appliance's offsite backups (tests/e2e/t6060-appliance-offsite.sh): age
# encrypts them as on the appliance; promtool (in prometheus) checks and
# unit-tests the alert rules; the first boot's provisioning reads the
# user-data with python3-yaml, as in the image.
DEB_PACKAGES += age prometheus python3-yaml
# The appliance's import of an SQLite database into PostgreSQL
# (tests/e2e/t6070-appliance-import.sh): the pgloader the image runs.
DEB_PACKAGES += pgloader

# s3rver, the S3 peer of the publish tests (npm, not in Debian), installed
# into the build tree: tests take $(S3RVER_DIR)/node_modules/.bin/s3rver.
S3RVER_VERSION := 3.7.1
S3RVER_DIR     := build/tools/s3rver

# The sample frontend's toolchain (examples/atarys/frontend: Vite 5.4) runs on
# Node.js 18 or later, Debian 12's own. A node and npm that work already, such
# as a newer Node.js from another apt repository whose nodejs package carries
# its own npm and conflicts with Debian's, are left alone.
NODE_PACKAGES := nodejs npm

deps:
	@pkgs="$(DEB_PACKAGES)"; \
	node -e 'process.exit(process.versions.node.split(".")[0] >= 18 ? 0 : 1)' 2>/dev/null && \
		npm --version >/dev/null 2>&1 || pkgs="$$pkgs $(NODE_PACKAGES)"; \
	missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $$pkgs 2>/dev/null | \
		awk -v want="$$pkgs" '$$NF == "installed" { ok[$$1] = 1 } END { n = split(want, p, " "); \
		for (i = 1; i <= n; i++) if (!(p[i] in ok)) printf "%s ", p[i] }'); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing $$missing"; \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends \
			$$missing >/dev/null || { echo "deps: apt-get install failed" >&2; exit 1; }; \
	fi
	@v=$$(node -p 'require("./$(S3RVER_DIR)/node_modules/s3rver/package.json").version' 2>/dev/null); \
	if [ "$$v" != "$(S3RVER_VERSION)" ]; then \
		echo "deps: installing s3rver $(S3RVER_VERSION) (npm) in $(S3RVER_DIR)"; \
		mkdir -p $(S3RVER_DIR) && \
		npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
			--prefix $(S3RVER_DIR) s3rver@$(S3RVER_VERSION) >/dev/null || \
			{ echo "deps: npm install s3rver@$(S3RVER_VERSION) failed" >&2; exit 1; }; \
	fi

# --- tests -------------------------------------------------------------------

# make check: deps, then unit tests in the plain build and under ASan+UBSan,
# the fuzz corpus replayed under ASan+UBSan, and every end-to-end test.
check: deps
	@$(MAKE) --no-print-directory all unit-bins
	@$(MAKE) --no-print-directory SANITIZE=$(CHECK_SANITIZE) unit-bins
	@tests/run.sh --build $(O) --san-build build/san-$(subst $(comma),-,$(CHECK_SANITIZE)) \
		--imgforge $(O)/imgforge

check-fast: deps
	@$(MAKE) --no-print-directory all unit-bins
	@tests/run.sh --fast --build $(O) --imgforge $(O)/imgforge

# The appliance checklist (tests/e2e/t6100-appliance.sh) booted with BIOS
# firmware; `make check` runs it with UEFI.
# Signed A/B updates end to end in QEMU (tests/e2e/long/t5100-update.sh): about
# 15 minutes under TCG, too long for `make check`, which runs the same agent
# against a disk of files (t3410) and the bundle checks (t3400, unit tests).
# IMGFORGE_UPDATE_FIRMWARE=bios boots with SeaBIOS.
check-update: deps
	@$(MAKE) --no-print-directory all
	@IMGFORGE=$(CURDIR)/$(O)/imgforge SRCDIR=$(CURDIR) \
		bash tests/e2e/long/t5100-update.sh

# Power cuts (SIGKILL of QEMU) at 59 points of a chain of A/B updates
# (tests/e2e/long/t5110-powercut.sh): each cut is a boot under TCG, about 5
# minutes idle, so four to five hours (more on a loaded machine); `make check`
# runs the agent killed at every stop point on a disk of files (t3430).
# POWERCUT_POINTS=FILE runs other points, POWERCUT_REPORT=FILE keeps the table.
check-powercut: deps
	@$(MAKE) --no-print-directory all
	@IMGFORGE=$(CURDIR)/$(O)/imgforge SRCDIR=$(CURDIR) \
		bash tests/e2e/long/t5110-powercut.sh

# Power cuts (SIGKILL of QEMU) at 30 points of the appliance's first boot
# (tests/e2e/long/t6120-powercut-firstboot.sh): each point is two boots of
# atarys-production under TCG, about 4 minutes, so two hours;
# check-powercut-firstboot-short runs two of them (t6110, about 13 minutes).
# `make check` keeps t6100's two cuts (right after the first boot, 60 s
# after an API write). FBCUT_POINTS=FILE runs other points,
# FBCUT_REPORT=FILE keeps the table.
check-powercut-firstboot: deps
	@$(MAKE) --no-print-directory all
	@IMGFORGE=$(CURDIR)/$(O)/imgforge SRCDIR=$(CURDIR) \
		bash tests/e2e/long/t6120-powercut-firstboot.sh

check-powercut-firstboot-short: deps
	@$(MAKE) --no-print-directory all
	@IMGFORGE=$(CURDIR)/$(O)/imgforge SRCDIR=$(CURDIR) \
		bash tests/e2e/long/t6110-appliance-firstboot-cut.sh

# Disaster recovery and staging in VMs (tests/e2e/long/t6130-appliance-recovery.sh):
# production backs up offsite (s3rver), staging restores and scrubs it at
# first boot, a tampered backup starts empty, a SQLite database is imported;
# four first boots, about 20 minutes. `make check` has the restore in t6100.
check-recovery: deps
	@$(MAKE) --no-print-directory all
	@IMGFORGE=$(CURDIR)/$(O)/imgforge SRCDIR=$(CURDIR) \
		bash tests/e2e/long/t6130-appliance-recovery.sh

check-appliance-bios: deps
	@$(MAKE) --no-print-directory all
	@IMGFORGE_APPLIANCE_FIRMWARE=bios tests/run.sh --only t6100 --build $(O) --imgforge $(O)/imgforge

# The appliance checklist with the Lynis audit of the booted appliance (index
# at least 80; about 24 minutes of the run under TCG, so `make check` skips it).
check-appliance-lynis: deps
	@$(MAKE) --no-print-directory all
	@IMGFORGE_APPLIANCE_LYNIS=$${IMGFORGE_APPLIANCE_LYNIS:-1} IMGFORGE_TEST_TIMEOUT=5400 tests/run.sh --only t6100 --build $(O) --imgforge $(O)/imgforge

# Concurrent builds of an mmdebstrap image on one cache (tests/e2e/long/): too
# slow for `make check`, which runs the same race with tarball bases (t3300).
check-concurrent: deps
	@$(MAKE) --no-print-directory all
	@IMGFORGE=$(CURDIR)/$(O)/imgforge SRCDIR=$(CURDIR) \
		bash tests/e2e/long/t3310-concurrent-mmdebstrap.sh

# The README on a fresh Debian 12 machine (tests/e2e/long/t9000-fresh-debian.sh):
# in a chroot of a new minbase root with only make and git, from a clone of
# the committed tree, `make deps`, `make check-unit`, a disk that boots and the
# sample frontend's build. About 5 minutes on an idle 2-core machine without
# KVM; needs the apt mirror, and root (sudo otherwise). FRESH_REV=REV checks another commit,
# FRESH_KEEP=1 keeps the root.
check-fresh: deps
	@sudo=; [ "$$(id -u)" = 0 ] || sudo="sudo --preserve-env=IMGFORGE_MIRROR,FRESH_REV,FRESH_KEEP"; \
	$$sudo env SRCDIR=$(CURDIR) bash tests/e2e/long/t9000-fresh-debian.sh

# users: on a booted image (tests/e2e/long/t4100-users-boot.sh): SSH with the
# account's key and sudo in QEMU. Minutes and the apt mirror: not in `make
# check`, which checks the same accounts in root.ext4 (t3110).
# IMGFORGE_FIRMWARE=bios boots with SeaBIOS.
check-users-boot: deps
	@$(MAKE) --no-print-directory all
	@IMGFORGE=$(CURDIR)/$(O)/imgforge SRCDIR=$(CURDIR) \
		bash tests/e2e/long/t4100-users-boot.sh

check-unit: unit-bins
	@tests/run.sh --unit-only --build $(O) --imgforge $(O)/imgforge

# libFuzzer builds of the fuzz targets (clang): build/fuzz/fuzz-NAME. Then,
# with FUZZ_SECONDS=N (default 60), each target runs N seconds in turn: new
# inputs go to build/fuzz/corpus/NAME, the committed seeds in
# tests/fuzz/corpus/NAME are read, crashes land in build/fuzz/crashes/.
# FUZZ_SECONDS=0 only builds. See tests/fuzz/README.md.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found: apt-get install clang" >&2; exit 1; }
	@mkdir -p build/fuzz/crashes
	@for t in $(FUZZ_SRCS); do \
		n=$$(basename $$t .c); echo " FUZZ build/fuzz/$$n"; \
		$(FUZZ_CC) -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
			-DIMGFORGE_VERSION='"$(VERSION)"' -DIMGFORGE_DATADIR='"$(DATADIR)"' $(PKG_CFLAGS) -o build/fuzz/$$n $$t \
			$(filter-out src/cmd/%.c,$(SRCS)) $(PKG_LIBS) -lm || exit 1; \
	done
	@[ "$(FUZZ_SECONDS)" = 0 ] || for t in $(FUZZ_SRCS); do \
		n=$$(basename $$t .c); c=$${n#fuzz-}; mkdir -p build/fuzz/corpus/$$c; \
		echo " RUN  build/fuzz/$$n for $(FUZZ_SECONDS) s"; \
		build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=build/fuzz/crashes/$$c- \
			build/fuzz/corpus/$$c tests/fuzz/corpus/$$c \
			>build/fuzz/$$n.log 2>&1 || { tail -30 build/fuzz/$$n.log; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^Done' build/fuzz/$$n.log | sed 's/^/      /'; \
	done

# --- demo, install, format, clean ------------------------------------------

# The demo runs `make deps` and `make all` itself, to time each step.
demo:
	@examples/demo.sh

# recipes/ and overlays/ keep their layout (installed recipes name
# ../overlays/X) and their modes (overlays hold executables).
install: $(O)/imgforge $(O)/imgforge-update
	@test -n "$(DATADIR)" || { echo "install: DATADIR is empty" >&2; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR) $(DESTDIR)$(AGENTDIR)
	install -m 0755 $(O)/imgforge $(DESTDIR)$(BINDIR)/imgforge
	install -m 0755 $(O)/imgforge-update $(DESTDIR)$(AGENTDIR)/imgforge-update
	rm -rf $(DESTDIR)$(DATADIR)/recipes $(DESTDIR)$(DATADIR)/overlays
	cp -R --no-preserve=ownership --preserve=mode,timestamps recipes overlays $(DESTDIR)$(DATADIR)/

format:
	clang-format -i build.c src/*/*.c src/*/*.h src/*/*/*.c src/*/*/*.h tests/unit/*.c tests/unit/*.h

clean:
	rm -rf build imgforge imgforge-update

FORCE:

# Keep test objects: they are not intermediate to anyone but the test programs.
.SECONDARY:
