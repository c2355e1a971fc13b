# hostbeat — GNU Make build. `make help` lists the targets.

CC        ?= cc
CLANG     ?= clang-14
PKGS      := libpcap json-c yaml-0.1 libproc2 libisal libdeflate libcurl
CSTD      := -std=c11 -D_GNU_SOURCE
WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
ifeq ($(CI),true)
WARN      += -Werror
endif
OPT       ?= -O2 -g
CFLAGS    += $(CSTD) $(WARN) $(OPT) -Iinclude -I. -pthread $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    += $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lpcap -ljson-c -lyaml -lproc2 -lisal -ldeflate -lcurl) -pthread -lm

BUILD     ?= build
LIB_SRC   := $(filter-out core/main.c,$(wildcard core/*.c)) $(wildcard net/*.c) \
             $(wildcard net/proto/*.c) $(wildcard shipper/*.c) $(wildcard sys/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB       := $(BUILD)/libhostbeat.a
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BIN  := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES:= $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)

.PHONY: all help deps run test unit stream golden fuzz-replay integration asan bench lint format \
        format-check golden-update clean tools unit-bins asan-suite $(FUZZ_NAMES:%=fuzz-%)

all: hostbeat

help:
	@echo "make [all]            build ./hostbeat"
	@echo "make run              install what is missing, build, run on this host (docker0, else any)"
	@echo "make test             install what is missing, build, run every test layer"
	@echo "make asan             the whole suite under ASan+UBSan (clang-14)"
	@echo "make fuzz-NAME        run one libFuzzer harness ($(FUZZ_NAMES))"
	@echo "make bench            benchmark against tcpdump -r and tshark -T ek"
	@echo "make golden-update NAME=x   regenerate one golden NDJSON file"
	@echo "make lint | format | format-check | deps | clean"

deps:
	@tests/deps.sh

hostbeat: $(BUILD)/core/main.o $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# -lz (test-only): test_bulk inflates what igzip and libdeflate wrote with an independent
# implementation, and es_probe gzips with it
$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(LIB) $(LDLIBS) -lcmocka -lz

$(BUILD)/tools/%: tests/tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lz

tools: $(TOOL_BIN) $(BUILD)/tools/pcapgen

$(BUILD)/tools/pcapgen: tests/bench/pcapgen.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -o $@ $<

run: deps all
	./hostbeat -e -c beats.yml

test: deps
	@tests/run_all.sh

# The layers, for running one at a time (run_all.sh calls these).
unit-bins: $(UNIT_BIN)

unit: $(UNIT_BIN)
	@tests/run_unit.sh $(UNIT_BIN)

stream: tools
	@tests/stream/run.sh $(BUILD)

golden: all
	@/usr/bin/python3 -m pytest -q tests/pcap

integration: all
	@/usr/bin/python3 -m pytest -q -rs tests/integration

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CC=$(CLANG) \
		OPT="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		HOSTBEAT_BIN=build-asan/hostbeat asan-suite

asan-suite: $(BUILD)/hostbeat
	@ASAN=1 HOSTBEAT=$(BUILD)/hostbeat BUILD=$(BUILD) tests/run_all.sh --no-deps

$(BUILD)/hostbeat: $(BUILD)/core/main.o $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer harnesses (clang-14). The library is compiled once with coverage
# instrumentation (fuzzer-no-link) and shared by every harness. fuzz-NAME runs one
# for FUZZ_SECONDS (default 60).
FUZZ_BUILD := build-fuzz
FUZZ_SAN   := -fsanitize=address,undefined -fno-omit-frame-pointer
FUZZ_FLAGS := $(CSTD) -O1 -g -Iinclude -I. $(FUZZ_SAN) -DHB_FUZZ \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJ   := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_LIB   := $(FUZZ_BUILD)/libhostbeat-fuzz.a

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB)
	$(CLANG) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(LDLIBS)

$(FUZZ_NAMES:%=fuzz-%): fuzz-%: $(FUZZ_BUILD)/fuzz_%
	@mkdir -p $(FUZZ_BUILD)/corpus-$*
	$(FUZZ_BUILD)/fuzz_$* -max_total_time=$${FUZZ_SECONDS:-60} -max_len=65536 \
		$(FUZZ_BUILD)/corpus-$* tests/fuzz/corpus/$*

# Replay every committed seed through every harness once (part of make test).
fuzz-replay: $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
	@tests/run_fuzz_replay.sh $(FUZZ_NAMES)

bench: all $(BUILD)/tools/pcapgen
	@tests/bench/bench.sh

golden-update: all
	@test -n "$(NAME)" || { echo "usage: make golden-update NAME=<golden name>"; exit 2; }
	@GOLDEN_UPDATE=1 /usr/bin/python3 -m pytest -q tests/pcap -k "$(NAME)"

lint:
	cppcheck --quiet --enable=warning,performance,portability --error-exitcode=1 \
		--suppress=missingIncludeSystem -Iinclude -I. core net shipper sys
	@echo "lint: ok"

FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build build-asan build-fuzz hostbeat

-include $(LIB_OBJ:.o=.d) $(BUILD)/core/main.d $(FUZZ_OBJ:.o=.d) $(UNIT_BIN:=.d)
