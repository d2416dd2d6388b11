/* SPDX-License-Identifier: MIT */
/* Tests for src/update/slot.c: the GRUB environment block and the booted slot. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/bootloader.h"
#include "tap.h"
#include "core/util.h"
#include "update/slot.h"

/* The block the disk stage writes (build/bootloader.c), as the device gets it. */
static void write_initial(const char *path, const char *b_tries)
{
	const char *names[] = { "ORDER", "A_TRIES", "B_TRIES" };
	const char *values[] = { "A B", "0", b_tries };
	uint8_t block[GRUBENV_SIZE];

	CHECK_INT(grubenv_render(names, values, 3, block), 0);
	CHECK_INT(write_file_atomic(path, block, sizeof(block), 0600), 0);
}

static struct slot_env load(const char *dir, bool *from_copy)
{
	struct slot_env env = SLOT_ENV_INIT;
	struct strbuf err = STRBUF_INIT;

	CHECK_INT(slot_env_load(dir, &env, from_copy, &err), 0);
	strbuf_release(&err);
	return env;
}

TEST(test_parse_initial_block)
{
	struct slot_env env;
	bool copy = true;

	write_initial("grubenv", "3");
	env = load(".", &copy);
	CHECK(!copy);
	CHECK_INT(env.n, 3);
	CHECK_STR(slot_env_get(&env, "ORDER"), "A B");
	CHECK_STR(slot_env_get(&env, "B_TRIES"), "3");
	CHECK(slot_env_get(&env, "C_TRIES") == NULL);
	CHECK_INT(slot_tries(&env, 'A'), 0);
	CHECK_INT(slot_tries(&env, 'B'), 3);
	slot_env_release(&env);
}

/* The same variables render to the bytes the build writes. */
TEST(test_render_matches_build)
{
	const char *names[] = { "ORDER", "A_TRIES", "B_TRIES" };
	const char *values[] = { "B A", "0", "1" };
	uint8_t want[GRUBENV_SIZE], got[SLOT_ENV_SIZE];
	struct slot_env env = SLOT_ENV_INIT;

	CHECK_INT(grubenv_render(names, values, 3, want), 0);
	CHECK_INT(slot_env_set(&env, "ORDER", "B A"), 0);
	CHECK_INT(slot_env_set(&env, "A_TRIES", "0"), 0);
	CHECK_INT(slot_env_set(&env, "B_TRIES", "1"), 0);
	CHECK_INT(slot_env_render(&env, got), 0);
	CHECK(memcmp(want, got, SLOT_ENV_SIZE) == 0);
	slot_env_release(&env);
}

/* As imgforge-slot set: the variable set moves to the end, others stay in order. */
TEST(test_set_moves_to_end)
{
	struct slot_env env = SLOT_ENV_INIT;
	uint8_t block[SLOT_ENV_SIZE];

	write_initial("grubenv", "3");
	env = load(".", NULL);
	CHECK_INT(slot_env_set(&env, "A_TRIES", "2"), 0);
	CHECK_INT(env.n, 3);
	CHECK_STR(env.vars[0].name, "ORDER");
	CHECK_STR(env.vars[1].name, "B_TRIES");
	CHECK_STR(env.vars[2].name, "A_TRIES");
	CHECK_INT(slot_env_render(&env, block), 0);
	CHECK(memcmp(block, "# GRUB Environment Block\nORDER=A B\nB_TRIES=3\nA_TRIES=2\n####", 59) ==
	      0);
	CHECK(block[SLOT_ENV_SIZE - 1] == '#');
	CHECK_INT(slot_env_set(&env, "a_tries", "1"), -EINVAL);
	CHECK_INT(slot_env_set(&env, "ORDER", "A\nB"), -EINVAL);
	CHECK_INT(slot_env_set(&env, "1X", "1"), -EINVAL);
	slot_env_release(&env);
}

TEST(test_invalid_blocks)
{
	struct slot_env env = SLOT_ENV_INIT;
	char buf[SLOT_ENV_SIZE + 1];

	memset(buf, '#', sizeof(buf));
	CHECK_INT(slot_env_parse(buf, SLOT_ENV_SIZE, &env), -EINVAL); /* no header */
	memcpy(buf, "# GRUB Environment Block\nA=1\n", 29);
	CHECK_INT(slot_env_parse(buf, SLOT_ENV_SIZE - 1, &env), -EINVAL);
	CHECK_INT(slot_env_parse(buf, SLOT_ENV_SIZE + 1, &env), -EINVAL);
	CHECK_INT(slot_env_parse(buf, SLOT_ENV_SIZE, &env), 0);
	CHECK_STR(slot_env_get(&env, "A"), "1");
	slot_env_release(&env);
}

/* A damaged primary: the copy is read; neither valid: one message naming both. */
TEST(test_load_falls_back_to_copy)
{
	struct slot_env env = SLOT_ENV_INIT;
	struct strbuf err = STRBUF_INIT;
	bool copy = false;

	write_initial("grubenv.bak", "1");
	CHECK_INT(write_file_atomic("grubenv", "# GRUB Environment Block\nORDER=A B\n", 36, 0600),
		  0);
	env = load(".", &copy);
	CHECK(copy);
	CHECK_STR(slot_env_get(&env, "B_TRIES"), "1");
	slot_env_release(&env);

	CHECK_INT(unlink("grubenv.bak"), 0);
	CHECK_INT(slot_env_load(".", &env, NULL, &err), -EINVAL);
	CHECK(strstr(err.buf, "grubenv.bak") != NULL);
	CHECK(strstr(err.buf, "is a valid GRUB environment block") != NULL);
	strbuf_release(&err);
}

/* Both files rewritten in place (the same inode: on FAT, the same clusters). */
TEST(test_store_in_place)
{
	struct slot_env env = SLOT_ENV_INIT;
	struct strbuf err = STRBUF_INIT;
	struct stat before, after, bak_before, bak_after;
	_cleanup_free_ char *got = NULL, *bak = NULL;
	size_t len = 0;

	write_initial("grubenv", "3");
	write_initial("grubenv.bak", "3");
	CHECK_INT(stat("grubenv", &before), 0);
	CHECK_INT(stat("grubenv.bak", &bak_before), 0);
	env = load(".", NULL);
	CHECK_INT(slot_env_set(&env, "ORDER", "B A"), 0);
	CHECK_INT(slot_env_set(&env, "B_TRIES", "0"), 0);
	CHECK_INT(slot_env_store(".", &env, &err), 0);
	CHECK_INT(stat("grubenv", &after), 0);
	CHECK_INT(stat("grubenv.bak", &bak_after), 0);
	CHECK_INT(before.st_ino, after.st_ino);
	CHECK_INT(bak_before.st_ino, bak_after.st_ino);
	CHECK_INT(after.st_size, SLOT_ENV_SIZE);
	CHECK_INT(read_file("grubenv", 4096, &got, &len), 0);
	CHECK_INT(read_file("grubenv.bak", 4096, &bak, &len), 0);
	CHECK(memcmp(got, bak, SLOT_ENV_SIZE) == 0);
	CHECK(strstr(got, "\nA_TRIES=0\nORDER=B A\nB_TRIES=0\n#") != NULL);
	slot_env_release(&env);
	strbuf_release(&err);
}

/* A missing or wrongly sized file becomes a new, full block. */
TEST(test_store_replaces_bad_files)
{
	struct slot_env env = SLOT_ENV_INIT;
	struct strbuf err = STRBUF_INIT;
	struct stat st;

	CHECK_INT(write_file_atomic("grubenv", "junk", 4, 0600), 0);
	CHECK_INT(slot_env_set(&env, "ORDER", "A B"), 0);
	CHECK_INT(slot_env_store(".", &env, &err), 0);
	CHECK_INT(stat("grubenv", &st), 0);
	CHECK_INT(st.st_size, SLOT_ENV_SIZE);
	CHECK_INT(stat("grubenv.bak", &st), 0);
	CHECK_INT(st.st_size, SLOT_ENV_SIZE);
	CHECK(access("grubenv.new", F_OK) < 0);
	slot_env_release(&env);
	env = load(".", NULL);
	CHECK_STR(slot_env_get(&env, "ORDER"), "A B");
	slot_env_release(&env);
	strbuf_release(&err);
}

TEST(test_store_too_long)
{
	struct slot_env env = SLOT_ENV_INIT;
	struct strbuf err = STRBUF_INIT;
	char big[1100];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_initial("grubenv", "3");
	CHECK_INT(slot_env_set(&env, "BIG", big), 0);
	CHECK_INT(slot_env_store(".", &env, &err), -E2BIG);
	CHECK(strstr(err.buf, "do not fit") != NULL);
	/* Nothing written: the old block is still there. */
	slot_env_release(&env);
	env = load(".", NULL);
	CHECK_STR(slot_env_get(&env, "B_TRIES"), "3");
	slot_env_release(&env);
	strbuf_release(&err);
}

TEST(test_booted_slot)
{
	struct strbuf err = STRBUF_INIT;
	char slot = 0;
	bool fb = true;

	setenv("IMGFORGE_UPDATE_CMDLINE", "cmdline", 1);
	CHECK_INT(write_file_atomic("cmdline",
				    "root=PARTUUID=x ro imgforge.slot=B imgforge.fallback=0 quiet\n",
				    61, 0600),
		  0);
	CHECK_INT(slot_booted(&slot, &fb, &err), 0);
	CHECK_INT(slot, 'B');
	CHECK(!fb);
	CHECK_INT(write_file_atomic("cmdline", "ro imgforge.fallback=1 imgforge.slot=A", 38, 0600),
		  0);
	CHECK_INT(slot_booted(&slot, &fb, &err), 0);
	CHECK_INT(slot, 'A');
	CHECK(fb);
	CHECK_INT(write_file_atomic("cmdline", "ro xmgforge.slot=A imgforge.slot=AB", 35, 0600), 0);
	CHECK_INT(slot_booted(&slot, &fb, &err), -ENOENT);
	CHECK(strstr(err.buf, "not booted by imgforge's GRUB") != NULL);
	strbuf_release(&err);
}

TEST(test_devices_and_tries)
{
	struct boot_settings s = { .esp_uuid = "1234-ABCD", .tries = 5, .part_a = 3, .part_b = 4 };
	_cleanup_free_ char *cfg = bootloader_config(&s);
	struct slot_env env = SLOT_ENV_INIT;

	unsetenv("IMGFORGE_UPDATE_ROOT_A");
	CHECK_STR(slot_device('A'), "/dev/disk/by-partlabel/root-a");
	setenv("IMGFORGE_UPDATE_ROOT_B", "/tmp/b.img", 1);
	CHECK_STR(slot_device('B'), "/tmp/b.img");
	CHECK_INT(slot_other('A'), 'B');

	CHECK_INT(slot_max_tries("."), SLOT_TRIES_DEFAULT);
	CHECK_INT(write_file_atomic("grub.cfg", cfg, strlen(cfg), 0644), 0);
	CHECK_INT(slot_max_tries("."), 5);

	CHECK_INT(slot_env_set(&env, "A_TRIES", ""), 0);
	CHECK_INT(slot_env_set(&env, "B_TRIES", "bad"), 0);
	CHECK_INT(slot_tries(&env, 'A'), 0);
	CHECK_INT(slot_tries(&env, 'B'), UINT_MAX);
	slot_env_release(&env);
}

int main(void)
{
	RUN(test_parse_initial_block);
	RUN(test_render_matches_build);
	RUN(test_set_moves_to_end);
	RUN(test_invalid_blocks);
	RUN(test_load_falls_back_to_copy);
	RUN(test_store_in_place);
	RUN(test_store_replaces_bad_files);
	RUN(test_store_too_long);
	RUN(test_booted_slot);
	RUN(test_devices_and_tries);
	return tap_done();
}
