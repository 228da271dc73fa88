# migrate-init. `make` builds bin/migrate-init against Debian's libmongoc,
# libbson and libyaml; `make test` runs the unit and end-to-end tests.
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

.PHONY: all asan faults fuzz fuzz-regress test unit e2e e2e-asan valgrind demo format format-check clean
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

# The crash-injection build (src/fault.h): only the reliability tests use it.
build/faults/%.o: src/%.c src/*.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -DMI_FAULTS -c -o $@ $<

bin/faults/migrate-init: $(SRCS:src/%.c=build/faults/%.o)
	@mkdir -p bin/faults
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

faults: bin/faults/migrate-init

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

valgrind: bin/migrate-init
	bash tests/valgrind.sh

test: unit e2e e2e-asan valgrind

demo: bin/migrate-init
	bash scripts/demo.sh

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c

format-check:
	clang-format --dry-run -Werror src/*.c src/*.h tests/unit/*.c

clean:
	rm -rf bin build

# `make static`: bin/static/migrate-init, fully static (musl), stripped, with
# TLS (OpenSSL), SCRAM, mongodb+srv and libyaml. scripts/build-static.sh
# builds OpenSSL, libmongoc/libbson and libyaml from Debian's source packages
# with musl-gcc into a prefix cached outside the repo (slow the first time,
# reused after), then makes bin/static/migrate-init below with STATIC_PREFIX
# set to it, checks the result and reports its size.
STATIC_CC ?= musl-gcc
STATIC_PKGS := libmongoc-static-1.0 libbson-static-1.0 yaml-0.1
STATIC_PC = PKG_CONFIG_LIBDIR='$(STATIC_PREFIX)/lib/pkgconfig' PKG_CONFIG_PATH= pkg-config --static
# BASE_CFLAGS (same standard, defines and warnings) minus Debian's -I dirs.
STATIC_CFLAGS = $(filter-out -I%,$(BASE_CFLAGS)) $(shell $(STATIC_PC) --cflags $(STATIC_PKGS))

.PHONY: static
static:
	+@bash scripts/build-static.sh

ifneq ($(STATIC_PREFIX),)
build/static/%.o: src/%.c src/*.h $(STATIC_PREFIX)/.complete
	@mkdir -p $(dir $@)
	$(STATIC_CC) $(STATIC_CFLAGS) $(CFLAGS) -ffunction-sections -fdata-sections -c -o $@ $<

bin/static/migrate-init: $(SRCS:src/%.c=build/static/%.o)
	@mkdir -p bin/static
	$(STATIC_CC) -static $(CFLAGS) -Wl,--gc-sections -Wl,-Map,build/static/migrate-init.map \
		-o $@ $^ $(shell $(STATIC_PC) --libs $(STATIC_PKGS))
	strip --strip-all $@
else
bin/static/migrate-init:
	@echo 'bin/static/migrate-init is built by "make static"' >&2; exit 2
endif
