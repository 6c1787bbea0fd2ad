# notifyd — build, test, run, install.
#
#   make             build bin/notifyd and bin/notifyctl
#   make run         install missing dependencies, build, run notifyd in the foreground
#   make test        install missing dependencies, build, run every test
#   make SANITIZE=1  the same with ASan + UBSan, built in build/sanitize/
#   make install     PREFIX=/usr/local DESTDIR=
#   make bench       the benchmarks in bench/

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
DESTDIR   ?=

CC        ?= cc
PKGS      := sqlite3 jansson inih libjwt openssl gmime-3.0 libcurl
CFLAGS    ?= -O2 -g
WARNINGS  := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARNINGS) $(CFLAGS) \
             -Icore -I$(OUT)/gen $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcivetweb -lpthread

ifeq ($(SANITIZE),1)
OUT       := build/sanitize
BIN       := build/sanitize/bin
CFLAGS    += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=address,undefined
else
OUT       := build/default
BIN       := bin
endif

CORE_SRC  := $(sort $(wildcard core/*.c))
CORE_OBJ  := $(CORE_SRC:%.c=$(OUT)/%.o) $(OUT)/gen/embedded_sql.o \
             $(OUT)/gen/embedded_templates.o
SQL       := $(sort $(wildcard sql/*.sql))
TEMPLATES := $(sort $(filter-out templates/README.md,$(wildcard templates/*)))
MAN       := $(wildcard man/*.[1-8])
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(OUT)/tests/%)

.PHONY: all deps test-deps run test install clean bench FORCE

all: deps $(BIN)/notifyd $(BIN)/notifyctl

deps:
	@sh tools/bootstrap.sh build

test-deps:
	@sh tools/bootstrap.sh test

$(OUT)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# The names of a set of inputs, rewritten only when the set changes: a file
# removed or renamed is older than what was built from it, so without this
# the build would keep it (an old migration embedded, an object archived).
$(OUT)/gen/%.list: FORCE
	@mkdir -p $(@D)
	@echo '$(LIST_$*)' | cmp -s - $@ || echo '$(LIST_$*)' > $@
LIST_sql       = $(SQL)
LIST_templates = $(TEMPLATES)
LIST_core      = $(CORE_OBJ)

$(OUT)/gen/embedded_sql.c: $(SQL) tools/embed.sh $(OUT)/gen/sql.list
	@mkdir -p $(@D)
	sh tools/embed.sh embedded_sql $(SQL) > $@.tmp && mv $@.tmp $@

$(OUT)/gen/embedded_templates.c: $(TEMPLATES) tools/embed.sh $(OUT)/gen/templates.list
	@mkdir -p $(@D)
	sh tools/embed.sh embedded_templates $(TEMPLATES) > $@.tmp && mv $@.tmp $@

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

$(BIN)/notifyctl: $(CTL_OBJ) $(OUT)/libnotifyd.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/tests/%: tests/unit/%.c $(OUT)/libnotifyd.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags cmocka) $(LDFLAGS) -o $@ $^ \
	    $(LDLIBS) $(shell pkg-config --libs cmocka)

run: deps $(BIN)/notifyd $(BIN)/notifyctl
	@echo "notifyd: data in ./var; in another terminal try:"
	@echo "  $(BIN)/notifyctl send --user alice --type message --title 'Hello' --body 'It works'"
	@echo "  $(BIN)/notifyctl list --user alice"
	exec $(BIN)/notifyd --data-dir ./var

test: test-deps $(BIN)/notifyd $(BIN)/notifyctl $(UNIT_BIN)
	@BIN=$(BIN) OUT=$(OUT) sh tests/run.sh

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BIN)/notifyd $(DESTDIR)$(SBINDIR)/notifyd
	install -m 755 $(BIN)/notifyctl $(DESTDIR)$(BINDIR)/notifyctl
	for m in $(MAN); do \
	    install -m 644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; done

# The bench/ tools (not installed).
BENCH_TOOLS = $(BIN)/ws_client $(BIN)/post_client $(BIN)/fanout_floor $(BIN)/commit_floor
$(BENCH_TOOLS): $(BIN)/%: bench/%.c bench/tool.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -pthread -o $@ $< $(shell pkg-config --libs jansson) -lcivetweb

bench: all $(BENCH_TOOLS)
	@sh tools/bootstrap.sh bench
	@for b in bench/*.sh; do echo "== $$b"; sh "$$b" || exit 1; done

clean:
	rm -rf build bin

-include $(shell find $(OUT) -name '*.d' -type f 2>/dev/null)

