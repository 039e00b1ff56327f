# The two commands of the README: `make demo` and `make test`. Both install what they need.
VENV ?= .venv
SEATFLOW := $(VENV)/bin/seatflow
# rustup's cargo, which builds native/ at install, even where a shell profile did not add it.
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: install demo test lint unit stop

$(VENV)/.installed: pyproject.toml native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
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
