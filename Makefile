# Two commands run the suite: `make run` (every notebook, headless) and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
PROFILE ?=
ONLY ?=
PARAMS ?=

.PHONY: run test setup publish site site-check strip bench gpu-check clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet -r requirements.txt
	$(VENV_PYTHON) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(VENV)/.installed  ## Create .venv and install requirements.txt.

run: setup  ## Execute the notebooks: make run [PROFILE=quick|full] [ONLY="03 05"] [PARAMS="SEEDS=[1,2,3] EPOCHS=2"].
	$(VENV_PYTHON) -m tools.run $(if $(PROFILE),--profile $(PROFILE)) $(if $(ONLY),--only $(ONLY)) $(if $(PARAMS),--param "$(PARAMS)")

publish: setup  ## Executed copies with provenance in executed/: make publish ONLY="03" [PROFILE=lesson] [PARAMS=...].
	$(VENV_PYTHON) -m tools.publish $(if $(ONLY),--only $(ONLY)) $(if $(PROFILE),--profile $(PROFILE)) $(if $(PARAMS),--param "$(PARAMS)")

site: setup  ## Build the browsable site from executed/ into site/ (offline): open site/index.html.
	$(VENV_PYTHON) -m tools.site

site-check: site  ## Open every page of site/ in headless chromium (needs Debian's chromium: apt-get install chromium).
	$(VENV_PYTHON) -m pip install --quiet -r requirements-site.txt
	$(VENV_PYTHON) -m tools.site_check

test: setup  ## Run the whole test suite (unit tests and every notebook in the quick profile).
	$(VENV_PYTHON) -m pytest

bench: setup  ## Print the CIFAR-10 input-pipeline benchmark.
	$(VENV_PYTHON) -m tools.bench cifar10

gpu-check: setup  ## On a GPU machine: every notebook quick in mixed_float16, one full epoch of III, one budgeted minute of 08.
	$(VENV_PYTHON) -m tools.gpu_check

strip: setup  ## Remove outputs and execution counts from the committed notebooks.
	$(VENV_PYTHON) -m nbstripout --keep-id notebooks/*.ipynb

clean:  ## Delete run outputs (keeps datasets and caches in data/).
	rm -rf runs site .pytest_cache
