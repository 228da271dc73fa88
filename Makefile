# migrate-init. `make` builds bin/migrate-init against Debian's libmongoc,
# libbson and libyaml; `make test` runs the unit and end-to-end tests.
SHELL := /bin/bash
.DEFAULT_GOAL := all
VERSION ?= 0.1.0
CC ?= cc
PKGS := libmongoc-1.0 libbson-1.0 yaml-0.1 libcrypto
PY ?= /usr/bin/python3

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
BASE_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) \
	-DMI_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS))
CFLAGS ?= -O2 -g
LDLIBS := $(shell pkg-config --libs $(PKGS)) -pthread

SRCS := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

# A variant is a build directory with its own flags: the default one, and
# the sanitizer one (ASan + UBSan) that the test suite also runs.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# What -version reports about the build (src/version.h): the commit, and the
# Debian source packages and versions of the C libraries linked in (for the
# static build, build-static.sh passes STATIC_COMPONENTS). Only version.o
# sees them, and it is rebuilt when they change (build/buildinfo).
# MI_COMMIT_ID in the environment wins (a build with no .git: docker/).
ifdef MI_COMMIT_ID
COMMIT := $(MI_COMMIT_ID)
else
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
endif
COMPONENTS := $(shell dpkg-query -W -f='$${source:Package}=$${source:Version} ' libssl-dev libmongoc-dev libyaml-dev libc6-dev 2>/dev/null)
STATIC_COMPONENTS ?=
BUILDINFO := $(COMMIT) | $(COMPONENTS) | $(STATIC_COMPONENTS)
build/buildinfo: FORCE
	@mkdir -p build
	@echo '$(BUILDINFO)' | cmp -s - $@ || echo '$(BUILDINFO)' >$@
.PHONY: FORCE
VERSION_DEFS = -DMI_COMMIT='"$(COMMIT)"' -DMI_COMPONENTS='"$(strip $(1))"'
build/version.o build/asan/version.o build/tsan/version.o build/faults/version.o build/fuzz/version.o: build/buildinfo
build/version.o build/asan/version.o build/tsan/version.o build/faults/version.o build/fuzz/version.o: BASE_CFLAGS += $(call VERSION_DEFS,$(COMPONENTS))

.PHONY: all check asan tsan e2e-tsan faults fuzz fuzz-regress test unit e2e e2e-asan valgrind demo format format-check clean
all: bin/migrate-init

build/%.o: src/%.c src/*.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -c -o $@ $<

build/asan/%.o: src/%.c src/*.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

bin/migrate-init: $(SRCS:src/%.c=build/%.o)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

bin/asan/migrate-init: $(SRCS:src/%.c=build/asan/%.o)
	@mkdir -p bin/asan
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

asan: bin/asan/migrate-init

# ThreadSanitizer: the heartbeat, the abort watchdog and the logger share
# state with the main thread; make e2e-tsan drives them under it.
TSAN_FLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer

build/tsan/%.o: src/%.c src/*.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(TSAN_FLAGS) -c -o $@ $<

bin/tsan/migrate-init: $(SRCS:src/%.c=build/tsan/%.o)
	@mkdir -p bin/tsan
	$(CC) $(TSAN_FLAGS) -o $@ $^ $(LDLIBS)

tsan: bin/tsan/migrate-init

# The crash-injection build (src/fault.h): only the reliability tests use it.
build/faults/%.o: src/%.c src/*.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -DMI_FAULTS -c -o $@ $<

bin/faults/migrate-init: $(SRCS:src/%.c=build/faults/%.o)
	@mkdir -p bin/faults
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

faults: bin/faults/migrate-init

# libFuzzer harnesses (clang). `make fuzz` runs each for FUZZ_SECONDS on a
# scratch copy of its corpus; `make fuzz-regress` replays the corpus and every
# crash reproducer kept in fuzz/regressions/NAME/ once, as regression tests.
FUZZ_SECONDS ?= 20
FUZZ_FLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZERS := $(patsubst fuzz/%.c,bin/fuzz/%,$(wildcard fuzz/fuzz_*.c))

build/fuzz/%.o: src/%.c src/*.h
	@mkdir -p $(dir $@)
	clang $(BASE_CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

bin/fuzz/%: fuzz/%.c $(LIB_SRCS:src/%.c=build/fuzz/%.o)
	@mkdir -p bin/fuzz
	clang $(BASE_CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer -Isrc -o $@ $^ $(LDLIBS)

fuzz: $(FUZZERS)
	@set -e; for f in $^; do n=$$(basename $$f); w=build/fuzz-corpus/$$n; \
		rm -rf $$w; mkdir -p $$w fuzz/regressions/$$n; cp fuzz/corpus/$$n/* $$w/; \
		echo "== $$n ($(FUZZ_SECONDS) s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix=fuzz/regressions/$$n/ -print_final_stats=1 $$w 2>&1 | \
			grep -E '^(stat::number_of_executed_units|INFO: Running|==[0-9]+==ERROR|SUMMARY)' ; \
		test "$${PIPESTATUS[0]}" = 0; done

fuzz-regress: $(FUZZERS)
	@set -e; for f in $^; do n=$$(basename $$f); \
		files=$$(ls fuzz/corpus/$$n/* fuzz/regressions/$$n/* 2>/dev/null || true); \
		$$f $$files >build/$$n.log 2>&1 || { tail -20 build/$$n.log; exit 1; }; \
		echo "fuzz-regress $$n: $$(echo $$files | wc -w) inputs ok"; done

build/unit/%: tests/unit/%.c $(LIB_SRCS:src/%.c=build/asan/%.o)
	@mkdir -p build/unit
	$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -Isrc -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_SRCS:tests/unit/%.c=build/unit/%)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

e2e: bin/migrate-init
	$(PY) -m pytest -q tests/e2e

# The whole end-to-end suite again, against the sanitizer build.
e2e-asan: bin/asan/migrate-init
	MIGRATE_INIT_BIN=$(CURDIR)/bin/asan/migrate-init \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(PY) -m pytest -q tests/e2e

# The suites where threads meet (lock heartbeat, fencing, signals and the
# abort watchdog, registry URLs registered as secrets) against the TSan
# build: any data race report fails the run.
TSAN_TESTS := tests/e2e/test_lock.py tests/e2e/test_fencing.py tests/e2e/test_runtime.py \
	tests/e2e/test_coordination.py tests/e2e/test_secrets.py
e2e-tsan: bin/tsan/migrate-init
	MIGRATE_INIT_BIN=$(CURDIR)/bin/tsan/migrate-init MI_RACE_ROUNDS=3 \
	TSAN_OPTIONS=halt_on_error=1:exitcode=66:report_signal_unsafe=0 \
	$(PY) -m pytest -q $(TSAN_TESTS)

valgrind: bin/migrate-init
	bash tests/valgrind.sh

# The inner loop: unit tests and the fast end-to-end core (no Docker, no
# sanitizer builds), a couple of minutes. make test is what CI runs.
CHECK_TESTS := tests/e2e/test_core.py tests/e2e/test_interop.py tests/e2e/test_dropin.py \
	tests/e2e/test_server_guarantees.py tests/e2e/test_hostile.py
check: unit bin/migrate-init
	$(PY) -m pytest -q $(CHECK_TESTS)

# CI runs every fuzzer briefly (FUZZ_SECONDS each) after replaying the corpus.
# test-local is everything but arm64 and the cluster: scripts/test.sh runs
# it while the arm64 prefix and the Kubernetes and Helm compiles finish in
# the background, then test-arm64 and test-k8s.
test-local: FUZZ_SECONDS = 10
test-local: unit fuzz-regress fuzz e2e e2e-asan e2e-tsan valgrind test-artifact
test: test-local test-arm64 test-k8s
.PHONY: test-local

demo: bin/migrate-init
	bash scripts/demo.sh

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c fuzz/*.c

format-check:
	clang-format --dry-run -Werror src/*.c src/*.h tests/unit/*.c fuzz/*.c
	$(PY) scripts/check-layers.py

clean:
	rm -rf bin build

# `make static`: bin/static/migrate-init, fully static (musl), stripped, with
# TLS (OpenSSL), SCRAM, mongodb+srv and libyaml. scripts/build-static.sh
# builds OpenSSL, libmongoc/libbson and libyaml from Debian's source packages
# with musl-gcc into a prefix cached outside the repo (slow the first time,
# reused after), then makes bin/static/migrate-init below with STATIC_PREFIX
# set to it, checks the result and reports its size.
STATIC_CC ?= musl-gcc
STATIC_STRIP ?= strip
# ARCH=arm64 (make static ARCH=arm64): build-static.sh cross-compiles and
# sets STATIC_ARCH=arm64 and STATIC_CC/STATIC_STRIP to the cross tools; the
# objects and the binary then go to build/static-arm64/ and bin/static/arm64/.
# Without it, the host's architecture in build/static/ and bin/static/.
STATIC_ARCH ?=
SO := build/static$(if $(STATIC_ARCH),-$(STATIC_ARCH))
SB := bin/static$(if $(STATIC_ARCH),/$(STATIC_ARCH))
STATIC_PKGS := libmongoc-static-1.0 libbson-static-1.0 yaml-0.1 libcrypto
STATIC_PC = PKG_CONFIG_LIBDIR='$(STATIC_PREFIX)/lib/pkgconfig' PKG_CONFIG_PATH= pkg-config --static
# BASE_CFLAGS (same standard, defines and warnings) minus Debian's -I dirs.
STATIC_CFLAGS = $(filter-out -I%,$(BASE_CFLAGS)) $(shell $(STATIC_PC) --cflags $(STATIC_PKGS))

.PHONY: static
static:
	+@ARCH='$(ARCH)' bash scripts/build-static.sh

ifneq ($(STATIC_PREFIX),)
# The prefix in use, rewritten only when it changes: switching to another one
# (a version bump, another MI_CACHE) recompiles and relinks everything.
$(SO)/prefix: static-prefix-check
	@mkdir -p $(SO)
	@echo '$(STATIC_PREFIX)' | cmp -s - $@ || echo '$(STATIC_PREFIX)' >$@
.PHONY: static-prefix-check

# Reproducible (tests/artifact/test_supply_chain.py builds twice from two
# clones): no path of the checkout in the objects (the debug info that would
# carry it is stripped anyway), no dates (none are used: -version's build
# information is the commit, not a time).
REPRO_FLAGS := -ffile-prefix-map=$(CURDIR)=.

# Our code for the static build, as its libraries are built: for size (the
# binary is the image; its CPU time is a small part of any run's). No unwind
# tables: C with no exceptions or cancellation, and the binary is stripped,
# so nothing would read them (-28 KB with -Os, -12 KB more without them; the
# libraries' tables go at link time: scripts/static-no-unwind.ld). Not
# position-independent: the binary is static and not PIE anyway.
STATIC_OPT ?= -Os -g -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-pie
$(SO)/%.o: src/%.c src/*.h $(SO)/prefix $(STATIC_PREFIX)/.complete
	@mkdir -p $(dir $@)
	$(STATIC_CC) $(STATIC_CFLAGS) $(STATIC_OPT) $(REPRO_FLAGS) -ffunction-sections -fdata-sections -c -o $@ $<

$(SO)/version.o: build/buildinfo
$(SO)/version.o: STATIC_CFLAGS += $(call VERSION_DEFS,$(STATIC_COMPONENTS))

$(SB)/migrate-init: $(SRCS:src/%.c=$(SO)/%.o) scripts/static-no-unwind.ld
	@mkdir -p $(SB)
	$(STATIC_CC) -static -no-pie $(CFLAGS) -Wl,--gc-sections -Wl,-T,scripts/static-no-unwind.ld \
		-Wl,-Map,$(SO)/migrate-init.map \
		-o $@ $(filter %.o,$^) $(shell $(STATIC_PC) --libs $(STATIC_PKGS))
	$(STATIC_STRIP) --strip-all $@
else
bin/static/migrate-init bin/static/arm64/migrate-init:
	@echo '$@ is built by "make static" (ARCH=arm64 for the arm64 one)' >&2; exit 2
endif

# `make bench`: migrate-init side by side with the golang-migrate CLI (and the
# seed article's entrypoint script around it) on one local FerretDB, in one
# run: bench/bench.py, BENCH_REPS repetitions (default 5). Prints medians and
# ratios and writes docs/BENCHMARKS.md. Benches bin/static/migrate-init when
# it exists (it never builds it) and bin/migrate-init.
.PHONY: bench
bench: bin/migrate-init
	$(PY) bench/bench.py

# `make test-artifact`: the shipped artifact (docker/, k8s/; tests in
# tests/artifact/): bin/static/migrate-init alone in an empty root file
# system, the image built for real from docker/Dockerfile (on a Debian base
# made with debootstrap), four pods played with Docker against FerretDB on a
# private network, and k8s/ decoded strictly into the Kubernetes API types.
# Needs Docker Engine. The first run builds the Debian base, the image's
# static prefix and the Go checker (several minutes); later runs reuse them.
.PHONY: test-artifact
test-artifact: static
	bash scripts/deps.sh
	$(PY) -m pytest -q tests/artifact

# `make test-k8s`: the scenarios of issue #16 (tests/k8s/) on a real
# single-node Kubernetes (scripts/k8s.sh): the binaries built once per
# version and cached (the first build takes minutes), one cluster inside a
# network namespace of its own for all the scenarios, the image docker/ builds
# (as test-artifact builds it: Docker's cache makes it free after that) and
# the scenarios' own images imported, FerretDB inside the namespace; the
# shipped k8s/ applied through tests/k8s/overlay. Taken down at the end, also
# on failure and Ctrl-C. Needs root and Docker Engine; fails (never skips)
# without them. The Helm chart's tests (tests/k8s/test_helm.py) need helm,
# built once per version from the Go module proxy (scripts/helm.sh).
.PHONY: test-k8s
test-k8s:
	bash scripts/deps.sh
	bash scripts/k8s.sh build
	bash scripts/helm.sh build >/dev/null
	$(PY) -m pytest -q -s tests/k8s

# `make test-arm64`: the arm64 build (issue #19), tested here on amd64 under
# user-mode emulation (qemu-aarch64-static, Debian's qemu-user-static; no
# binfmt needed for a static binary). bin/static/arm64/migrate-init is
# cross-built (`make static ARCH=arm64`: a cached prefix of its own, several
# minutes the first time), checked (static aarch64 ELF, migrations-example up
# and down against FerretDB), then the end-to-end core, the interop with
# golang-migrate, the drop-in edges and the server guarantees run against it
# through tests/arm64/migrate-init-qemu, and
# docker/multiarch.sh's image for linux/amd64 + linux/arm64 is pushed to a
# registry on 127.0.0.1 (scripts/registry.sh) and pulled back per platform.
# Needs Docker Engine. Part of `make test`, between test-local and test-k8s.
# test_hostile.py is left out: its RLIMIT_AS rows limit the address space,
# which qemu-user needs for itself.
ARM64_E2E := tests/e2e/test_core.py tests/e2e/test_interop.py tests/e2e/test_dropin.py \
	tests/e2e/test_server_guarantees.py
.PHONY: test-arm64
test-arm64:
	+@ARCH=arm64 bash scripts/build-static.sh >/dev/null
	+@ARCH= bash scripts/build-static.sh >/dev/null
	bash scripts/deps.sh
	bash scripts/registry.sh build >/dev/null
	$(PY) -m pytest -q tests/arm64
	MIGRATE_INIT_BIN=$(CURDIR)/tests/arm64/migrate-init-qemu $(PY) -m pytest -q $(ARM64_E2E)
