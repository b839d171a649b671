# Two entry points a newcomer needs (README "Quick start"). Both install what they need first.
PYTHON ?= python3
.DEFAULT_GOAL := help

.PHONY: help setup test demo

help:
	@echo "make demo   - install, then run the whole pipeline on local VMs and print the report path"
	@echo "make test   - install, then run the project's own tests (what CI runs)"

setup:
	bash scripts/setup.sh

test: setup
	$(PYTHON) -m pytest

demo: setup
	$(PYTHON) -m okdbench demo
