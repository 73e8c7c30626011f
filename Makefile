# Set-up and everyday commands. Every target installs what it needs into .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install teacher test lint bench-onnx clean-venv

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing (torch 2.13.0 CPU first)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar on --upgrade pip
	$(BIN)/python -m pip install --progress-bar on torch==2.13.0
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job: provision base models, fine-tune the ATEC teacher, export and check its ONNX graph.
## Finished steps are not redone (make compares the outputs' times).
TEACHER := runs/teacher-atec-e5

teacher: $(TEACHER)-onnx/export.json

$(TEACHER)/metrics.json: | $(STAMP)
	$(BIN)/flipkd provision
	$(BIN)/flipkd train-teacher --data data/atec --base multilingual-e5-small --out $(TEACHER)

$(TEACHER)-onnx/export.json: $(TEACHER)/metrics.json
	$(BIN)/flipkd export-teacher --teacher $(TEACHER) --out $(TEACHER)-onnx --int8

## The test suite (provisions the small base models it needs on first run).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
