/* SPDX-License-Identifier: MIT */
/* Tests for src/build/bootloader.c: what reaches grub.cfg. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "build/bootloader.h"
#include "tap.h"
#include "core/util.h"

/* The recipe refuses such a command line; the bootloader refuses it again, before any tool runs. */
TEST(test_cmdline_that_breaks_grub_cfg)
{
	static const char *const bad[] = { "quiet\n}\nmenuentry evil {", "a; reboot", "$(x)",
					   "a=\"b c\"", "x # y", "a\\b" };
	struct boot_settings s = { .esp_uuid = "1234-ABCD", .tries = 3 };
	struct boot_images b = { 0 };
	struct strbuf err = STRBUF_INIT;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		s.cmdline = bad[i];
		CHECK_INT(bootloader_images(&s, ".", &b, &err), -EINVAL);
		CHECK(strstr(err.buf, "kernel command line") != NULL);
		strbuf_reset(&err);
	}
	CHECK(access("early.cfg", F_OK) < 0);
	strbuf_release(&err);
}

TEST(test_cmdline_in_grub_cfg)
{
	struct boot_settings s = { .esp_uuid = "1234-ABCD", .tries = 3, .part_a = 3, .part_b = 4 };
	_cleanup_free_ char *cfg = NULL;

	s.cmdline = "console=ttyS0,115200 quiet";
	cfg = bootloader_config(&s);
	CHECK(strstr(cfg, "imgforge.fallback=${fallback} console=ttyS0,115200 quiet\n") != NULL);
}

int main(void)
{
	RUN(test_cmdline_that_breaks_grub_cfg);
	RUN(test_cmdline_in_grub_cfg);
	return tap_done();
}
