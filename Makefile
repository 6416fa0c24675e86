# troupe - an actor runtime for C.  Plain GNU make.
#
#   make            libtroupe.a and libtroupe.so in build/release
#   make test       every cmocka suite: optimised, ASan+UBSan, TSan, and
#                   optimised on the portable (swapcontext) switch
#   make bench      the workloads of bench/ (JSON lines on stdout)
#   make demo       the samples: the pipeline, then the supervision tree
#   make install    PREFIX=/usr/local DESTDIR=
#   make SANITIZE=address|thread   one sanitizer build (build/asan, build/tsan)
#   make CTX=ucontext              the portable context switch (build/release-ucontext, ...)
#   V=1             show the commands

VERSION   := 0.5.0
SOVERSION := 3
PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
CC        ?= cc
ARCH      := $(shell uname -m)

Q := $(if $(V),,@)

ifeq ($(SANITIZE),address)
  BUILD  := build/asan
  SANFL  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  OPT    := -O1
else ifeq ($(SANITIZE),thread)
  BUILD  := build/tsan
  SANFL  := -fsanitize=thread
  OPT    := -O1
else ifeq ($(SANITIZE),)
  BUILD  := build/release
  SANFL  :=
  OPT    := -O2
else
  $(error SANITIZE must be address or thread)
endif

# The context switch: assembly where we have it, swapcontext elsewhere.
# The switch changes the size of tr__ctx in every object, so CTX=ucontext
# builds in a directory of its own (sharing one linked stale objects).
ifeq ($(CTX),ucontext)
  CTX_SRC := actors/ctx_ucontext.c
  CTX_DEF := -DTR_CTX_UCONTEXT
  BUILD   := $(BUILD)-ucontext
else ifeq ($(ARCH),x86_64)
  CTX_SRC := actors/ctx_x86_64.S actors/ctx_frame.c
else ifeq ($(ARCH),aarch64)
  CTX_SRC := actors/ctx_aarch64.S actors/ctx_frame.c
else
  CTX_SRC := actors/ctx_ucontext.c
  CTX_DEF := -DTR_CTX_UCONTEXT
endif

VALGRIND_DEF := $(if $(wildcard /usr/include/valgrind/valgrind.h),-DTR_HAVE_VALGRIND)

CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=gnu11 -Wall -Wextra -fPIC -fvisibility=hidden -pthread $(SANFL)
CPPFLAGS += -Iinclude -MMD -MP $(CTX_DEF) $(VALGRIND_DEF)
LDFLAGS  += -pthread $(SANFL)

LIB_SRC := $(filter-out actors/ctx_%,$(wildcard actors/*.c)) $(wildcard mailbox/*.c) \
           $(wildcard supervisor/*.c) $(CTX_SRC)
LIB_OBJ := $(patsubst %,$(BUILD)/%.o,$(LIB_SRC))
LIB_A   := $(BUILD)/libtroupe.a
LIB_SO  := $(BUILD)/libtroupe.so.$(VERSION)

TEST_SRC  := $(wildcard tests/*/test_*.c)
TEST_BIN  := $(patsubst %.c,$(BUILD)/%,$(TEST_SRC))
TEST_LIBS := -lcmocka -lck -lm

BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst %.c,$(BUILD)/%,$(filter-out bench/bench_common.c,$(BENCH_SRC)))

SAMPLES   := $(patsubst samples/%/main.c,%,$(wildcard samples/*/main.c))
SAMPLE_BIN := $(patsubst %,$(BUILD)/samples/%,$(SAMPLES))

.PHONY: FORCE all lib deps test test-one test-header test-cross test-install bench demo install clean tests benches samples
.DEFAULT_GOAL := all

all: lib
lib: $(LIB_A) $(LIB_SO)

deps:
	$(Q)sh tools/deps.sh

$(BUILD)/%.c.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC    $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/%.S.o: %.S
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  AS    $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	$(if $(Q),@echo "  AR    $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(LIB_OBJ)
	$(if $(Q),@echo "  LD    $@")
	$(Q)$(CC) -shared -Wl,-soname,libtroupe.so.$(SOVERSION) $(LDFLAGS) -o $@ $^ -lck
	$(Q)ln -sf libtroupe.so.$(VERSION) $(BUILD)/libtroupe.so.$(SOVERSION)
	$(Q)ln -sf libtroupe.so.$(VERSION) $(BUILD)/libtroupe.so

$(BUILD)/tests/%: tests/%.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  TEST  $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Itests -Iactors $< -o $@ $(LDFLAGS) $(LIB_A) $(TEST_LIBS)

$(BUILD)/bench/%: bench/%.c bench/bench_common.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  BENCH $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Ibench $< bench/bench_common.c -o $@ $(LDFLAGS) $(LIB_A) -lck

$(BUILD)/samples/%: samples/%/main.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC    $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(wildcard samples/$*/*.c) -o $@ $(LDFLAGS) $(LIB_A) -lck

tests: $(TEST_BIN)
benches: $(BENCH_BIN)
samples: $(SAMPLE_BIN)

# One build's suites, each in its own process under a timeout.
test-one: tests
	$(Q)sh tests/run.sh $(BUILD) $(TEST_BIN)

# The portable swapcontext switch, checked on this machine too.
build/ucontext/test_ctx: tests/actors/test_ctx.c actors/ctx_ucontext.c actors/ctx.h tests/cross/ctx_cases.h
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=gnu11 -O2 -g -Wall -Wextra -DTR_CTX_UCONTEXT -Iinclude -Iactors -Itests \
	  tests/actors/test_ctx.c actors/ctx_ucontext.c -o $@ -lcmocka -lm

# libtroupe.so loaded with dlopen: its initial-exec thread-locals
# (actors/tls.h) must fit the loader's reserve.  Linked without the
# library, which it finds at the path built in.
build/release/dlopen_check: tests/install/dlopen.c $(LIB_SO)
	$(Q)$(CC) -std=gnu11 -O2 -g -Wall -Wextra -pthread -Iinclude \
	  -DTR_LIBRARY='"$(CURDIR)/$(LIB_SO)"' $< -o $@ -ldl -lcmocka

test: deps build/ucontext/test_ctx build/release/dlopen_check
	$(Q)sh tests/run.sh build/ucontext build/ucontext/test_ctx
	$(Q)$(MAKE) --no-print-directory test-one
	$(Q)sh tests/run.sh build/release build/release/dlopen_check
	$(Q)$(MAKE) --no-print-directory test-one SANITIZE=address
	$(Q)$(MAKE) --no-print-directory test-one SANITIZE=thread
	$(Q)$(MAKE) --no-print-directory test-one CTX=ucontext
	$(Q)$(MAKE) --no-print-directory test-header
	@echo "all test builds passed"

# Each public header must compile on its own.
test-header:
	$(Q)for h in include/troupe.h include/troupe/*.h; do \
	  echo "#include \"$${h#include/}\"" | $(CC) -std=c11 -Wall -Wextra -Werror -Iinclude -x c -fsyntax-only - || exit 1; \
	done; echo "public headers compile alone"

# stdout carries only the JSON lines: the build talks on stderr.
bench: deps
	$(Q)$(MAKE) --no-print-directory benches >&2
	$(Q)BUILD=$(BUILD) sh bench/run.sh $(BENCH)

demo: deps samples
	$(Q)$(BUILD)/samples/pipeline
	@echo
	$(Q)$(BUILD)/samples/tree

# The aarch64 context switch, cross-built and run under qemu-user.
CROSS_CC ?= aarch64-linux-gnu-gcc
test-cross:
	$(Q)sh tools/deps.sh cross
	@mkdir -p build/cross
	$(Q)$(CROSS_CC) -std=gnu11 -O2 -Wall -Wextra -static -Iactors -Iinclude \
	  tests/cross/ctx_selftest.c actors/ctx_aarch64.S actors/ctx_frame.c -o build/cross/ctx_selftest -lm
	$(Q)qemu-aarch64 build/cross/ctx_selftest

# Made again whenever its text changes, so a new PREFIX, LIBDIR or INCDIR
# is never installed with the old paths.
troupe.pc: troupe.pc.in FORCE
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	  -e 's|@VERSION@|$(VERSION)|' $< > $@.new
	$(Q)if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

FORCE:

install: lib troupe.pc
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)/troupe
	install -m 644 include/troupe.h $(DESTDIR)$(INCDIR)/
	install -m 644 include/troupe/*.h $(DESTDIR)$(INCDIR)/troupe/
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf libtroupe.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libtroupe.so.$(SOVERSION)
	ln -sf libtroupe.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libtroupe.so
	install -m 644 troupe.pc $(DESTDIR)$(LIBDIR)/pkgconfig/

# Install into a scratch DESTDIR and build a program against it with
# pkg-config, as the README does: with the shared library, then the static.
test-install:
	$(Q)rm -rf build/stage && $(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/build/stage PREFIX=/usr
	$(Q)PKG_CONFIG_SYSROOT_DIR=$(CURDIR)/build/stage PKG_CONFIG_LIBDIR=$(CURDIR)/build/stage/usr/lib/pkgconfig \
	  sh -c '$(CC) tests/install/hello.c -o build/stage/hello $$(pkg-config --cflags --libs troupe) && \
	  $(CC) tests/install/hello.c -o build/stage/hello-static $$(pkg-config --cflags troupe) \
	    "$$(pkg-config --variable=libdir troupe)/libtroupe.a" -lck -pthread'
	$(Q)LD_LIBRARY_PATH=$(CURDIR)/build/stage/usr/lib build/stage/hello
	$(Q)! readelf -d build/stage/hello-static | grep -q libtroupe && build/stage/hello-static

clean:
	rm -rf build troupe.pc

-include $(LIB_OBJ:.o=.d) $(TEST_BIN:=.d)
