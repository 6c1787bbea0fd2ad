# notifyd — build, test, run, install.
#
#   make             build bin/notifyd and bin/notifyctl
#   make run         install missing dependencies, build, run notifyd in the foreground
#   make demo        the marketplace story, on the running notifyd or a new one (FAST=1)
#   make test        install missing dependencies, build, run every test (a few minutes)
#   make check       the slower checks CI runs too: valgrind, ASan + UBSan, 10 s of each fuzzer
#   make SANITIZE=1  the same with ASan + UBSan, built in build/sanitize/
#   make install     PREFIX=/usr/local DESTDIR= (and BINDIR, SBINDIR, MANDIR, SYSCONFDIR...)
#   make uninstall   the same variables: removes what install put there
#   make fuzz        each libFuzzer target FUZZ_SECONDS (60) from fuzz/corpus/, with clang
#   make bench       the benchmarks in bench/
#
# Every compiler and linker flag that depends on an installed library is
# read from $(OUT)/config.mk, which a rule writes after tools/bootstrap.sh
# has installed what is missing. Make builds that file before anything
# else and then reads the makefile again, so on a machine without the
# packages the first `make run` installs them and builds in one go. No
# flag may be computed with $(shell pkg-config ...) at parse time: it would
# run before the packages exist.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(PREFIX)/etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
DESTDIR    ?=

CC        ?= cc
PKGS      := sqlite3 jansson inih libjwt openssl gmime-3.0 libcurl libpq
# libcurl and libpq are not linked: core/lazylib.c opens them on first use.
LINK_PKGS := $(filter-out libcurl libpq,$(PKGS))
CFLAGS    ?= -O2 -g
WARNINGS  := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes

ifeq ($(SANITIZE),1)
OUT       := build/sanitize
BIN       := build/sanitize/bin
CFLAGS    += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=address,undefined
else ifeq ($(FUZZ),1)
# The libFuzzer build (make fuzz): clang, with coverage for the fuzzer.
OUT       := build/fuzz
BIN       := build/fuzz/bin
CC        := clang
CFLAGS    += -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
             -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=address,undefined
else
OUT       := build/default
BIN       := bin
endif

# Goals that need no compiler flags, and so no bootstrap.
NOCONFIG_GOALS := clean uninstall bare-check
ifneq ($(if $(MAKECMDGOALS),$(filter-out $(NOCONFIG_GOALS),$(MAKECMDGOALS)),all),)
include $(OUT)/config.mk
endif

ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARNINGS) $(CFLAGS) \
             $(CORE_DIRS:%=-I%) -I$(OUT)/gen $(PKG_CFLAGS)
LDLIBS     = $(PKG_LIBS) -lcivetweb -lpthread -ldl

CORE_DIRS := core $(sort $(patsubst %/,%,$(dir $(wildcard core/*/*.c))))
CORE_SRC  := $(sort $(wildcard core/*.c core/*/*.c))
CORE_OBJ  := $(CORE_SRC:%.c=$(OUT)/%.o) $(OUT)/gen/embedded_sql.o \
             $(OUT)/gen/embedded_sql_pg.o $(OUT)/gen/embedded_templates.o \
             $(OUT)/gen/embedded_web.o
SQL       := $(sort $(wildcard sql/*.sql))
SQL_PG    := $(sort $(wildcard sql/pg/*.sql))
TEMPLATES := $(sort $(filter-out templates/README.md,$(wildcard templates/*)))
WEB       := $(sort $(wildcard web/*))
WEB_GEN   := $(OUT)/gen/web/api.html
WEB_GZ    := $(WEB:web/%=$(OUT)/gen/web/%.gz) $(WEB_GEN:%=%.gz)
MAN       := $(wildcard man/*.[1-8])
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(OUT)/tests/%)
FUZZ_SRC  := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN  := $(FUZZ_SRC:fuzz/%.c=$(OUT)/fuzz/%)
FUZZ_SECONDS ?= 60
CHECK_FUZZ_SECONDS ?= 10
DIST      := $(OUT)/dist

.PHONY: all deps test-deps fuzz-deps run demo test check bare-check fuzz install uninstall clean \
	bench FORCE

all: $(BIN)/notifyd $(BIN)/notifyctl

# The flags of the installed libraries, written once they are installed.
# A failed bootstrap stops make here, before anything is compiled.
$(OUT)/config.mk: tools/deps.txt tools/bootstrap.sh Makefile
	@sh tools/bootstrap.sh build
	@mkdir -p $(@D)
	@set -e; cflags=$$(pkg-config --cflags $(PKGS)); libs=$$(pkg-config --libs $(LINK_PKGS)); \
	ctl_libs=$$(pkg-config --libs jansson); \
	printf '# Written by the Makefile after tools/bootstrap.sh; make clean removes it.\n' > $@.tmp; \
	printf 'PKG_CFLAGS := %s\nPKG_LIBS := %s\nCTL_LIBS := %s\n' \
	    "$$cflags" "$$libs" "$$ctl_libs" >> $@.tmp; \
	mv $@.tmp $@

# Checked on every build: cheap when everything is there, and it names
# what went missing since config.mk was written.
deps:
	@sh tools/bootstrap.sh build

test-deps: deps
	@sh tools/bootstrap.sh test

fuzz-deps: deps
	@sh tools/bootstrap.sh fuzz

$(OUT)/%.o: %.c | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# The names of a set of inputs, rewritten only when the set changes: a file
# removed or renamed is older than what was built from it, so without this
# the build would keep it (an old migration embedded, an object archived).
$(OUT)/gen/%.list: FORCE
	@mkdir -p $(@D)
	@echo '$(LIST_$*)' | cmp -s - $@ || echo '$(LIST_$*)' > $@
LIST_sql       = $(SQL)
LIST_sql_pg    = $(SQL_PG)
LIST_templates = $(TEMPLATES)
LIST_web       = $(WEB)
LIST_core      = $(CORE_OBJ)

$(OUT)/gen/embedded_sql.c: $(SQL) tools/embed.sh $(OUT)/gen/sql.list
	@mkdir -p $(@D)
	sh tools/embed.sh embedded_sql $(SQL) > $@.tmp && mv $@.tmp $@

$(OUT)/gen/embedded_sql_pg.c: $(SQL_PG) tools/embed.sh $(OUT)/gen/sql_pg.list
	@mkdir -p $(@D)
	sh tools/embed.sh embedded_sql_pg $(SQL_PG) > $@.tmp && mv $@.tmp $@

$(OUT)/gen/embedded_templates.c: $(TEMPLATES) tools/embed.sh $(OUT)/gen/templates.list
	@mkdir -p $(@D)
	sh tools/embed.sh embedded_templates $(TEMPLATES) > $@.tmp && mv $@.tmp $@

# The pages, with a gzip copy of each made here: civetweb compresses nothing.
$(OUT)/gen/web/%.gz: web/%
	@mkdir -p $(@D)
	gzip -9 -n -c $< > $@.tmp && mv $@.tmp $@

# /api: the API reference, notifyd-api(7), as a page.
$(OUT)/gen/web/api.html: man/notifyd-api.7 web/index.html tools/api-page.sh
	@mkdir -p $(@D)
	sh tools/api-page.sh man/notifyd-api.7 web/index.html > $@.tmp && mv $@.tmp $@

$(OUT)/gen/web/api.html.gz: $(OUT)/gen/web/api.html
	gzip -9 -n -c $< > $@.tmp && mv $@.tmp $@

$(OUT)/gen/embedded_web.c: $(WEB) $(WEB_GEN) $(WEB_GZ) tools/embed.sh $(OUT)/gen/web.list
	@mkdir -p $(@D)
	sh tools/embed.sh embedded_web $(WEB) $(WEB_GEN) $(WEB_GZ) > $@.tmp && mv $@.tmp $@

$(OUT)/gen/%.o: $(OUT)/gen/%.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(OUT)/libnotifyd.a: $(CORE_OBJ) $(OUT)/gen/core.list
	rm -f $@
	ar rcs $@ $(CORE_OBJ)

ND_OBJ    := $(patsubst %.c,$(OUT)/%.o,$(sort $(wildcard cmd/notifyd/*.c)))
CTL_OBJ   := $(patsubst %.c,$(OUT)/%.o,$(sort $(wildcard cmd/notifyctl/*.c)))

$(BIN)/notifyd: $(ND_OBJ) $(OUT)/libnotifyd.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# notifyctl takes from libnotifyd.a only the declarations (core/ops/decl.c),
# the protocol and util: it links jansson and libc, nothing of the server.
$(BIN)/notifyctl: $(CTL_OBJ) $(OUT)/libnotifyd.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(CTL_LIBS)

# cmocka is a test dependency: its flags are read when the test is linked,
# after test-deps has installed it.
$(OUT)/tests/%: tests/unit/%.c $(OUT)/libnotifyd.a | test-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $$(pkg-config --cflags cmocka) $(LDFLAGS) -o $@ $^ \
	    $(LDLIBS) $$(pkg-config --libs cmocka)

# The fuzz targets: with libFuzzer in the FUZZ=1 build, else with replay.c,
# which runs each once on the inputs it is given (make test: the corpora).
ifeq ($(FUZZ),1)
FUZZ_MAIN  = -fsanitize=fuzzer
else
FUZZ_MAIN  = fuzz/replay.c
endif
$(OUT)/fuzz/%: fuzz/%.c fuzz/app.c fuzz/replay.c fuzz/fuzz.h $(OUT)/libnotifyd.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Ifuzz $(LDFLAGS) -o $@ fuzz/$*.c fuzz/app.c $(FUZZ_MAIN) \
	    $(OUT)/libnotifyd.a $(LDLIBS)

# make fuzz FUZZ_SECONDS=N: each target N seconds, from its seed corpus;
# what it finds goes to build/fuzz/found/TARGET, crashes to build/fuzz/crashes.
fuzz: fuzz-deps
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-run

fuzz-run: $(FUZZ_BIN)
	@mkdir -p $(OUT)/crashes
	@set -e; for t in $(FUZZ_BIN); do n=$${t##*/}; mkdir -p $(OUT)/found/$$n; \
	    echo "== $$n ($(FUZZ_SECONDS) s)"; \
	    $$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	        -artifact_prefix=$(OUT)/crashes/$$n- -print_final_stats=1 \
	        $(OUT)/found/$$n fuzz/corpus/$$n 2>&1 | grep -E "^(#|stat::|==|SUMMARY|INFO: Seed)" | \
	        grep -v "^#[0-9]*.*\(NEW\|REDUCE\|pulse\)" || true; \
	done; ls $(OUT)/crashes | grep . && exit 1 || echo "no crashes"

run: $(BIN)/notifyd $(BIN)/notifyctl
	@BIN=$(BIN) exec sh tools/run.sh

# The marketplace story against the running notifyd, or a new one left
# running with its data in a temporary directory; FAST=1: no pauses.
demo: $(BIN)/notifyd $(BIN)/notifyctl
	@BIN=$(BIN) sh tools/demo.sh $(if $(FAST),--fast)

test: test-deps $(BIN)/notifyd $(BIN)/notifyctl $(UNIT_BIN) $(FUZZ_BIN)
	@BIN=$(BIN) OUT=$(OUT) sh tests/run.sh

# The slower checks: the integration tests again with every daemon under
# valgrind, the whole suite built with ASan + UBSan, each fuzz target for
# a short while (which also keeps the clang build free of warnings), and
# make run and make test on a bare Debian 12 (bare-check).
check: test-deps $(BIN)/notifyd $(BIN)/notifyctl $(UNIT_BIN) $(FUZZ_BIN)
	@BIN=$(BIN) OUT=$(OUT) sh tests/run.sh valgrind
	@$(MAKE) --no-print-directory SANITIZE=1 test
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS)
	@sh tools/bare-check.sh

# The README's two commands in a chroot of a minimal Debian 12 with only
# make added, on a clone of HEAD (tools/bare-check.sh).
bare-check:
	@sh tools/bare-check.sh

# What install writes besides the binaries and man pages: a unit whose
# paths follow the install's (written by install itself, since they change
# with its variables), bash completion made by notifyctl from its
# operations table, and a config file with every key commented out at its
# default.
$(DIST)/notifyctl.bash: $(BIN)/notifyctl
	@mkdir -p $(@D)
	$(BIN)/notifyctl completion bash > $@.tmp && mv $@.tmp $@

$(DIST)/notifyd.conf: $(BIN)/notifyd
	@mkdir -p $(@D)
	$(BIN)/notifyd --print-config --defaults > $@.tmp && mv $@.tmp $@

INSTALLED = $(SBINDIR)/notifyd $(BINDIR)/notifyctl \
    $(foreach m,$(MAN),$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))) \
    $(UNITDIR)/notifyd.service $(COMPLETIONDIR)/notifyctl

install: all dist/notifyd.service.in $(DIST)/notifyctl.bash $(DIST)/notifyd.conf
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(COMPLETIONDIR) $(DESTDIR)$(SYSCONFDIR)/notifyd
	install -m 755 $(BIN)/notifyd $(DESTDIR)$(SBINDIR)/notifyd
	install -m 755 $(BIN)/notifyctl $(DESTDIR)$(BINDIR)/notifyctl
	for m in $(MAN); do \
	    install -m 644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; done
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    dist/notifyd.service.in > $(DESTDIR)$(UNITDIR)/notifyd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/notifyd.service
	install -m 644 $(DIST)/notifyctl.bash $(DESTDIR)$(COMPLETIONDIR)/notifyctl
	@# An administrator's edited config is never overwritten.
	@conf=$(DESTDIR)$(SYSCONFDIR)/notifyd/notifyd.conf; \
	if [ -e "$$conf" ]; then echo "install: keeping $$conf"; \
	else echo "install -m 644 $(DIST)/notifyd.conf $$conf"; \
	    install -m 644 $(DIST)/notifyd.conf "$$conf"; fi

# Removes what install wrote; a notifyd.conf changed since is left, and said so.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@conf=$(DESTDIR)$(SYSCONFDIR)/notifyd/notifyd.conf; \
	if [ -e "$$conf" ] && grep -q -v -E '^(;|\[|$$)' "$$conf"; then \
	    echo "uninstall: $$conf has settings; left in place"; \
	else rm -f "$$conf"; rmdir "$(DESTDIR)$(SYSCONFDIR)/notifyd" 2>/dev/null || true; fi

# The bench/ tools (not installed).
BENCH_TOOLS = $(BIN)/ws_client $(BIN)/post_client $(BIN)/fanout_floor $(BIN)/commit_floor \
              $(BIN)/hook_sink $(BIN)/idle_floor
$(BENCH_TOOLS): $(BIN)/%: bench/%.c bench/tool.h $(OUT)/config.mk
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -pthread -o $@ $< $(BENCH_LINK) $(PKG_LIBS) -lcivetweb
# It calls nothing of them: it is the cost of notifyd's libraries being mapped.
$(BIN)/idle_floor: BENCH_LINK := -Wl,--no-as-needed

bench: all $(BENCH_TOOLS)
	@sh tools/bootstrap.sh bench
	@for b in bench/*.sh; do echo "== $$b"; sh "$$b" || exit 1; done

clean:
	rm -rf build bin

-include $(shell find $(OUT) -name '*.d' -type f 2>/dev/null)
