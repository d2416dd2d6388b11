/* SPDX-License-Identifier: MIT */
/* build/outdated.c: installed packages against a Packages index. */
#include "build/outdated.h"
#include "tap.h"

TEST(test_scan)
{
	/* Sorted by name, then architecture, as the registry keeps them. */
	static const char *const rows[][3] = {
		{ "base-files", "12.4", "amd64" },
		{ "libc6", "2.36-9+deb12u4", "amd64" },
		{ "libc6", "2.36-9+deb12u4", "i386" },
		{ "libssl3", "3.0.20-1~deb12u2", "amd64" },
		{ "tzdata", "2024a-0+deb12u1", "all" },
	};
	struct dpkg_package inst[ARRAY_SIZE(rows)];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(rows); i++)
		inst[i] = (struct dpkg_package){ xstrdup(rows[i][0]), xstrdup(rows[i][1]),
						 xstrdup(rows[i][2]) };
	struct outdated_pkg *res = NULL;
	size_t n = 0, alloc = 0;


	outdated_scan("bookworm-security",
		      "Package: libssl3\nVersion: 3.0.22-1~deb12u2\nArchitecture: amd64\n"
		      "Description: one\n continued\n\n"
		      "Package: libssl3\nVersion: 3.0.21-1~deb12u2\nArchitecture: amd64\n\n"
		      "Package: base-files\nVersion: 12.4\nArchitecture: amd64\n\n"
		      "Package: base-files\nVersion: 12.4+deb12u9\nArchitecture: arm64\n\n"
		      "Package: libc6\nVersion: 2.36-9+deb12u10\nArchitecture: i386\n\n"
		      "Package: nginx\nVersion: 1.22.1-9+deb12u11\nArchitecture: amd64\n\n"
		      "Package: tzdata\nVersion: 2025b-0+deb12u1\nArchitecture: all",
		      "amd64", inst, ARRAY_SIZE(inst), &res, &n, &alloc);
	/* Only libssl3 (the newest of two) and tzdata (no trailing newline): i386 and
	 * arm64 are other architectures, base-files is the same, nginx not installed. */
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(res[0].name, "libssl3");
		CHECK_STR(res[0].available, "3.0.22-1~deb12u2");
		CHECK_STR(res[0].installed, "3.0.20-1~deb12u2");
		CHECK_STR(res[0].suite, "bookworm-security");
		CHECK_STR(res[1].name, "tzdata");
		CHECK_STR(res[1].available, "2025b-0+deb12u1");
	}
	/* An older version in another suite does not replace the newest. */
	outdated_scan("bookworm-updates",
		      "Package: libssl3\nVersion: 3.0.21-1~deb12u2\nArchitecture: amd64\n\n", "amd64",
		      inst, ARRAY_SIZE(inst), &res, &n, &alloc);
	CHECK_INT(n, 2);
	CHECK_STR(res[0].suite, "bookworm-security");
	outdated_free(res, n);
	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		free(inst[i].name);
		free(inst[i].version);
		free(inst[i].arch);
	}
}

int main(void)
{
	RUN(test_scan);
	return tap_done();
}
