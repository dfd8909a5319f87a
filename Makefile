# airlock -- one Makefile for build, test, fuzz, bench and run.
# Three builds share the same sources:
#   build/rel   optimised, the ./airlock binary users run
#   build/asan  ASan+UBSan, used by unit tests and hostile-input end-to-end tests
#   build/fuzz  clang libFuzzer instrumentation, one binary per fuzz/fuzz_*.c
# Only files named *avx2*.c / *avx512*.c get ISA flags; CPU features are picked at run time.

VERSION   := 0.1.0
CC        ?= cc
CLANG     ?= clang
PKGS      := libcrypto jansson libarchive libmicrohttpd libpcre2-8 libseccomp
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN      := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
BASEFLAGS  = -std=c11 -D_GNU_SOURCE -Isrc -DAIRLOCK_VERSION='"$(VERSION)"' $(WARN) $(PKG_CFLAGS) -MMD -MP
LIBS       = $(PKG_LIBS) -lpthread -lm
AVX2FLAGS   := -mavx2 -mfma -mf16c -mbmi2
AVX512FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c -mbmi2

REL_CFLAGS  := -O2 -g
ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -Wno-unknown-warning-option -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -DAIRLOCK_FUZZ

SRC       := $(sort $(shell find src -name '*.c' ! -path src/main.c))
TESTS     := $(sort $(wildcard tests/unit/test_*.c))
FUZZERS   := $(sort $(wildcard fuzz/fuzz_*.c))
E2E       := $(sort $(wildcard tests/e2e/*.sh))
WEB       := $(sort $(wildcard web/*))

isa = $(if $(findstring avx512,$(notdir $1)),$(AVX512FLAGS),$(if $(findstring avx2,$(notdir $1)),$(AVX2FLAGS),))

REL_OBJ  := $(SRC:%.c=build/rel/%.o)
ASAN_OBJ := $(SRC:%.c=build/asan/%.o)
# The SIMD kernel tables are left out of the fuzz library: no fuzz target reaches them (they
# parse bytes; the kernels run under ASan/UBSan in the unit tests), and clang's libFuzzer +
# sanitizer build of avx512.c alone took ~4 of the build phase's CPU minutes.
FUZZ_OBJ := $(filter-out build/fuzz/src/engine/kernels/avx%.o,$(SRC:%.c=build/fuzz/%.o))
TEST_BIN := $(TESTS:tests/unit/%.c=build/asan/tests/%)
FUZZ_BIN := $(FUZZERS:fuzz/%.c=build/fuzz/bin/%)

FUZZ_SECONDS ?= 8
NPROC     := $(shell nproc 2>/dev/null || echo 2)
export ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

.PHONY: all deps test unit e2e fuzz-smoke fuzz bench run clean lint node-deps asan fuzz-build man loadtest dist dist-test check-expf
all: airlock

deps:
	@scripts/deps.sh

airlock: build/rel/airlock
	@cp $< $@.tmp && mv -f $@.tmp $@  # rename: a running ./airlock keeps its old inode

build/rel/airlock: build/rel/src/main.o build/rel/libairlock.a
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LIBS)
build/asan/airlock: build/asan/src/main.o build/asan/libairlock.a
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)
asan: build/asan/airlock

build/rel/libairlock.a: $(REL_OBJ)
	@rm -f $@.tmp; ar rcs $@.tmp $^ && mv -f $@.tmp $@
build/asan/libairlock.a: $(ASAN_OBJ)
	@rm -f $@.tmp; ar rcs $@.tmp $^ && mv -f $@.tmp $@
build/fuzz/libairlock.a: $(FUZZ_OBJ)
	@rm -f $@.tmp; ar rcs $@.tmp $^ && mv -f $@.tmp $@

build/rel/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(REL_CFLAGS) $(call isa,$<) -c $< -o $@
build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(ASAN_CFLAGS) $(call isa,$<) -c $< -o $@
build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(CLANG) $(BASEFLAGS) $(FUZZ_CFLAGS) $(call isa,$<) -c $< -o $@

# web assets compiled into the binary
build/rel/src/server/web.o build/asan/src/server/web.o build/fuzz/src/server/web.o: $(WEB)
build/rel/src/server/default_model.o build/asan/src/server/default_model.o build/fuzz/src/server/default_model.o: models/stories260K/stories260K-f32.gguf

# --- unit tests (cmocka, ASan+UBSan) --------------------------------------------------
build/asan/tests/%: tests/unit/%.c build/asan/libairlock.a
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(ASAN_CFLAGS) -Itests -o $@ $< build/asan/libairlock.a $(LIBS) -lcmocka

unit: $(TEST_BIN)
	@scripts/run-unit.sh $(TEST_BIN)

# --- end-to-end tests (real sha256sum, minisign, gpgv, node clients) --------------------
e2e: airlock build/asan/airlock
	@AIRLOCK=$(CURDIR)/airlock AIRLOCK_ASAN=$(CURDIR)/build/asan/airlock scripts/run-e2e.sh $(E2E)

# --- fuzzing ----------------------------------------------------------------------------
build/fuzz/bin/%: fuzz/%.c build/fuzz/libairlock.a
	@mkdir -p $(dir $@)
	$(CLANG) $(BASEFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libairlock.a $(LIBS)
fuzz-build: $(FUZZ_BIN)
fuzz-smoke: $(FUZZ_BIN)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/run-fuzz.sh $(FUZZ_BIN)
fuzz: $(FUZZ_BIN)
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-120} scripts/run-fuzz.sh $(FUZZ_BIN)

# every suite runs even when an earlier one fails; summary.sh prints 'N passed, N failed'.
# make test stays under 15 minutes on 2 cores, cold: the three builds compile with one job per
# core, and the minimal Debian root of the offline-install test (scripts/dist-root.sh, cached
# in ~/.cache/airlock-dist; about 1.5 min cold, mostly the mirror and dpkg) is made in the
# background on the second core while the unit tests run on one; tests/e2e/dist_offline_
# install.sh waits for it. The suites themselves run one at a time: e2e scripts share
# tests/api/node_modules, and fuzz-smoke's FUZZ_SECONDS are wall clock, so sharing the core
# would cut its executions. scripts/phase.sh records each phase's wall and CPU time.
test: deps
	@rm -rf build/results && mkdir -p build/results && date +%s > build/results/started
	@scripts/phase.sh build $(MAKE) --no-print-directory -j$(NPROC) airlock build/asan/airlock $(TEST_BIN) $(FUZZ_BIN)
	@scripts/dist-root.sh > build/results/dist-root.log 2>&1 < /dev/null &
	@scripts/phase.sh unit $(MAKE) --no-print-directory unit || true
	@scripts/phase.sh e2e $(MAKE) --no-print-directory e2e || true
	@scripts/phase.sh fuzz-smoke $(MAKE) --no-print-directory fuzz-smoke || true
	@scripts/summary.sh

bench: deps airlock
	@scripts/run-bench.sh

run: deps airlock
	@scripts/run.sh

lint:
	@scripts/lint.sh

man: airlock
	@scripts/man.sh build/man

loadtest: deps airlock
	@scripts/loadtest.sh

dist: deps airlock
	@scripts/dist.sh

# the offline-install e2e test alone (it is also part of `make test`)
dist-test: deps airlock
	@AIRLOCK=$(CURDIR)/airlock scripts/run-e2e.sh tests/e2e/dist_offline_install.sh

# the SIMD expf of the decode softmax against the C library's on all 2^32 inputs (~30 s)
check-expf: build/check/expf_exhaustive_avx512
	@build/check/expf_exhaustive_avx512

build/check/expf_exhaustive_avx512: tests/long/expf_exhaustive_avx512.c src/engine/kernels/simd_impl.h
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) -Wno-unused-function -O2 $(AVX512FLAGS) -o $@ $< -lm

clean:
	rm -rf build airlock

-include $(shell find build -name '*.d' 2>/dev/null)
