# Set-up and everyday commands. Every target installs what it needs into .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install teacher serve test lint check-deploy clean-venv

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing (torch 2.13.0 CPU first)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar on --upgrade pip
	$(BIN)/python -m pip install --progress-bar on torch==2.13.0
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The ATEC teacher the shipped default bundle carries and was distilled from: provision the two base
## models the service runs (student and teacher), fine-tune multilingual-e5-small on all ATEC training
## pairs, then extract its rank-16 LoRA adapter (the bundle's teacher/). Finished steps are not redone
## (make compares the outputs' times). bench/atec_crossfit.sh builds the same teacher, its fold teachers
## and the students.
TEACHER := runs/teacher-atec-e5-all
SHADOW_SHARE ?= 0.1

teacher: $(TEACHER)-r16/teacher.json

$(TEACHER)/metrics.json: | $(STAMP)
	$(BIN)/flipkd provision qwen2.5-coder-0.5b-instruct multilingual-e5-small
	$(BIN)/flipkd train-teacher --data data/atec --base multilingual-e5-small --out $(TEACHER) --no-zero-shot

$(TEACHER)-r16/teacher.json: $(TEACHER)/metrics.json
	$(BIN)/flipkd extract-teacher --teacher $(TEACHER) --rank 16 --out $(TEACHER)-r16

## The main job: the service on the shipped ATEC bundle with the teacher it carries in shadow mode
## (SHADOW_SHARE of the /match requests are also scored by the teacher; FLIPKD_* settings apply).
## The student answers as soon as it is loaded; the bundle's teacher (an adapter over
## multilingual-e5-small) is exported to ONNX into the model cache on first use and attaches then.
serve: | $(STAMP)
	$(BIN)/flipkd provision qwen2.5-coder-0.5b-instruct multilingual-e5-small
	FLIPKD_SHADOW_SHARE=$(SHADOW_SHARE) $(BIN)/flipkd serve

## The test suite (provisions the small base models it needs on first run), after lint and the
## deployment checks (chart rendered and validated against the Kubernetes schemas, Dockerfile linted).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python scripts/check_deploy.py
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

check-deploy: $(STAMP)
	$(BIN)/python scripts/check_deploy.py

clean-venv:
	rm -rf $(VENV)
