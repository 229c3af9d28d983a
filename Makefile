# pvsim: two commands on a fresh machine with only python3.
#   make demo  -- set up .venv, install, run the headline comparison into out/
#   make test  -- set up .venv, install, run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench report calibration-doc mutants campaign setup clean lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	mkdir -p out
	$(VENV)/bin/pvsim compare --workload cpu-int,kernel-build,forkwait,oltp,web \
	    --modes native,container,pv,pv32,bt,hvm-shadow,hvm,pvh --profile modern \
	    --json out/compare.json --csv out/compare.csv --plot out/compare.png
	$(VENV)/bin/pvsim lmbench --modes native,pv32,bt,uml --profile xeon-2003 \
	    --json out/lmbench.json --csv out/lmbench.csv --plot out/lmbench.png
	$(VENV)/bin/pvsim nanobench --modes native,bt,hvm-shadow --profile p4-2006 \
	    --json out/nanobench.json --csv out/nanobench.csv --plot out/nanobench.png
	$(VENV)/bin/pvsim run examples/consolidation.toml --json out/consolidation.json
	@echo "demo outputs written under out/"

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m pytest -m benchmark benchmarks -s -p no:cacheprovider -o python_files="bench_*.py"

report: $(STAMP)
	mkdir -p out
	$(VENV)/bin/pvsim report --html out/report.html --markdown out/report.md

# regenerate the calibration and validation tables of docs/calibration.md (after merging new constants)
calibration-doc: $(STAMP)
	$(PY) tools/calibration_doc.py
# single-rule mutants of the shipped code, each against the tests that should catch it (tools/mutants.py)
mutants: $(STAMP)
	$(PY) tools/mutants.py -j 2

# the hostile campaign at full size (the suite runs a 5,000-call instance)
campaign: $(STAMP)
	PVSIM_CAMPAIGN_CALLS=100000 $(PY) -m pytest -s -p no:cacheprovider tests/hostile/test_campaign.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf out .pytest_cache
