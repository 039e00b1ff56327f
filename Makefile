# The two commands of the README: `make demo` and `make test`. Both install what they need.
VENV ?= .venv
SEATFLOW := $(VENV)/bin/seatflow
# rustup's cargo, which builds native/ at install, even where a shell profile did not add it.
export PATH := $(HOME)/.cargo/bin:$(PATH)
CODEC = $(VENV)/bin/python -c 'from pipelines.avro import CODEC_NAME; print("Avro codec:", CODEC_NAME)'

.PHONY: install demo test lint unit stop

$(VENV)/.installed: pyproject.toml native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	@# The Rust codec (the native extra) where cargo is there; the pure-Python one otherwise.
	if command -v cargo >/dev/null; then $(VENV)/bin/pip install --quiet -e '.[dev,native]'; \
	else echo "cargo not found: installed without the native Avro codec"; fi
	@$(CODEC)
	touch $@

install: $(VENV)/.installed

demo: install
	$(SEATFLOW) demo

stop: install
	$(SEATFLOW) stack down

lint: install
	$(VENV)/bin/ruff check pipelines tests
	$(VENV)/bin/mypy
	$(SEATFLOW) schemas check

unit: install
	$(VENV)/bin/pytest -m unit

test: install
	scripts/test.sh
