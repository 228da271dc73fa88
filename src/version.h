/*
 * What this binary is: its version, the git commit it was built from, and
 * the C libraries inside it (a static binary hides them from image
 * scanners). Upstream versions are asked of the libraries themselves at run
 * time (musl has no such call: its version comes from the build); the
 * Debian source package and version each was built from come from the
 * build (the Makefile's MI_COMMIT and MI_COMPONENTS, seen by version.c
 * alone). The SBOM beside the static binary (scripts/sbom.py) lists the
 * same, and the artifact tests hold the two to each other.
 */
#ifndef MI_VERSION_H
#define MI_VERSION_H

#include <stdbool.h>
#include <stdio.h>

/* -version: the version alone on the first line (what golang-migrate
 * prints, and what scripts read), then the commit and one line per
 * component; json: one JSON object instead. */
void version_print(FILE *f, bool json);

#endif
